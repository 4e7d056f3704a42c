import * as React from 'react';

import {
  formatAge,
  formatDuration,
  formatMetric,
  formatPercent,
  lastLine,
  StateBadge
} from './format';
import {
  BEST_MARK,
  IExperimentListModel,
  IExperimentSummaryModel,
  isTerminal,
  ITrialListModel,
  ITrialSummaryModel
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

/** Trial states grouped as the sidebar counts them: finished kinds apart, never one "done". */
export const TRIAL_COUNT_GROUPS: { label: string; states: string[] }[] = [
  { label: 'running', states: ['ACTIVE'] },
  { label: 'queued', states: ['QUEUED'] },
  { label: 'paused', states: ['PAUSED'] },
  { label: 'completed', states: ['COMPLETED'] },
  { label: 'stopped early', states: ['STOPPED'] },
  { label: 'canceled', states: ['CANCELED'] },
  { label: 'errored', states: ['ERROR'] }
];

/**
 * The experiment list, newest first. Each row is compact (name, state, one line of progress,
 * trials and best metric, then description and labels); expanding it shows counts, timing,
 * actions and the trial table.
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
          onOpenTrial={props.onOpenTrial}
          expanded={props.expanded.has(exp.id)}
          pending={props.pending.get(exp.id) ?? null}
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
    /** Ids of the experiments whose details and trials are shown. */
    expanded: ReadonlySet<number>;
    /** The loaded trial pages of expanded experiments. */
    trials: ReadonlyMap<number, ITrialListModel>;
    /** Actions requested from here that the experiment's state does not show yet. */
    pending: ReadonlyMap<number, ExperimentAction>;
  }

  /** What clicks on an experiment call. */
  export interface ICallbacks {
    /** Show or hide an experiment's details and trials. */
    onToggle: (id: number) => void;
    /** Confirm and run an action on an experiment. */
    onAction: (exp: IExperimentSummaryModel, action: ExperimentAction) => void;
    /** Insert the code that loads an experiment's best checkpoint into a new notebook cell. */
    onInsertCode: (id: number) => void;
    /** Open a trial's detail in the main area. */
    onOpenTrial: (trial: ITrialSummaryModel) => void;
  }
}

namespace Private {
  /** Props of {@link Experiment}. */
  export interface IExperimentProps extends ExperimentList.ICallbacks {
    exp: IExperimentSummaryModel;
    expanded: boolean;
    pending: ExperimentAction | null;
    trials: ITrialListModel | null;
  }

  /** One experiment; `data-experiment-id` and `data-state` name it for styles and tests. */
  export function Experiment(props: IExperimentProps): JSX.Element {
    const { exp, expanded } = props;
    const pct = formatPercent(exp.progress);
    const planned = exp.planned_trials ?? exp.num_trials;
    const fullName = `#${exp.id} ${exp.name}`;
    return (
      <li
        className={`jp-DetSidebar-experiment${expanded ? ' jp-mod-expanded' : ''}`}
        data-experiment-id={exp.id}
        data-state={exp.state}
      >
        <div
          className="jp-DetSidebar-experimentHeader"
          role="button"
          tabIndex={0}
          aria-expanded={expanded}
          title={`${fullName}${exp.description ? `\n${exp.description}` : ''}\n${
            expanded ? 'click to hide details' : 'click for details and trials'
          }`}
          onClick={() => props.onToggle(exp.id)}
          onKeyDown={e => {
            if (e.key === 'Enter' || e.key === ' ') {
              e.preventDefault();
              props.onToggle(exp.id);
            }
          }}
        >
          <span className={`jp-DetSidebar-caret${expanded ? ' jp-mod-expanded' : ''}`}>▸</span>
          <span className="jp-DetSidebar-experimentName">
            <span className="jp-DetSidebar-experimentId">#{exp.id}</span> {exp.name}
          </span>
          <StateBadge state={exp.state} />
        </div>
        <div className="jp-DetSidebar-experimentStats">
          <div
            className="jp-DetSidebar-progress"
            role="progressbar"
            aria-valuenow={Math.floor(exp.progress * 100)}
            aria-valuemin={0}
            aria-valuemax={100}
            title={progressTitle(exp)}
          >
            <div
              className="jp-DetSidebar-progressFill"
              style={{ width: `${Math.min(100, exp.progress * 100)}%` }}
              data-state={exp.state}
            />
          </div>
          <span className="jp-DetSidebar-pct" title={progressTitle(exp)}>
            {pct}
          </span>
          <span className="jp-DetSidebar-trialCount" title={countsTitle(exp)}>
            {exp.num_trials}/{planned} trials
          </span>
          <span
            className="jp-DetSidebar-best"
            title={`best ${exp.metric ?? 'metric'}${
              exp.best_trial_id !== null ? ` (trial ${exp.best_trial_id})` : ''
            }`}
          >
            {exp.best_trial_id !== null && <span className="jp-DetSidebar-star">{BEST_MARK}</span>}
            {formatMetric(exp.best_metric)}
          </span>
        </div>
        {(exp.description || exp.labels.length > 0) && (
          <div className="jp-DetSidebar-describe">
            {exp.description && (
              <span className="jp-DetSidebar-description" title={exp.description}>
                {exp.description}
              </span>
            )}
            {exp.labels.map(label => (
              <span key={label} className="jp-DetSidebar-label" title={`label ${label}`}>
                {label}
              </span>
            ))}
          </div>
        )}
        {exp.error && (
          <div className="jp-DetSidebar-experimentError" title={exp.error}>
            {lastLine(exp.error)}
          </div>
        )}
        {props.pending && (
          <div className="jp-DetSidebar-pending" role="status">
            {EXPERIMENT_ACTIONS[props.pending].label.toLowerCase()} requested…
          </div>
        )}
        {expanded && <Details {...props} />}
      </li>
    );
  }

