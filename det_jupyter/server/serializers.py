"""The one wire format of the REST API: JSON shapes as ``TypedDict`` s, built only by ``serialize_*``.

``labextension/src/wire.ts`` is generated from the shapes here (their types and the ``Attributes:``
of their docstrings): after changing one, run ``python -m det_jupyter.server.wire_types``;
``tests/server_tests/test_wire_format.py`` fails until then. Values are JSON-safe: NaN and infinities
(a diverged loss, an unknown GPU utilisation) become ``null``, because browsers' ``JSON.parse``
rejects them.

Example:
    >>> serialize_log(LogRow(trial_id=1, run_id=0, ts=1.5, line="epoch 1"))
    {'run_id': 0, 'ts': 1.5, 'line': 'epoch 1'}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, TypedDict

from det_jupyter.engine.gpu import GpuInfo
from det_jupyter.searcher.ranking import best_value
from det_jupyter.states import ControlAction, ExperimentState, TrialState
from det_jupyter.store.sqlite import CheckpointRow, ExperimentRow, LogRow, MetricRow, TrialRow, TrialStats

__all__ = [
    "ActionModel",
    "CheckpointModel",
    "ClusterModel",
    "ExperimentDetailModel",
    "ExperimentListModel",
    "ExperimentSummaryModel",
    "GpuModel",
    "LogLineModel",
    "MetricSeriesModel",
    "TrialDetailModel",
    "TrialListModel",
    "TrialSummaryModel",
    "WorkerModel",
    "downsample",
    "json_safe",
    "serialize_action",
    "serialize_checkpoint",
    "serialize_cluster",
    "serialize_experiment_detail",
    "serialize_experiment_summary",
    "serialize_gpu",
    "serialize_log",
    "serialize_metric_series",
    "serialize_trial_detail",
    "serialize_trial_summary",
]


class ExperimentSummaryModel(TypedDict):
    """One row of the experiment list.

    Attributes:
        id: Experiment id in the store.
        name: The config's ``name``.
        description: The config's ``description``.
        state: Where the experiment is in its lifecycle.
        progress: The searcher's progress in [0, 1].
        searcher: Searcher name (``single``, ``grid``, ``random``, ``adaptive_asha``, ...).
        metric: The searcher metric, e.g. ``val_loss``.
        smaller_is_better: Whether a smaller searcher metric is better.
        num_trials: All trials of the experiment.
        trial_counts: Trials per trial state (states without trials are left out).
        best_metric: Best searcher-metric value over all trials, ``null`` before any validation.
        sparkline: Trials' best metric values in creation order, downsampled (for the sparkline).
        created_at: Creation time, seconds since the epoch.
        ended_at: End time, seconds since the epoch, once terminal.
        dashboard_link: The Dask dashboard of the cluster running it.
        error: Why it is ERROR, if it is.
    """

    id: int
    name: str
    description: str
    state: Annotated[str, ExperimentState]
    progress: float
    searcher: str
    metric: str | None
    smaller_is_better: bool
    num_trials: int
    trial_counts: dict[str, int]
    best_metric: float | None
    sparkline: list[float]
    created_at: float
    ended_at: float | None
    dashboard_link: str | None
    error: str | None


class ExperimentListModel(TypedDict):
    """A page of experiments, newest first.

    Attributes:
        experiments: The page.
        total: Experiments in the store.
        limit: Page size asked for.
        offset: Offset asked for.
    """

    experiments: list[ExperimentSummaryModel]
    total: int
    limit: int
    offset: int


class TrialSummaryModel(TypedDict):
    """One row of a trial table.

    Attributes:
        id: Trial id.
        experiment_id: Its experiment.
        request_id: The searcher's request number.
        hparams: Hyperparameters of the trial.
        state: Where the trial is in its lifecycle.
        restarts: Failures restarted so far.
        steps_completed: Steps (batches/epochs/records) trained.
        best_validation: Best searcher-metric value.
        latest_validation: Latest searcher-metric value.
        worker: Worker address running it.
        created_at: Creation time, seconds since the epoch.
        started_at: Start of the first run.
        ended_at: End time once terminal.
    """

    id: int
    experiment_id: int
    request_id: int
    hparams: dict[str, Any]
    state: Annotated[str, TrialState]
    restarts: int
    steps_completed: int
    best_validation: float | None
    latest_validation: float | None
    worker: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None


class TrialListModel(TypedDict):
    """A page of an experiment's trials, in creation order.

    Attributes:
        trials: The page.
        total: All trials of the experiment.
        limit: Page size asked for.
        offset: Offset asked for.
    """

    trials: list[TrialSummaryModel]
    total: int
    limit: int
    offset: int


class ExperimentDetailModel(ExperimentSummaryModel):
    """An experiment with its config and the first page of its trials.

    Attributes:
        config: The experiment config as given (JSON-safe).
        entrypoint_name: Name of the training function.
        seed: The experiment's random seed.
        owner: The controller running it (``host:pid:nonce``), while one does.
        heartbeat: The controller's last sign of life, seconds since the epoch.
        cluster_address: Scheduler address of the Dask cluster running it.
        trials: The first page of its trials.
    """

    config: dict[str, Any]
    entrypoint_name: str
    seed: int
    owner: str | None
    heartbeat: float | None
    cluster_address: str | None
    trials: TrialListModel


class MetricSeriesModel(TypedDict):
    """One metric of one kind (``training`` / ``validation``) of a trial, possibly downsampled.

    Attributes:
        kind: ``training`` or ``validation``.
        name: Metric name, e.g. ``loss``.
        steps: Steps of the points kept, ascending.
        values: Values at those steps (``null`` for NaN or infinite ones).
        total_points: Points before downsampling.
    """

    kind: str
    name: str
    steps: list[int]
    values: list[float | None]
    total_points: int


class CheckpointModel(TypedDict):
    """A committed checkpoint.

    Attributes:
        uuid: Checkpoint UUID (its directory in checkpoint storage).
        trial_id: The trial that saved it.
        experiment_id: Its experiment.
        run_id: The run of the trial that saved it.
        steps: Steps trained when it was saved.
        state: ``COMPLETED``, or ``DELETED`` by the garbage-collection policy.
        metric: The searcher metric at that step, if validated.
        metadata: Metadata the trial saved with it.
        resources: Files in it and their sizes in bytes.
        created_at: When it was committed, seconds since the epoch.
    """

    uuid: str
    trial_id: int
    experiment_id: int
    run_id: int
    steps: int
    state: str
    metric: float | None
    metadata: dict[str, Any]
    resources: dict[str, int]
    created_at: float


class LogLineModel(TypedDict):
    """One line of a trial's output.

    Attributes:
        run_id: The run of the trial that printed it.
        ts: When, seconds since the epoch.
        line: The text, without its newline.
    """

    run_id: int
    ts: float
    line: str


class TrialDetailModel(TrialSummaryModel):
    """A trial with its metric series, checkpoints and the tail of its log.

    Attributes:
        run_id: The current run (restarts and resumes start new ones).
        searcher_time: Length trained as the searcher counts it (its ``time_metric``, else steps).
        error: Why it is ERROR, if it is.
        metrics: One series per kind and metric name.
        checkpoints: Its committed checkpoints.
        logs: The tail of its output.
    """

    run_id: int
    searcher_time: float
    error: str | None
    metrics: list[MetricSeriesModel]
    checkpoints: list[CheckpointModel]
    logs: list[LogLineModel]


class GpuModel(TypedDict):
    """One GPU as NVML sees it.

    Attributes:
        index: NVML index.
        uuid: GPU UUID.
        name: Model name.
        memory_total_mb: Total memory, MiB.
        memory_used_mb: Used memory, MiB.
        utilization_percent: Utilisation in percent, ``null`` when NVML cannot tell.
    """

    index: int
    uuid: str
    name: str
    memory_total_mb: float
    memory_used_mb: float
    utilization_percent: float | None


class WorkerModel(TypedDict):
    """One Dask worker of the attached cluster.

    Attributes:
        address: Worker address.
        name: Worker name.
        host: Host name.
        nthreads: Threads.
        resources: Dask resources (``GPU`` / ``CPU`` slots).
        gpus: Its pinned GPUs.
    """

    address: str
    name: str
    host: str
    nthreads: int
    resources: dict[str, float]
    gpus: list[GpuModel]


class ClusterModel(TypedDict):
    """The cluster the server describes, or the server machine's GPUs when none is attached.

    Attributes:
        attached: Whether a Dask cluster is described (else: the server machine's GPUs).
        message: What is shown, or why no cluster is.
        scheduler: Scheduler address.
        dashboard_link: Dask dashboard URL.
        workers: Dask workers.
        slots: Slots per resource (``GPU``, ``CPU``).
        gpus: GPUs (of the workers, or of the server when no cluster is attached).
    """

    attached: bool
    message: str
    scheduler: str | None
    dashboard_link: str | None
    workers: list[WorkerModel]
    slots: dict[str, float]
    gpus: list[GpuModel]


class ActionModel(TypedDict):
    """The answer to a control action: the request written into the store.

    Attributes:
        experiment_id: The experiment.
        action: The action requested.
        request_id: The request row id.
        state: The experiment's state when the request was written.
    """

    experiment_id: int
    action: Annotated[str, ControlAction]
    request_id: int
    state: Annotated[str, ExperimentState]


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf floats replaced by ``None``, recursively (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def downsample(n: int, max_points: int | None) -> list[int]:
    """Indices of ``n`` points to keep: all, or ``max_points`` evenly spaced ones with the first and last.

    >>> downsample(10, 4)
    [0, 3, 6, 9]
    >>> downsample(3, None)
    [0, 1, 2]
    """
    if max_points is None or n <= max_points:
        return list(range(n))
    if max_points == 1:
        return [n - 1]
    step = (n - 1) / (max_points - 1)
    return sorted({round(i * step) for i in range(max_points)})


def serialize_experiment_summary(
    row: ExperimentRow, stats: TrialStats, best_values: Sequence[float], *, sparkline_points: int = 40
) -> ExperimentSummaryModel:
    """An experiment row plus its trial aggregates; ``best_values`` are the trials' best metrics in order."""
    searcher = row.config.get("searcher", {}) or {}
    smaller = bool(searcher.get("smaller_is_better", True))
    best = best_value(best_values, smaller_is_better=smaller)  # det_jupyter.searcher.ranking decides "best"
    values = [best_values[i] for i in downsample(len(best_values), sparkline_points)]
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "state": row.state.value,
        "progress": float(row.progress),
        "searcher": str(searcher.get("name", "")),
        "metric": searcher.get("metric"),
        "smaller_is_better": smaller,
        "num_trials": stats.total,
        "trial_counts": {state.value: n for state, n in sorted(stats.counts.items())},
        "best_metric": _num(best),
        "sparkline": [v for v in (_num(x) for x in values) if v is not None],
        "created_at": row.created_at,
        "ended_at": row.ended_at,
        "dashboard_link": row.dashboard_link,
        "error": row.error,
    }


