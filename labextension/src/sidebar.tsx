import { Dialog, ReactWidget, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { refreshIcon } from '@jupyterlab/ui-components';
import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import { Poll } from '@lumino/polling';
import * as React from 'react';

import { requestAPI } from './handler';
import { detJupyterIcon } from './icons';
import { ICluster, IExperimentList, IExperimentSummary, ITrialList, ITrialSummary } from './models';
import { Sparkline } from './sparkline';

/**
 * The left-sidebar panel: every experiment of the server's store, live, with its trials, actions
 * and the cluster. It reads only the server extension's REST API.
 */
export class DetSidebar extends ReactWidget {
  constructor(options: DetSidebar.IOptions) {
    super();
    this.id = 'det-jupyter-sidebar';
    this.addClass('jp-DetSidebar');
    this.title.icon = detJupyterIcon;
    this.title.caption = 'Experiments (det_jupyter)';
    this._commands = options.commands;
    this._insertCommand = options.insertCommand;
    this._pageSize = options.pageSize ?? 50;
    const standby = (): boolean | Poll.Standby => !this.isVisible || 'when-hidden';
    this._poll = new Poll({
      auto: false,
      factory: () => this._refreshExperiments(),
      frequency: { interval: options.refreshInterval ?? 2000, backoff: true, max: 60 * 1000 },
      name: 'det-jupyter:experiments',
      standby
    });
    this._clusterPoll = new Poll({
      auto: false,
      factory: () => this._refreshCluster(),
      frequency: {
        interval: options.clusterRefreshInterval ?? 5000,
        backoff: true,
        max: 120 * 1000
      },
      name: 'det-jupyter:cluster',
      standby
    });
  }

  /** Milliseconds between refreshes of the experiment list (and expanded trial tables). */
  set refreshInterval(ms: number) {
    this._poll.frequency = { ...this._poll.frequency, interval: ms };
  }

  /** Milliseconds between refreshes of the cluster section. */
  set clusterRefreshInterval(ms: number) {
    this._clusterPoll.frequency = { ...this._clusterPoll.frequency, interval: ms };
  }

  /** Experiments shown (newest first). */
  set pageSize(n: number) {
    this._pageSize = n;
    void this._poll.refresh();
  }

  /** Fetch everything now (the refresh button; after an action). */
  refresh(): void {
    void this._poll.refresh();
    void this._clusterPoll.refresh();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    this._clusterPoll.dispose();
    super.dispose();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    void this._poll.start();
    void this._clusterPoll.start();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.refresh();
  }

  protected render(): JSX.Element {
    return (
      <div className="jp-DetSidebar-body">
        <div className="jp-DetSidebar-header">
          <h2 className="jp-DetSidebar-title">Experiments</h2>
          <span className="jp-DetSidebar-count">{this._list ? `${this._list.total}` : ''}</span>
          <button
            className="jp-DetSidebar-iconButton"
            title="Refresh now"
            aria-label="Refresh"
            onClick={() => this.refresh()}
          >
            <refreshIcon.react tag="span" />
          </button>
        </div>
        {this._error && (
          <div className="jp-DetSidebar-error" role="alert">
            {this._error}
          </div>
        )}
        {this._renderExperiments()}
        {this._renderCluster()}
      </div>
    );
  }

  private _renderExperiments(): JSX.Element {
    if (!this._list) {
      return <div className="jp-DetSidebar-empty">Loading…</div>;
    }
    if (this._list.experiments.length === 0) {
      return (
        <div className="jp-DetSidebar-empty">
          No experiments yet. Start one in a notebook with{' '}
          <code>det_jupyter.create_experiment(config, train)</code>.
        </div>
      );
    }
    const more = this._list.total - this._list.experiments.length;
    return (
      <ul className="jp-DetSidebar-experiments">
        {this._list.experiments.map(exp => this._renderExperiment(exp))}
        {more > 0 && <li className="jp-DetSidebar-more">… and {more} older experiments</li>}
      </ul>
    );
  }

  private _renderExperiment(exp: IExperimentSummary): JSX.Element {
    const expanded = this._expanded.has(exp.id);
    const terminal = Private.TERMINAL.has(exp.state);
    const pct = Math.round(exp.progress * 100);
    return (
      <li
        key={exp.id}
        className="jp-DetSidebar-experiment"
        data-experiment-id={exp.id}
        data-state={exp.state}
      >
        <div
          className="jp-DetSidebar-experimentHeader"
          role="button"
          aria-expanded={expanded}
          title={expanded ? 'Hide trials' : 'Show trials'}
          onClick={() => this._toggle(exp.id)}
        >
          <span className={`jp-DetSidebar-caret${expanded ? ' jp-mod-expanded' : ''}`}>▸</span>
          <span className="jp-DetSidebar-experimentName">
            #{exp.id} {exp.name}
          </span>
          <Private.StateBadge state={exp.state} />
        </div>
        <div className="jp-DetSidebar-experimentStats">
          <div className="jp-DetSidebar-progress" title={`progress ${pct}%`}>
            <div className="jp-DetSidebar-progressFill" style={{ width: `${pct}%` }} />
          </div>
          <span className="jp-DetSidebar-trialCount" title={Private.countsTitle(exp)}>
            {exp.num_trials} trials
          </span>
          <span className="jp-DetSidebar-best" title={`best ${exp.metric ?? 'metric'}`}>
            {exp.metric ?? 'metric'} {Private.formatMetric(exp.best_metric)}
          </span>
          <Sparkline values={exp.sparkline} smallerIsBetter={exp.smaller_is_better} />
          <span
            className="jp-DetSidebar-age"
            title={new Date(exp.created_at * 1000).toLocaleString()}
          >
            {Private.age(exp.created_at)}
          </span>
        </div>
        {exp.error && (
          <div className="jp-DetSidebar-experimentError">{Private.lastLine(exp.error)}</div>
        )}
        <div className="jp-DetSidebar-actions">
          {exp.state === 'ACTIVE' && this._actionButton(exp, 'pause')}
          {exp.state === 'PAUSED' && this._actionButton(exp, 'activate')}
          {!terminal && this._actionButton(exp, 'kill')}
          {terminal && this._actionButton(exp, 'delete')}
          <button
            className="jp-DetSidebar-action"
            data-action="insert-code"
            title="Insert code to load the best checkpoint into the active notebook"
            onClick={() => void this._commands.execute(this._insertCommand, { id: exp.id })}
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
        {expanded && this._renderTrials(exp)}
      </li>
    );
  }

  private _actionButton(exp: IExperimentSummary, action: Private.Action): JSX.Element {
    const text = Private.ACTIONS[action];
    return (
      <button
        className={`jp-DetSidebar-action${text.danger ? ' jp-mod-danger' : ''}`}
        data-action={action}
        title={`${text.label} experiment ${exp.id}`}
        onClick={() => void this._act(exp, action)}
      >
        {text.label}
      </button>
    );
  }

  private _renderTrials(exp: IExperimentSummary): JSX.Element {
    const page = this._trials.get(exp.id);
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
              <th title={exp.metric ?? ''}>best</th>
              <th>steps</th>
              <th title="restarts">↻</th>
              <th>hparams</th>
            </tr>
          </thead>
          <tbody>{page.trials.map(t => this._renderTrial(t))}</tbody>
        </table>
        {page.total > page.trials.length && (
          <div className="jp-DetSidebar-more">
            showing {page.trials.length} of {page.total} trials
          </div>
        )}
      </div>
    );
  }

  private _renderTrial(t: ITrialSummary): JSX.Element {
    const hparams = Private.formatHparams(t.hparams);
    return (
      <tr key={t.id} className="jp-DetSidebar-trial" data-trial-id={t.id} data-state={t.state}>
        <td>{t.id}</td>
        <td>
          <Private.StateBadge state={t.state} />
        </td>
        <td>{Private.formatMetric(t.best_validation)}</td>
        <td>{t.steps_completed}</td>
        <td>{t.restarts}</td>
        <td className="jp-DetSidebar-hparams" title={hparams}>
          {hparams}
        </td>
      </tr>
    );
  }

  private _renderCluster(): JSX.Element {
    const c = this._cluster;
    const dashboard =
      c?.dashboard_link ??
      this._list?.experiments.find(e => !Private.TERMINAL.has(e.state) && e.dashboard_link)
        ?.dashboard_link ??
      null;
    return (
      <div className="jp-DetSidebar-cluster">
        <h3 className="jp-DetSidebar-subtitle">Cluster</h3>
        {!c ? (
          <div className="jp-DetSidebar-empty">Loading…</div>
        ) : (
          <>
            <div className="jp-DetSidebar-clusterMessage">{c.message}</div>
            {c.attached && (
              <div className="jp-DetSidebar-clusterStats">
                <span className="jp-DetSidebar-workers">{c.workers.length} workers</span>
                {Object.entries(c.slots)
                  .filter(([, n]) => n > 0)
                  .map(([name, n]) => (
                    <span key={name} className="jp-DetSidebar-slots">
                      {n} {name} slots
                    </span>
                  ))}
              </div>
            )}
            <div className="jp-DetSidebar-gpus">
              {c.gpus.length === 0 ? (
                <span className="jp-DetSidebar-empty">no GPUs</span>
              ) : (
                c.gpus.map((g, i) => (
                  <div key={`${g.uuid}-${i}`} className="jp-DetSidebar-gpu" title={g.uuid}>
                    <span className="jp-DetSidebar-gpuName">
                      GPU {g.index} {g.name}
                    </span>
                    <div className="jp-DetSidebar-progress">
                      <div
                        className="jp-DetSidebar-progressFill"
                        style={{ width: `${g.utilization_percent ?? 0}%` }}
                      />
                    </div>
                    <span className="jp-DetSidebar-gpuUtil">
                      {g.utilization_percent === null
                        ? '?'
                        : `${Math.round(g.utilization_percent)}%`}{' '}
                      · {Math.round(g.memory_used_mb)}/{Math.round(g.memory_total_mb)} MiB
                    </span>
                  </div>
                ))
              )}
            </div>
          </>
        )}
        {dashboard && (
          <a
            className="jp-DetSidebar-link"
            href={dashboard}
            target="_blank"
            rel="noopener noreferrer"
          >
            Dask dashboard
          </a>
        )}
      </div>
    );
  }

  private _toggle(id: number): void {
    if (this._expanded.has(id)) {
      this._expanded.delete(id);
      this._trials.delete(id);
    } else {
      this._expanded.add(id);
      void this._loadTrials(id).then(() => this.update());
    }
    this.update();
  }

  private async _loadTrials(id: number): Promise<void> {
    try {
      const page = await requestAPI<ITrialList>(`experiments/${id}/trials?limit=100`);
      if (this._expanded.has(id)) {
        this._trials.set(id, page);
      }
    } catch (error) {
      this._error = `trials of experiment ${id}: ${(error as Error).message}`;
    }
  }

  private async _act(exp: IExperimentSummary, action: Private.Action): Promise<void> {
    const text = Private.ACTIONS[action];
    const label = text.label;
    const result = await showDialog({
      title: `${label} experiment ${exp.id}?`,
      body: `${exp.name}: ${text.body}`,
      buttons: [
        Dialog.cancelButton(),
        text.danger ? Dialog.warnButton({ label }) : Dialog.okButton({ label })
      ]
    });
    if (!result.button.accept) {
      return;
    }
    try {
      if (action === 'delete') {
        await requestAPI<void>(`experiments/${exp.id}`, { method: 'DELETE' });
        this._expanded.delete(exp.id);
        this._trials.delete(exp.id);
      } else {
        await requestAPI(`experiments/${exp.id}/actions/${action}`, { method: 'POST' });
      }
    } catch (error) {
      void showErrorMessage(`Could not ${action} experiment ${exp.id}`, (error as Error).message);
    }
    void this._poll.refresh();
  }

  private async _refreshExperiments(): Promise<void> {
    try {
      this._list = await requestAPI<IExperimentList>(`experiments?limit=${this._pageSize}`);
      const shown = new Set(this._list.experiments.map(e => e.id));
      for (const id of [...this._expanded]) {
        if (!shown.has(id)) {
          this._expanded.delete(id);
          this._trials.delete(id);
        }
      }
      await Promise.all([...this._expanded].map(id => this._loadTrials(id)));
      this._error = null;
    } catch (error) {
      this._error = `Cannot reach the det_jupyter server extension: ${(error as Error).message}`;
      throw error; // the poll backs off
    } finally {
      this.update();
    }
  }

  private async _refreshCluster(): Promise<void> {
    try {
      this._cluster = await requestAPI<ICluster>('cluster');
    } finally {
      this.update();
    }
  }

  private _commands: CommandRegistry;
  private _insertCommand: string;
  private _pageSize: number;
  private _poll: Poll;
  private _clusterPoll: Poll;
  private _list: IExperimentList | null = null;
  private _cluster: ICluster | null = null;
  private _error: string | null = null;
  private _expanded = new Set<number>();
  private _trials = new Map<number, ITrialList>();
}

