import {
  Dialog,
  Notification,
  ReactWidget,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import { refreshIcon } from '@jupyterlab/ui-components';
import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import { Poll } from '@lumino/polling';
import * as React from 'react';

import { ClusterSection } from './cluster';
import { EXPERIMENT_ACTIONS, ExperimentAction, ExperimentList } from './experiments';
import { requestAPI } from './handler';
import { detJupyterIcon } from './icons';
import { formatMetric } from './format';
import {
  ExperimentState,
  IClusterModel,
  IExperimentListModel,
  IExperimentSummaryModel,
  isTerminal,
  ITrialListModel,
  ITrialSummaryModel
} from './models';

/**
 * The left-sidebar panel: every experiment of the server's store, live, with its trials, actions
 * and the cluster. It reads only the server extension's REST API; the sections it composes
 * (`ExperimentList`, `TrialTable`, `ClusterSection`) only draw what it fetched. It keeps polling
 * (slowly drawing nothing) while collapsed, so it can notify when an experiment ends or errors.
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
    this._openTrialCommand = options.openTrialCommand;
    this._pageSize = options.pageSize ?? 50;
    const standby = (): boolean | Poll.Standby => !this.isVisible || 'when-hidden';
    this._poll = new Poll({
      auto: false,
      factory: () => this._refreshExperiments(),
      frequency: { interval: options.refreshInterval ?? 2000, backoff: true, max: 60 * 1000 },
      name: 'det-jupyter:experiments',
      standby: 'when-hidden' // not when collapsed: notifications need the states
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

  /** The experiment whose best checkpoint the palette's insert command loads: the last one opened. */
  get selectedExperiment(): number | null {
    return this._selected ?? this._list?.experiments[0]?.id ?? null;
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
        <ExperimentList
          list={this._list}
          expanded={this._expanded}
          trials={this._trials}
          pending={this._pending}
          onToggle={id => this._toggle(id)}
          onAction={(exp, action) => void this._act(exp, action)}
          onInsertCode={id => void this._commands.execute(this._insertCommand, { id })}
          onOpenTrial={(t: ITrialSummaryModel) => {
            this._selected = t.experiment_id;
            void this._commands.execute(this._openTrialCommand, { id: t.id });
          }}
        />
        <ClusterSection cluster={this._cluster} />
      </div>
    );
  }

  private _toggle(id: number): void {
    if (this._expanded.has(id)) {
      this._expanded.delete(id);
      this._trials.delete(id);
    } else {
      this._expanded.add(id);
      this._selected = id;
      void this._loadTrials(id).then(() => this.update());
    }
    this.update();
  }

  private async _loadTrials(id: number): Promise<void> {
    try {
      const page = await requestAPI<ITrialListModel>(`experiments/${id}/trials?limit=100`);
      if (this._expanded.has(id)) {
        this._trials.set(id, page);
      }
    } catch (error) {
      this._error = `trials of experiment ${id}: ${(error as Error).message}`;
    }
  }

  private async _act(exp: IExperimentSummaryModel, action: ExperimentAction): Promise<void> {
    const text = EXPERIMENT_ACTIONS[action];
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
        // shown until the state moves on (never a stale "requested" after it did)
        this._pending.set(exp.id, action);
        this._pendingFrom.set(exp.id, exp.state);
      }
    } catch (error) {
      void showErrorMessage(`Could not ${action} experiment ${exp.id}`, (error as Error).message);
    }
    void this._poll.refresh();
  }

  private async _refreshExperiments(): Promise<void> {
    try {
      this._list = await requestAPI<IExperimentListModel>(`experiments?limit=${this._pageSize}`);
      this._noticeChanges(this._list);
      const shown = new Set(this._list.experiments.map(e => e.id));
      for (const id of [...this._expanded]) {
        if (!shown.has(id)) {
          this._expanded.delete(id);
          this._trials.delete(id);
        }
      }
      if (this.isVisible) {
        await Promise.all([...this._expanded].map(id => this._loadTrials(id)));
      }
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
      this._cluster = await requestAPI<IClusterModel>('cluster');
    } finally {
      this.update();
    }
  }

  /** Clear pending actions the state answered; notify when an experiment seen running ended. */
  private _noticeChanges(list: IExperimentListModel): void {
    for (const exp of list.experiments) {
      const from = this._pendingFrom.get(exp.id);
      if (from !== undefined && (exp.state !== from || isTerminal(exp.state))) {
        this._pending.delete(exp.id);
        this._pendingFrom.delete(exp.id);
      }
      const before = this._states.get(exp.id);
      this._states.set(exp.id, exp.state);
      if (before === undefined || isTerminal(before) || !isTerminal(exp.state)) {
        continue; // first sight, or no end now
      }
      const name = `Experiment ${exp.id} (${exp.name})`;
      const best =
        exp.best_trial_id !== null
          ? `: best ${exp.metric ?? 'metric'} ${formatMetric(exp.best_metric)} (trial ${exp.best_trial_id})`
          : '';
      const actions = [
        { label: 'Show', callback: () => this._commands.execute('det-jupyter:open-sidebar') }
      ];
      if (exp.state === 'COMPLETED') {
        Notification.success(`${name} completed${best}`, { autoClose: 8000, actions });
      } else if (exp.state === 'ERROR') {
        const why = exp.error ? `: ${exp.error.trim().split('\n').pop()}` : '';
        Notification.error(`${name} ended with an error${why}`, { autoClose: false, actions });
      } else {
        Notification.info(`${name} was canceled${best}`, { autoClose: 8000, actions });
      }
    }
  }

  private _commands: CommandRegistry;
  private _insertCommand: string;
  private _openTrialCommand: string;
  private _pageSize: number;
  private _selected: number | null = null;
  private _states = new Map<number, ExperimentState>();
  private _pending = new Map<number, ExperimentAction>();
  private _pendingFrom = new Map<number, ExperimentState>();
  private _poll: Poll;
  private _clusterPoll: Poll;
  private _list: IExperimentListModel | null = null;
  private _cluster: IClusterModel | null = null;
  private _error: string | null = null;
  private _expanded = new Set<number>();
  private _trials = new Map<number, ITrialListModel>();
}

/** Options and types of {@link DetSidebar}. */
export namespace DetSidebar {
  /** How to build the sidebar. */
  export interface IOptions {
    /** The application's commands (to run the insert-code command). */
    commands: CommandRegistry;
    /** The id of the command that inserts the load-the-best-checkpoint code. */
    insertCommand: string;
    /** The id of the command that opens a trial's detail panel. */
    openTrialCommand: string;
    /** Milliseconds between experiment-list refreshes (default 2000). */
    refreshInterval?: number;
    /** Milliseconds between cluster refreshes (default 5000). */
    clusterRefreshInterval?: number;
    /** How many experiments to show (default 50). */
    pageSize?: number;
  }
}
