import * as React from 'react';

import { formatAge, formatMetric, lastLine, StateBadge } from './format';
import {
  IExperimentListModel,
  IExperimentSummaryModel,
  isTerminal,
  ITrialListModel
} from './models';
import { Sparkline } from './sparkline';
import { TrialTable } from './trials';

/** What the sidebar's buttons do to an experiment (`delete` removes its records). */
export type ExperimentAction = 'pause' | 'activate' | 'kill' | 'delete';

/** The label of each action's button and the consequence its confirmation dialog states. */
export const EXPERIMENT_ACTIONS: Record<
  ExperimentAction,
  { label: string; body: string; danger: boolean }
> = {
  pause: {
    label: 'Pause',
    body: 'running trials checkpoint and stop; Activate resumes them.',
    danger: false
  },
  activate: {
    label: 'Activate',
    body: 'paused trials resume from their latest checkpoints.',
    danger: false
  },
  kill: {
    label: 'Kill',
    body: 'running trials checkpoint and stop for good; the experiment ends CANCELED.',
    danger: true
  },
  delete: {
    label: 'Delete',
    body: 'its records (trials, metrics, logs) are removed from the store. Checkpoint files stay.',
    danger: true
  }
};

/**
 * The experiment list, newest first: each experiment's state, progress, trials, best metric,
 * sparkline and actions, with its trial table when expanded.
 */
export function ExperimentList(props: ExperimentList.IProps): JSX.Element {
  const { list } = props;
  if (!list) {
    return <div className="jp-DetSidebar-empty">Loading…</div>;
  }
  if (list.experiments.length === 0) {
    return (
      <div className="jp-DetSidebar-empty">
        No experiments yet. Start one in a notebook with{' '}
        <code>det_jupyter.create_experiment(config, train)</code>.
      </div>
    );
  }
  const more = list.total - list.experiments.length;
  return (
    <ul className="jp-DetSidebar-experiments">
      {list.experiments.map(exp => (
        <Private.Experiment
          key={exp.id}
          exp={exp}
          onToggle={props.onToggle}
          onAction={props.onAction}
          onInsertCode={props.onInsertCode}
          expanded={props.expanded.has(exp.id)}
          trials={props.trials.get(exp.id) ?? null}
        />
      ))}
      {more > 0 && <li className="jp-DetSidebar-more">… and {more} older experiments</li>}
    </ul>
  );
}

/** Props of {@link ExperimentList}. */
export namespace ExperimentList {
  /** What the list shows and what its clicks call. */
  export interface IProps extends ICallbacks {
    /** The page of experiments; `null` while it loads. */
    list: IExperimentListModel | null;
    /** Ids of the experiments whose trials are shown. */
    expanded: ReadonlySet<number>;
    /** The loaded trial pages of expanded experiments. */
    trials: ReadonlyMap<number, ITrialListModel>;
  }

  /** What clicks on an experiment call. */
  export interface ICallbacks {
    /** Show or hide an experiment's trials. */
    onToggle: (id: number) => void;
    /** Confirm and run an action on an experiment. */
    onAction: (exp: IExperimentSummaryModel, action: ExperimentAction) => void;
    /** Insert the code that loads an experiment's best checkpoint into the active notebook. */
    onInsertCode: (id: number) => void;
  }
}

namespace Private {
  /** Props of {@link Experiment}. */
  export interface IExperimentProps extends ExperimentList.ICallbacks {
    exp: IExperimentSummaryModel;
    expanded: boolean;
    trials: ITrialListModel | null;
  }

  /** One experiment; `data-experiment-id` and `data-state` name it for styles and tests. */
  export function Experiment(props: IExperimentProps): JSX.Element {
    const { exp, expanded } = props;
    const terminal = isTerminal(exp.state);
    const pct = Math.round(exp.progress * 100);
    const button = (action: ExperimentAction): JSX.Element => (
      <ActionButton exp={exp} action={action} onAction={props.onAction} />
    );
    return (
      <li className="jp-DetSidebar-experiment" data-experiment-id={exp.id} data-state={exp.state}>
        <div
          className="jp-DetSidebar-experimentHeader"
          role="button"
          aria-expanded={expanded}
          title={expanded ? 'Hide trials' : 'Show trials'}
          onClick={() => props.onToggle(exp.id)}
        >
          <span className={`jp-DetSidebar-caret${expanded ? ' jp-mod-expanded' : ''}`}>▸</span>
          <span className="jp-DetSidebar-experimentName">
            #{exp.id} {exp.name}
          </span>
          <StateBadge state={exp.state} />
        </div>
        <div className="jp-DetSidebar-experimentStats">
          <div className="jp-DetSidebar-progress" title={`progress ${pct}%`}>
            <div className="jp-DetSidebar-progressFill" style={{ width: `${pct}%` }} />
          </div>
          <span className="jp-DetSidebar-trialCount" title={countsTitle(exp)}>
            {exp.num_trials} trials
          </span>
          <span className="jp-DetSidebar-best" title={`best ${exp.metric ?? 'metric'}`}>
            {exp.metric ?? 'metric'} {formatMetric(exp.best_metric)}
          </span>
          <Sparkline values={exp.sparkline} smallerIsBetter={exp.smaller_is_better} />
          <span
            className="jp-DetSidebar-age"
            title={new Date(exp.created_at * 1000).toLocaleString()}
          >
            {formatAge(exp.created_at)}
          </span>
        </div>
        {exp.error && <div className="jp-DetSidebar-experimentError">{lastLine(exp.error)}</div>}
        <div className="jp-DetSidebar-actions">
          {exp.state === 'ACTIVE' && button('pause')}
          {exp.state === 'PAUSED' && button('activate')}
          {!terminal && button('kill')}
          {terminal && button('delete')}
          <button
            className="jp-DetSidebar-action"
            data-action="insert-code"
            title="Insert code to load the best checkpoint into the active notebook"
            onClick={() => props.onInsertCode(exp.id)}
          >
            Insert code
          </button>
          {exp.dashboard_link && !terminal && (
            <a
              className="jp-DetSidebar-link"
              href={exp.dashboard_link}
              target="_blank"
              rel="noopener noreferrer"
            >
              Dashboard
            </a>
          )}
        </div>
        {expanded && <TrialTable page={props.trials} metric={exp.metric} />}
      </li>
    );
  }

  /** An action's button (`data-action` names it for tests). */
  function ActionButton(props: {
    exp: IExperimentSummaryModel;
    action: ExperimentAction;
    onAction: ExperimentList.ICallbacks['onAction'];
  }): JSX.Element {
    const { exp, action } = props;
    const text = EXPERIMENT_ACTIONS[action];
    return (
      <button
        className={`jp-DetSidebar-action${text.danger ? ' jp-mod-danger' : ''}`}
        data-action={action}
        title={`${text.label} experiment ${exp.id}`}
        onClick={() => props.onAction(exp, action)}
      >
        {text.label}
      </button>
    );
  }

  /** The trial-count tooltip: `2 active, 1 completed`. */
  function countsTitle(exp: IExperimentSummaryModel): string {
    return Object.entries(exp.trial_counts)
      .map(([state, n]) => `${n} ${state.toLowerCase()}`)
      .join(', ');
  }
}
