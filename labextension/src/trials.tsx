import * as React from 'react';

import { formatHparams, formatMetric, formatPercent, StateDot } from './format';
import { BEST_MARK, ITrialListModel, ITrialSummaryModel } from './models';

/**
 * An expanded experiment's trial table, narrow enough for the sidebar's default 250 px: best mark
 * and id, state as a coloured dot, best metric, and the length trained (percent of `max_time` when
 * the experiment sets one). Hyperparameters are the row's tooltip; a click opens the trial's detail.
 */
export function TrialTable(props: TrialTable.IProps): JSX.Element {
  const { page, metric } = props;
  if (!page) {
    return <div className="jp-DetSidebar-empty">Loading trials…</div>;
  }
  if (page.trials.length === 0) {
    return <div className="jp-DetSidebar-empty">No trials yet.</div>;
  }
  return (
    <div className="jp-DetSidebar-trials">
      <table>
        <colgroup>
          <col className="jp-DetSidebar-colId" />
          <col className="jp-DetSidebar-colState" />
          <col />
          <col className="jp-DetSidebar-colSteps" />
        </colgroup>
        <thead>
          <tr>
            <th>trial</th>
            <th title="state" aria-label="state" />
            <th title={`best ${metric ?? 'searcher metric'}`}>{metric ?? 'best'}</th>
            <th title="length trained (percent of max_time)">done</th>
          </tr>
        </thead>
        <tbody>
          {page.trials.map(t => (
            <Private.TrialRow key={t.id} trial={t} onOpen={props.onOpen} />
          ))}
        </tbody>
      </table>
      {page.total > page.trials.length && (
        <div className="jp-DetSidebar-more">
          showing {page.trials.length} of {page.total} trials
        </div>
      )}
    </div>
  );
}

/** Props of {@link TrialTable}. */
export namespace TrialTable {
  /** What the table shows. */
  export interface IProps {
    /** The first page of the experiment's trials; `null` while it loads. */
    page: ITrialListModel | null;
    /** The searcher metric (the header of the best-value column). */
    metric: string | null;
    /** Open a trial's detail (curves, hparams, checkpoints, logs). */
    onOpen: (trial: ITrialSummaryModel) => void;
  }
}

namespace Private {
  /** One trial; `data-trial-id`, `data-state` and `data-best` name it for styles and tests. */
  export function TrialRow(props: {
    trial: ITrialSummaryModel;
    onOpen: TrialTable.IProps['onOpen'];
  }): JSX.Element {
    const t = props.trial;
    const trained = t.progress === null ? `${t.steps_completed}` : formatPercent(t.progress);
    const tip =
      `trial ${t.id}${t.is_best ? ' (best)' : ''}: ${t.state.toLowerCase()}, ` +
      `${t.steps_completed} steps, ${t.restarts} restarts\n${formatHparams(t.hparams)}\n` +
      'click for curves, checkpoints and logs';
    return (
      <tr
        className="jp-DetSidebar-trial"
        data-trial-id={t.id}
        data-state={t.state}
        data-best={t.is_best ? 'true' : undefined}
        title={tip}
        tabIndex={0}
        onClick={() => props.onOpen(t)}
        onKeyDown={e => {
          if (e.key === 'Enter') {
            props.onOpen(t);
          }
        }}
      >
        <td>
          <span className="jp-DetSidebar-star">{t.is_best ? BEST_MARK : ''}</span>
          {t.id}
        </td>
        <td>
          <StateDot state={t.state} />
        </td>
        <td className="jp-DetSidebar-num">{formatMetric(t.best_validation)}</td>
        <td className="jp-DetSidebar-num">
          {trained}
          {t.restarts > 0 ? ` ↻${t.restarts}` : ''}
        </td>
      </tr>
    );
  }
}