/** Options and types of {@link DetSidebar}. */
export namespace DetSidebar {
  /** How to build the sidebar. */
  export interface IOptions {
    /** The application's commands (to run the insert-code command). */
    commands: CommandRegistry;
    /** The id of the command that inserts the load-the-best-checkpoint code. */
    insertCommand: string;
    /** Milliseconds between experiment-list refreshes (default 2000). */
    refreshInterval?: number;
    /** Milliseconds between cluster refreshes (default 5000). */
    clusterRefreshInterval?: number;
    /** How many experiments to show (default 50). */
    pageSize?: number;
  }
}

namespace Private {
  export type Action = 'pause' | 'activate' | 'kill' | 'delete';

  export const ACTIONS: Record<Action, { label: string; body: string; danger: boolean }> = {
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

  export const TERMINAL = new Set(['COMPLETED', 'CANCELED', 'ERROR']);

  export function StateBadge(props: { state: string }): JSX.Element {
    return (
      <span className="jp-DetSidebar-badge" data-state={props.state}>
        {props.state === 'STOPPING_CANCELED' ? 'STOPPING' : props.state}
      </span>
    );
  }

  export function formatMetric(value: number | null): string {
    if (value === null || value === undefined) {
      return '–';
    }
    return Math.abs(value) >= 1e4 || (Math.abs(value) < 1e-3 && value !== 0)
      ? value.toExponential(2)
      : value.toPrecision(4);
  }

  export function formatHparams(hparams: Record<string, unknown>): string {
    return Object.entries(hparams)
      .map(
        ([k, v]) => `${k}=${typeof v === 'number' ? Number(v.toPrecision(4)) : JSON.stringify(v)}`
      )
      .join(', ');
  }

  export function countsTitle(exp: IExperimentSummary): string {
    return Object.entries(exp.trial_counts)
      .map(([state, n]) => `${n} ${state.toLowerCase()}`)
      .join(', ');
  }

  export function age(createdAt: number): string {
    const seconds = Math.max(0, Date.now() / 1000 - createdAt);
    if (seconds < 60) {
      return `${Math.floor(seconds)}s ago`;
    }
    if (seconds < 3600) {
      return `${Math.floor(seconds / 60)}m ago`;
    }
    if (seconds < 86400) {
      return `${Math.floor(seconds / 3600)}h ago`;
    }
    return `${Math.floor(seconds / 86400)}d ago`;
  }

  export function lastLine(text: string): string {
    const lines = text.trim().split('\n');
    return lines[lines.length - 1];
  }
}
