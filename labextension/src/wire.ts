// The REST API's wire format, generated from the TypedDicts of det_jupyter/server/wire_models.py.
// Do not edit: change the Python side, then run `python -m det_jupyter.server.wire_types`.

/**
 * Lifecycle of an experiment. ACTIVE: the searcher is creating and running trials. PAUSED: trials
 * checkpointed and stopped; `activate()` resumes them. STOPPING_CANCELED: a kill was requested,
 * trials are exiting. COMPLETED / CANCELED / ERROR: terminal.
 */
export type ExperimentState =
  'ACTIVE' | 'PAUSED' | 'STOPPING_CANCELED' | 'COMPLETED' | 'CANCELED' | 'ERROR';

/**
 * Lifecycle of a trial. QUEUED: waiting for a slot. ACTIVE: running on a worker. PAUSED:
 * checkpointed and stopped with its experiment. COMPLETED: trained to the searcher's max length.
 * STOPPED: stopped early by the searcher (ASHA). CANCELED: killed by the user. ERROR: failed more
 * than `max_restarts` times.
 */
export type TrialState =
  'QUEUED' | 'ACTIVE' | 'PAUSED' | 'COMPLETED' | 'STOPPED' | 'CANCELED' | 'ERROR';

/** A control request written into the store by any reader (widget, sidebar, CLI, API). */
export type ControlAction = 'PAUSE' | 'ACTIVATE' | 'KILL';

/** One row of the experiment list (`ExperimentSummaryModel`). */
export interface IExperimentSummaryModel {
  /** Experiment id in the store. */
  id: number;
  /** The config's `name`. */
  name: string;
  /** The config's `description`. */
  description: string;
  /** The config's `labels`. */
  labels: string[];
  /** Where the experiment is in its lifecycle. */
  state: ExperimentState;
  /**
   * Work done in [0, 1]: trials COMPLETED or STOPPED by the searcher count whole, others by the
   * length they trained (`searcher_time / max_time`), trials not created yet as 0, out of
   * `planned_trials`. 1 only for a COMPLETED experiment; a killed one keeps what it did.
   */
  progress: number;
  /** The searcher's own progress in [0, 1] (1 once the experiment ended). */
  searcher_progress: number;
  /**
   * Trials the searcher plans (`max_trials`, the grid's size, 1 for single), or `null` when
   * unknown; never fewer than the trials created.
   */
  planned_trials: number | null;
  /** Length each trial trains, in `time_metric` units (`null`: the trial's code decides). */
  max_time: number | null;
  /** The unit of `max_time` and of trials' `searcher_time` (`batches`, `epochs`, ...). */
  time_metric: string | null;
  /** The trial with the best searcher metric (ties: the older), `null` before any. */
  best_trial_id: number | null;
  /** Seconds from creation to the end, or to now while it runs. */
  duration: number | null;
  /** Estimated seconds left while ACTIVE (elapsed time scaled by the work left), else `null`. */
  eta: number | null;
  /** Searcher name (`single`, `grid`, `random`, `adaptive_asha`, ...). */
  searcher: string;
  /** The searcher metric, e.g. `val_loss`. */
  metric: string | null;
  /** Whether a smaller searcher metric is better. */
  smaller_is_better: boolean;
  /** All trials of the experiment. */
  num_trials: number;
  /** Trials per trial state (states without trials are left out). */
  trial_counts: Record<string, number>;
  /** Best searcher-metric value over all trials, `null` before any validation. */
  best_metric: number | null;
  /** Trials' best metric values in creation order, downsampled (for the sparkline). */
  sparkline: number[];
  /** Creation time, seconds since the epoch. */
  created_at: number;
  /** End time, seconds since the epoch, once terminal. */
  ended_at: number | null;
  /** The Dask dashboard of the cluster running it. */
  dashboard_link: string | null;
  /** Why it is ERROR, if it is. */
  error: string | null;
}

/** A page of experiments, newest first (`ExperimentListModel`). */
export interface IExperimentListModel {
  /** The page. */
  experiments: IExperimentSummaryModel[];
  /** Experiments in the store. */
  total: number;
  /** Page size asked for. */
  limit: number;
  /** Offset asked for. */
  offset: number;
}