def serialize_trial_summary(row: TrialRow) -> TrialSummaryModel:
    """A trial row for a trial table."""
    return {
        "id": row.id,
        "experiment_id": row.experiment_id,
        "request_id": row.request_id,
        "hparams": json_safe(row.hparams),
        "state": row.state.value,
        "restarts": row.restarts,
        "steps_completed": row.steps_completed,
        "best_validation": _num(row.best_validation),
        "latest_validation": _num(row.latest_validation),
        "worker": row.worker,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "ended_at": row.ended_at,
    }


def serialize_experiment_detail(
    row: ExperimentRow,
    stats: TrialStats,
    best_values: Sequence[float],
    trials: Sequence[TrialRow],
    *,
    limit: int,
    offset: int,
) -> ExperimentDetailModel:
    """An experiment with its config and one page of its trials."""
    summary = serialize_experiment_summary(row, stats, best_values)
    return {
        **summary,
        "config": json_safe(row.config),
        "entrypoint_name": row.entrypoint_name,
        "seed": row.seed,
        "owner": row.owner,
        "heartbeat": row.heartbeat,
        "cluster_address": row.cluster_address,
        "trials": {
            "trials": [serialize_trial_summary(t) for t in trials],
            "total": stats.total,
            "limit": limit,
            "offset": offset,
        },
    }


