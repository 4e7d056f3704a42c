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
  /** Where the experiment is in its lifecycle. */
  state: ExperimentState;
  /** The searcher's progress in [0, 1]. */
  progress: number;
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
  /** Length trained as the searcher counts it (its `time_metric`, else steps). */
  searcher_time: number;
  /** Why it is ERROR, if it is. */
  error: string | null;
  /** One series per kind and metric name. */
  metrics: IMetricSeriesModel[];
  /** Its committed checkpoints. */
  checkpoints: ICheckpointModel[];
  /** The tail of its output. */
  logs: ILogLineModel[];
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
  /** What is shown, or why no cluster is. */
  message: string;
  /** Scheduler address. */
  scheduler: string | null;
  /** Dask dashboard URL. */
  dashboard_link: string | null;
  /** Dask workers. */
  workers: IWorkerModel[];
  /** Slots per resource (`GPU`, `CPU`). */
  slots: Record<string, number>;
  /** GPUs (of the workers, or of the server when no cluster is attached). */
  gpus: IGpuModel[];
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