/** One row of a trial table (`TrialSummaryModel`). */
export interface ITrialSummaryModel {
  /** Trial id. */
  id: number;
  /** Its experiment. */
  experiment_id: number;
  /** The searcher's request number. */
  request_id: number;
  /** Hyperparameters of the trial. */
  hparams: Record<string, unknown>;
  /** Where the trial is in its lifecycle. */
  state: TrialState;
  /** Failures restarted so far. */
  restarts: number;
  /** Steps (batches/epochs/records) trained. */
  steps_completed: number;
  /** Length trained as the searcher counts it (its `time_metric`, else steps). */
  searcher_time: number;
  /**
   * `searcher_time / max_time` in [0, 1] (1 once COMPLETED or STOPPED), `null` when the experiment
   * sets no `max_time`.
   */
  progress: number | null;
  /** Whether it is its experiment's best trial (`best_trial_id`). */
  is_best: boolean;
  /** Best searcher-metric value. */
  best_validation: number | null;
  /** Latest searcher-metric value. */
  latest_validation: number | null;
  /** Worker address running it. */
  worker: string | null;
  /** Creation time, seconds since the epoch. */
  created_at: number;
  /** Start of the first run. */
  started_at: number | null;
  /** End time once terminal. */
  ended_at: number | null;
}

/** A page of an experiment's trials, in creation order (`TrialListModel`). */
export interface ITrialListModel {
  /** The page. */
  trials: ITrialSummaryModel[];
  /** All trials of the experiment. */
  total: number;
  /** Page size asked for. */
  limit: number;
  /** Offset asked for. */
  offset: number;
}

/** An experiment with its config and the first page of its trials (`ExperimentDetailModel`). */
export interface IExperimentDetailModel extends IExperimentSummaryModel {
  /** The experiment config as given (JSON-safe). */
  config: Record<string, unknown>;
  /** Name of the training function. */
  entrypoint_name: string;
  /** The experiment's random seed. */
  seed: number;
  /** The controller running it (`host:pid:nonce`), while one does. */
  owner: string | null;
  /** The controller's last sign of life, seconds since the epoch. */
  heartbeat: number | null;
  /** Scheduler address of the Dask cluster running it. */
  cluster_address: string | null;
  /** The first page of its trials. */
  trials: ITrialListModel;
}

/**
 * One metric of one kind (`training` / `validation`) of a trial, possibly downsampled
 * (`MetricSeriesModel`).
 */
export interface IMetricSeriesModel {
  /** `training` or `validation`. */
  kind: string;
  /** Metric name, e.g. `loss`. */
  name: string;
  /** Steps of the points kept, ascending. */
  steps: number[];
  /** Values at those steps (`null` for NaN or infinite ones). */
  values: (number | null)[];
  /** Points before downsampling. */
  total_points: number;
}

/** A committed checkpoint (`CheckpointModel`). */
export interface ICheckpointModel {
  /** Checkpoint UUID (its directory in checkpoint storage). */
  uuid: string;
  /** The trial that saved it. */
  trial_id: number;
  /** Its experiment. */
  experiment_id: number;
  /** The run of the trial that saved it. */
  run_id: number;
  /** Steps trained when it was saved. */
  steps: number;
  /** `COMPLETED`, or `DELETED` by the garbage-collection policy. */
  state: string;
  /** The searcher metric at that step, if validated. */
  metric: number | null;
  /** Metadata the trial saved with it. */
  metadata: Record<string, unknown>;
  /** Files in it and their sizes in bytes. */
  resources: Record<string, number>;
  /** When it was committed, seconds since the epoch. */
  created_at: number;
}

/** One line of a trial's output (`LogLineModel`). */
export interface ILogLineModel {
  /** The run of the trial that printed it. */
  run_id: number;
  /** When, seconds since the epoch. */
  ts: number;
  /** The text, without its newline. */
  line: string;
}

/** A trial with its metric series, checkpoints and the tail of its log (`TrialDetailModel`). */
export interface ITrialDetailModel extends ITrialSummaryModel {
  /** The current run (restarts and resumes start new ones). */
  run_id: number;
  /** Why it is ERROR, if it is. */
  error: string | null;
  /** One series per kind and metric name. */
  metrics: IMetricSeriesModel[];
  /** Its committed checkpoints. */
  checkpoints: ICheckpointModel[];
  /** The tail of its output. */
  logs: ILogLineModel[];
  /** Pass it as `after` to `trials/<id>/logs` for the lines printed since. */
  logs_cursor: number;
}

/**
 * New lines of a trial's log since a cursor (`GET trials/<id>/logs?after=&tail=`), for live tails
 * (`LogPageModel`).
 */
