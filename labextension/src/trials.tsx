import * as React from 'react';

import { formatHparams, formatMetric, StateBadge } from './format';
import { ITrialListModel, ITrialSummaryModel } from './models';

/** An expanded experiment's trial table: state, best metric, steps, restarts and hparams. */
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
        <thead>
          <tr>
            <th>trial</th>
            <th>state</th>
            <th title={metric ?? ''}>best</th>
            <th>steps</th>
            <th title="restarts">↻</th>
            <th>hparams</th>
          </tr>
        </thead>
        <tbody>
          {page.trials.map(t => (
            <Private.TrialRow key={t.id} trial={t} />
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
    /** The searcher metric (the title of the `best` column). */
    metric: string | null;
  }
}

namespace Private {
  /** One trial; `data-trial-id` and `data-state` name it for styles and tests. */
  export function TrialRow(props: { trial: ITrialSummaryModel }): JSX.Element {
    const t = props.trial;
    const hparams = formatHparams(t.hparams);
    return (
      <tr className="jp-DetSidebar-trial" data-trial-id={t.id} data-state={t.state}>
        <td>{t.id}</td>
        <td>
          <StateBadge state={t.state} />
        </td>
        <td>{formatMetric(t.best_validation)}</td>
        <td>{t.steps_completed}</td>
        <td>{t.restarts}</td>
        <td className="jp-DetSidebar-hparams" title={hparams}>
          {hparams}
        </td>
      </tr>
    );
  }
}
