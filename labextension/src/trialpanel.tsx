import { ReactWidget } from '@jupyterlab/apputils';
import { CommandRegistry } from '@lumino/commands';
import { Poll } from '@lumino/polling';
import * as React from 'react';

import {
  formatAge,
  formatMetric,
  formatPercent,
  formatValue,
  lastLine,
  StateBadge
} from './format';
import { requestAPI } from './handler';
import { detJupyterIcon } from './icons';
import {
  BEST_MARK,
  ICheckpointModel,
  ILogLineModel,
  ILogPageModel,
  ITrialDetailModel
} from './models';
import { SeriesChart } from './sparkline';

/** Trial states after which nothing changes any more. */
const TRIAL_DONE = new Set(['COMPLETED', 'STOPPED', 'CANCELED', 'ERROR']);

/**
 * One trial in the main area: its curves (small), hyperparameters, checkpoints with "insert load
 * code", and its log, live-tailing (`trials/<id>/logs?after=<cursor>`) until the trial has ended
 * and its log is drained. Opened by clicking a trial in the sidebar (command
 * `det-jupyter:open-trial`).
 */
export class TrialPanel extends ReactWidget {
  constructor(options: TrialPanel.IOptions) {
    super();
    this.trialId = options.trialId;
    this._commands = options.commands;
    this._insertCommand = options.insertCheckpointCommand;
    this.id = `det-jupyter-trial-${options.trialId}`;
    this.addClass('jp-DetTrial');
    this.title.label = `Trial ${options.trialId}`;
    this.title.caption = `det_jupyter trial ${options.trialId}`;
    this.title.icon = detJupyterIcon;
    this.title.closable = true;
    this._detailPoll = new Poll({
      factory: () => this._refreshDetail(),
      frequency: { interval: options.refreshInterval ?? 3000, backoff: true, max: 60 * 1000 },
      name: `det-jupyter:trial-${options.trialId}`,
      standby: 'when-hidden'
    });
    this._logPoll = new Poll({
      factory: () => this._tailLogs(),
      frequency: { interval: options.logInterval ?? 1000, backoff: true, max: 30 * 1000 },
      name: `det-jupyter:trial-${options.trialId}-logs`,
      standby: 'when-hidden'
    });
  }