def serialize_metric_series(rows: Sequence[MetricRow], *, max_points: int | None) -> list[MetricSeriesModel]:
    """Reports regrouped as one series per (kind, metric name), steps ascending, downsampled if asked."""
    grouped: dict[tuple[str, str], dict[int, float | None]] = {}
    for r in rows:
        for name, value in r.metrics.items():
            # a restarted run re-reports steps: the newest report of a step wins
            grouped.setdefault((r.kind, str(name)), {})[int(r.steps)] = _num(value)
    out: list[MetricSeriesModel] = []
    for (kind, name), by_step in sorted(grouped.items()):
        steps = sorted(by_step)
        keep = downsample(len(steps), max_points)
        out.append(
            {
                "kind": kind,
                "name": name,
                "steps": [steps[i] for i in keep],
                "values": [by_step[steps[i]] for i in keep],
                "total_points": len(steps),
            }
        )
    return out


def serialize_checkpoint(row: CheckpointRow) -> CheckpointModel:
    """A checkpoint row."""
    return {
        "uuid": row.uuid,
        "trial_id": row.trial_id,
        "experiment_id": row.experiment_id,
        "run_id": row.run_id,
        "steps": row.steps,
        "state": row.state,
        "metric": _num(row.metric),
        "metadata": json_safe(row.metadata),
        "resources": dict(row.resources),
        "created_at": row.created_at,
    }