export interface ILogPageModel {
  /** The trial. */
  trial_id: number;
  /** The trial's state now (a tail can stop polling once it is terminal and drained). */
  state: TrialState;
  /** The lines after `after`, oldest first (at most `tail`: the newest ones). */
  lines: ILogLineModel[];
  /** Pass it as `after` next time; equals `after` when nothing is new. */
  cursor: number;
  /** Lines after `after` left out to keep within `tail`. */
  skipped: number;
}

/** One GPU as NVML sees it (`GpuModel`). */
export interface IGpuModel {
  /** NVML index. */
  index: number;
  /** GPU UUID. */
  uuid: string;
  /** Model name. */
  name: string;
  /** Total memory, MiB. */
  memory_total_mb: number;
  /** Used memory, MiB. */
  memory_used_mb: number;
  /** Utilisation in percent, `null` when NVML cannot tell. */
  utilization_percent: number | null;
}

/** One Dask worker of the attached cluster (`WorkerModel`). */
export interface IWorkerModel {
  /** Worker address. */
  address: string;
  /** Worker name. */
  name: string;
  /** Host name. */
  host: string;
  /** Threads. */
  nthreads: number;
  /** Dask resources (`GPU` / `CPU` slots). */
  resources: Record<string, number>;
  /** Its pinned GPUs. */
  gpus: IGpuModel[];
}

/**
 * The cluster the server describes, or the server machine's GPUs when none is attached
 * (`ClusterModel`).
 */
export interface IClusterModel {
  /** Whether a Dask cluster is described (else: the server machine's GPUs). */
  attached: boolean;
  /**
   * Where it was found: `configured` (`c.ExperimentService.scheduler_address`), `experiment` (a
   * running experiment's external cluster), `master` (the home's det-jupyter master and its
   * embedded cluster) or `none`.
   */
  source: string;
  /** What is shown, or why no cluster is. */
  message: string;
  /** Scheduler address. */
  scheduler: string | null;
  /** Dask dashboard URL as the cluster names it (`http://127.0.0.1:8787/status`). */
  dashboard_link: string | null;
  /**
   * The dashboard through jupyter-server-proxy, an absolute path on the Jupyter server
   * (`<base_url>proxy/8787/status`), when that proxy is installed; else `null`.
   */
  dashboard_proxy_path: string | null;
  /** The det-jupyter master's process id when `source` is `master`. */
  master_pid: number | null;
  /** Ids of the experiments running on it (the master's, or the running ones). */
  experiments: number[];
  /** Dask workers. */
  workers: IWorkerModel[];
  /** Slots per resource (`GPU`, `CPU`). */
  slots: Record<string, number>;
  /** GPUs (of the workers, or of the server when no cluster is attached). */
  gpus: IGpuModel[];
}

/**
 * How a state is drawn: a JupyterLab theme variable and its light and dark values
 * (`StateColorModel`).
 */
export interface IStateColorModel {
  /** The JupyterLab CSS variable (follows the theme). */
  css: string;
  /** Its hex value in JupyterLab Light. */
  light: string;
  /** Its hex value in JupyterLab Dark. */
  dark: string;
}

/** The answer to a control action: the request written into the store (`ActionModel`). */
export interface IActionModel {
  /** The experiment. */
  experiment_id: number;
  /** The action requested. */
  action: ControlAction;
  /** The request row id. */
  request_id: number;
  /** The experiment's state when the request was written. */
  state: ExperimentState;
}

/**
 * Colour of every experiment and trial state, shared with the notebook widget (`STATE_COLORS` of
 * det_jupyter/server/palette.py).
 */
export const STATE_COLORS: Record<string, IStateColorModel> = {
  ACTIVE: { css: 'var(--jp-brand-color1)', light: '#1976d2', dark: '#2196f3' },
  PAUSED: { css: 'var(--jp-layout-color4)', light: '#757575', dark: '#757575' },
  STOPPING_CANCELED: { css: 'var(--jp-warn-color1)', light: '#f57c00', dark: '#ff9800' },
  COMPLETED: { css: 'var(--jp-success-color1)', light: '#388e3c', dark: '#4caf50' },
  CANCELED: { css: 'var(--jp-warn-color1)', light: '#f57c00', dark: '#ff9800' },
  ERROR: { css: 'var(--jp-error-color1)', light: '#d32f2f', dark: '#f44336' },
  QUEUED: { css: 'var(--jp-layout-color4)', light: '#757575', dark: '#757575' },
  STOPPED: { css: 'var(--jp-info-color1)', light: '#0097a7', dark: '#00bcd4' }
};

/** Marks the best trial in every view. */
export const BEST_MARK = '★';

/** Written for a missing value. */
export const NO_VALUE = '–';
