/**
 * The REST API's wire format: mirrors `det_jupyter/server/serializers.py` field by field.
 * Change both together.
 */

/** One row of the experiment list (`ExperimentSummaryModel`). */
export interface IExperimentSummary {
  /** Experiment id in the store. */
  id: number;
  /** The config's `name`. */
  name: string;
  /** The config's `description`. */
  description: string;
  /** ACTIVE, PAUSED, STOPPING_CANCELED, COMPLETED, CANCELED or ERROR. */
  state: ExperimentState;
  /** The searcher's progress in [0, 1]. */
  progress: number;
  /** Searcher name (single, grid, random, adaptive_asha, ...). */
  searcher: string;
  /** The searcher metric, e.g. `val_loss`. */
  metric: string | null;
  /** Whether a smaller searcher metric is better. */
  smaller_is_better: boolean;
  /** All trials of the experiment. */
  num_trials: number;
  /** Trials per state. */
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

export type ExperimentState =
  'ACTIVE' | 'PAUSED' | 'STOPPING_CANCELED' | 'COMPLETED' | 'CANCELED' | 'ERROR';

/** A page of experiments, newest first (`ExperimentListModel`). */
export interface IExperimentList {
  /** The page. */
  experiments: IExperimentSummary[];
  /** Experiments in the store. */
  total: number;
  /** Page size asked for. */
  limit: number;
  /** Offset asked for. */
  offset: number;
}

/** One row of a trial table (`TrialSummaryModel`). */
export interface ITrialSummary {
  /** Trial id. */
  id: number;
  /** Its experiment. */
  experiment_id: number;
  /** The searcher's request number. */
  request_id: number;
  /** Hyperparameters of the trial. */
  hparams: Record<string, unknown>;
  /** QUEUED, ACTIVE, PAUSED, COMPLETED, STOPPED, CANCELED or ERROR. */
  state: string;
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

/** A page of trials (`TrialListModel`). */
export interface ITrialList {
  /** The page, in creation order. */
  trials: ITrialSummary[];
  /** All trials of the experiment. */
  total: number;
  /** Page size asked for. */
  limit: number;
  /** Offset asked for. */
  offset: number;
}

/** Workers, slots and GPUs (`ClusterModel`). */
export interface ICluster {
  /** Whether a Dask cluster is described (else: the server machine's GPUs). */
  attached: boolean;
  /** What is shown, or why no cluster is. */
  message: string;
  /** Scheduler address. */
  scheduler: string | null;
  /** Dask dashboard URL. */
  dashboard_link: string | null;
  /** Dask workers. */
  workers: IWorker[];
  /** Slots per resource (GPU, CPU). */
  slots: Record<string, number>;
  /** GPUs (of the workers, or of the server when no cluster is attached). */
  gpus: IGpu[];
}

/** One Dask worker (`WorkerModel`). */
export interface IWorker {
  /** Worker address. */
  address: string;
  /** Worker name. */
  name: string;
  /** Host name. */
  host: string;
  /** Threads. */
  nthreads: number;
  /** Dask resources (GPU / CPU slots). */
  resources: Record<string, number>;
  /** Pinned GPUs. */
  gpus: IGpu[];
}

/** One GPU seen by NVML (`GpuModel`). */
export interface IGpu {
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

/** The control request written for an action (`ActionModel`). */
export interface IAction {
  /** The experiment. */
  experiment_id: number;
  /** PAUSE, ACTIVATE or KILL. */
  action: string;
  /** The request row id. */
  request_id: number;
  /** The experiment's state when the request was written. */
  state: string;
}