  /** The expanded part: counts, timing, actions (harmless first, destructive apart) and trials. */
  function Details(props: IExperimentProps): JSX.Element {
    const { exp } = props;
    const terminal = isTerminal(exp.state);
    const button = (action: ExperimentAction): JSX.Element => (
      <ActionButton exp={exp} action={action} onAction={props.onAction} />
    );
    const counts = TRIAL_COUNT_GROUPS.map(g => ({
      label: g.label,
      n: g.states.reduce((sum, s) => sum + (exp.trial_counts[s] ?? 0), 0)
    })).filter(c => c.n > 0);
    const length =
      exp.max_time !== null ? `${exp.max_time} ${exp.time_metric ?? 'steps'} per trial` : null;
    return (
      <div className="jp-DetSidebar-details">
        <div className="jp-DetSidebar-counts" data-role="trial-counts">
          {counts.length === 0
            ? 'no trials yet'
            : counts.map(c => (
                <span key={c.label} className="jp-DetSidebar-countItem">
                  {c.n} {c.label}
                </span>
              ))}
        </div>
        <div className="jp-DetSidebar-timing">
          <span title={new Date(exp.created_at * 1000).toLocaleString()}>
            {formatAge(exp.created_at)}
          </span>
          <span title="duration">
            {terminal ? 'ran' : 'running'} {formatDuration(exp.duration)}
          </span>
          {exp.eta !== null && (
            <span title="estimated time left">ETA {formatDuration(exp.eta)}</span>
          )}
        </div>
        <div className="jp-DetSidebar-timing">
          <span>{exp.searcher}</span>
          {length && <span>{length}</span>}
          <Sparkline values={exp.sparkline} smallerIsBetter={exp.smaller_is_better} width={64} />
        </div>
        <div className="jp-DetSidebar-actions">
          {exp.state === 'ACTIVE' && button('pause')}
          {exp.state === 'PAUSED' && button('activate')}
          <button
            className="jp-DetSidebar-action"
            data-action="insert-code"
            title={`Insert code that loads the best checkpoint of experiment ${exp.id} into a new cell`}
            onClick={() => props.onInsertCode(exp.id)}
          >
            Insert code
          </button>
        </div>
        <TrialTable page={props.trials} metric={exp.metric} onOpen={props.onOpenTrial} />
        <div className="jp-DetSidebar-danger">
          {!terminal && button('kill')}
          {terminal && button('delete')}
        </div>
      </div>
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
        title={`${text.label} experiment ${exp.id}…`}
        onClick={() => props.onAction(exp, action)}
      >
        {text.danger ? `${text.label}…` : text.label}
      </button>
    );
  }

  /** The progress tooltip: what the bar means. */
  function progressTitle(exp: IExperimentSummaryModel): string {
    const planned = exp.planned_trials ?? exp.num_trials;
    return (
      `${formatPercent(exp.progress)} of the planned work done ` +
      `(${planned} trials${exp.max_time !== null ? ` × ${exp.max_time} ${exp.time_metric ?? 'steps'}` : ''})` +
      (exp.eta !== null ? `; about ${formatDuration(exp.eta)} left` : '')
    );
  }

  /** The trial-count tooltip: `2 running, 1 completed, 1 canceled`. */
  function countsTitle(exp: IExperimentSummaryModel): string {
    const parts = TRIAL_COUNT_GROUPS.map(g => ({
      label: g.label,
      n: g.states.reduce((sum, s) => sum + (exp.trial_counts[s] ?? 0), 0)
    }))
      .filter(c => c.n > 0)
      .map(c => `${c.n} ${c.label}`);
    const planned = exp.planned_trials;
    return (
      `${exp.num_trials} created` +
      (planned !== null ? ` of ${planned} planned` : '') +
      (parts.length ? `: ${parts.join(', ')}` : '')
    );
  }
}