  /** The trial shown. */
  readonly trialId: number;

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._detailPoll.dispose();
    this._logPoll.dispose();
    super.dispose();
  }

  protected render(): JSX.Element {
    const t = this._detail;
    if (!t) {
      return (
        <div className="jp-DetTrial-body">
          {this._error ? (
            <div className="jp-DetSidebar-error">{this._error}</div>
          ) : (
            <div className="jp-DetSidebar-empty">Loading trial {this.trialId}…</div>
          )}
        </div>
      );
    }
    const kept = t.checkpoints.filter(c => c.state !== 'DELETED');
    return (
      <div className="jp-DetTrial-body" data-trial-id={t.id} data-state={t.state}>
        <div className="jp-DetTrial-header">
          <h2>
            {t.is_best && (
              <span className="jp-DetSidebar-star" title="best trial of its experiment">
                {BEST_MARK}
              </span>
            )}
            Trial {t.id}
          </h2>
          <StateBadge state={t.state} />
          <span className="jp-DetTrial-meta">
            experiment {t.experiment_id} · best {formatMetric(t.best_validation)} ·{' '}
            {t.steps_completed} steps
            {t.progress !== null ? ` (${formatPercent(t.progress)})` : ''} · {t.restarts} restarts ·
            run {t.run_id}
            {t.started_at !== null ? ` · started ${formatAge(t.started_at)}` : ''}
          </span>
        </div>
        {this._error && <div className="jp-DetSidebar-error">{this._error}</div>}
        {t.error && (
          <pre className="jp-DetTrial-error" title={t.error}>
            {lastLine(t.error)}
          </pre>
        )}
        <div className="jp-DetTrial-grid">
          <section className="jp-DetTrial-section jp-DetTrial-curves">
            <h3>Curves</h3>
            {t.metrics.length === 0 ? (
              <div className="jp-DetSidebar-empty">No metrics reported yet.</div>
            ) : (
              <div className="jp-DetTrial-charts">
                {t.metrics.map(s => (
                  <SeriesChart
                    key={`${s.kind}-${s.name}`}
                    title={s.kind === 'validation' ? s.name : `${s.name} (training)`}
                    steps={s.steps}
                    values={s.values}
                  />
                ))}
              </div>
            )}
          </section>
          <section className="jp-DetTrial-section jp-DetTrial-hparams">
            <h3>Hyperparameters</h3>
            <table>
              <tbody>
                {Object.entries(t.hparams).map(([k, v]) => (
                  <tr key={k}>
                    <th>{k}</th>
                    <td>{formatValue(v)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
          <section className="jp-DetTrial-section jp-DetTrial-checkpoints">
            <h3>Checkpoints</h3>
            {kept.length === 0 ? (
              <div className="jp-DetSidebar-empty">No checkpoints kept.</div>
            ) : (
              <table>
                <thead>
                  <tr>
                    <th>steps</th>
                    <th>metric</th>
                    <th>uuid</th>
                    <th />
                  </tr>
                </thead>
                <tbody>
                  {kept.map(c => (
                    <tr key={c.uuid} data-uuid={c.uuid}>
                      <td>{c.steps}</td>
                      <td>{formatMetric(c.metric)}</td>
                      <td className="jp-DetTrial-uuid" title={c.uuid}>
                        {c.uuid.slice(0, 8)}
                      </td>
                      <td>
                        <button
                          className="jp-DetSidebar-action"
                          data-action="insert-checkpoint-code"
                          title="Insert code that loads this checkpoint into a new notebook cell"
                          onClick={() => this._insertCode(c)}
                        >
                          Load this one
                        </button>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </section>
        </div>
        <section className="jp-DetTrial-section jp-DetTrial-logSection">
          <h3>
            Log{' '}
            <span className="jp-DetTrial-logState">
              {TRIAL_DONE.has(t.state) ? `(${t.state.toLowerCase()})` : '(live)'}
            </span>
          </h3>
          <pre
            className="jp-DetTrial-logs"
            ref={node => {
              this._logNode = node;
            }}
          >
            {this._skipped > 0 && `… ${this._skipped} earlier lines not shown\n`}
            {this._logs.length === 0 ? 'No output yet.' : this._logs.map(l => l.line).join('\n')}
          </pre>
        </section>
      </div>
    );
  }

  protected onUpdateRequest(msg: Parameters<ReactWidget['onUpdateRequest']>[0]): void {
    const node = this._logNode;
    const atBottom = !node || node.scrollHeight - node.scrollTop - node.clientHeight < 24;
    super.onUpdateRequest(msg);
    if (atBottom) {
      // follow the tail unless the user scrolled up to read; React has rendered by the next frame
      requestAnimationFrame(() => {
        if (this._logNode) {
          this._logNode.scrollTop = this._logNode.scrollHeight;
        }
      });
    }
  }

  private _insertCode(c: ICheckpointModel): void {
    void this._commands.execute(this._insertCommand, {
      experiment: c.experiment_id,
      trial: c.trial_id,
      uuid: c.uuid,
      steps: c.steps
    });
  }

  private async _refreshDetail(): Promise<void> {
    try {
      const first = this._detail === null;
      const detail = await requestAPI<ITrialDetailModel>(
        `trials/${this.trialId}?max_points=200&logs_tail=${first ? Private.TAIL : 0}`
      );
      if (first) {
        this._logs = detail.logs;
        this._cursor = detail.logs_cursor;
      }
      this._detail = detail;
      this._error = null;
      if (TRIAL_DONE.has(detail.state) && !first) {
        // one last read after the end; the log poll drains the rest
        void this._detailPoll.stop();
      }
    } catch (error) {
      this._error = `trial ${this.trialId}: ${(error as Error).message}`;
      throw error;
    } finally {
      this.update();
    }
  }

  private async _tailLogs(): Promise<void> {
    if (this._detail === null) {
      return; // the detail brings the first tail and its cursor
    }
    const page = await requestAPI<ILogPageModel>(
      `trials/${this.trialId}/logs?after=${this._cursor}&tail=${Private.TAIL}`
    );
    if (page.lines.length > 0) {
      this._skipped += page.skipped;
      this._logs = [...this._logs, ...page.lines].slice(-Private.KEEP);
      this._cursor = page.cursor;
      this.update();
    } else if (TRIAL_DONE.has(page.state) && this._detail && TRIAL_DONE.has(this._detail.state)) {
      void this._logPoll.stop(); // ended and drained
    }
  }

  private _commands: CommandRegistry;
  private _insertCommand: string;
  private _detailPoll: Poll;
  private _logPoll: Poll;
  private _detail: ITrialDetailModel | null = null;
  private _logs: ILogLineModel[] = [];
  private _cursor = 0;
  private _skipped = 0;
  private _error: string | null = null;
  private _logNode: HTMLPreElement | null = null;
}

/** Options of {@link TrialPanel}. */
export namespace TrialPanel {
  /** How to build a trial panel. */
  export interface IOptions {
    /** The trial to show. */
    trialId: number;
    /** The application's commands (to run the insert-checkpoint-code command). */
    commands: CommandRegistry;
    /** The id of the command that inserts code loading one checkpoint. */
    insertCheckpointCommand: string;
    /** Milliseconds between refreshes of curves and checkpoints (default 3000). */
    refreshInterval?: number;
    /** Milliseconds between log reads (default 1000). */
    logInterval?: number;
  }
}

namespace Private {
  /** Lines read at once. */
  export const TAIL = 500;
  /** Lines kept in the panel. */
  export const KEEP = 5000;
}