def serialize_log(row: LogRow) -> LogLineModel:
    """One log line."""
    return {"run_id": row.run_id, "ts": row.ts, "line": row.line}


def serialize_trial_detail(
    row: TrialRow,
    metrics: Sequence[MetricRow],
    checkpoints: Sequence[CheckpointRow],
    logs: Sequence[LogRow],
    *,
    max_points: int | None,
) -> TrialDetailModel:
    """A trial with its metric series, checkpoints and log tail."""
    return {
        **serialize_trial_summary(row),
        "run_id": row.run_id,
        "searcher_time": row.searcher_time,
        "error": row.error,
        "metrics": serialize_metric_series(metrics, max_points=max_points),
        "checkpoints": [serialize_checkpoint(c) for c in checkpoints],
        "logs": [serialize_log(line) for line in logs],
    }


def serialize_gpu(gpu: GpuInfo | Mapping[str, Any]) -> GpuModel:
    """A GPU from :func:`~det_jupyter.engine.gpu.gpu_inventory` or from a worker's description."""
    d = gpu.to_dict() if isinstance(gpu, GpuInfo) else dict(gpu)
    return {
        "index": int(d.get("index", 0)),
        "uuid": str(d.get("uuid", "")),
        "name": str(d.get("name", "")),
        "memory_total_mb": _num(d.get("memory_total_mb")) or 0.0,
        "memory_used_mb": _num(d.get("memory_used_mb")) or 0.0,
        "utilization_percent": _num(d.get("utilization_percent")),
    }


def serialize_cluster(
    summary: Mapping[str, Any] | None, *, server_gpus: Sequence[GpuInfo], message: str
) -> ClusterModel:
    """The attached cluster (from :func:`~det_jupyter.engine.cluster.cluster_summary`), or the server's own GPUs."""
    if summary is None:
        return {
            "attached": False,
            "message": message,
            "scheduler": None,
            "dashboard_link": None,
            "workers": [],
            "slots": {},
            "gpus": [serialize_gpu(g) for g in server_gpus],
        }
    workers: list[WorkerModel] = [
        {
            "address": str(w.get("address", "")),
            "name": str(w.get("name", "")),
            "host": str(w.get("host", "")),
            "nthreads": int(w.get("nthreads", 0)),
            "resources": {str(k): float(v) for k, v in (w.get("resources") or {}).items()},
            "gpus": [serialize_gpu(g) for g in w.get("gpus") or []],
        }
        for w in summary.get("workers", [])
    ]
    return {
        "attached": True,
        "message": message,
        "scheduler": summary.get("scheduler"),
        "dashboard_link": summary.get("dashboard_link"),
        "workers": workers,
        "slots": {str(k): float(v) for k, v in (summary.get("slots") or {}).items()},
        "gpus": [g for w in workers for g in w["gpus"]],
    }


def serialize_action(experiment_id: int, action: str, request_id: int, state: str) -> ActionModel:
    """The control request written for an action."""
    return {"experiment_id": experiment_id, "action": action, "request_id": request_id, "state": state}
