"""The ``serialize_*`` functions: store rows in, the REST API's JSON shapes out (one wire format).

The shapes are the ``TypedDict`` s of :mod:`det_jupyter.server.wire_models` (re-exported here), from
which ``labextension/src/wire.ts`` is generated. Values are JSON-safe: NaN and infinities
(a diverged loss, an unknown GPU utilisation) become ``null``, because browsers' ``JSON.parse``
rejects them.

Example:
    >>> serialize_log(LogRow(trial_id=1, run_id=0, ts=1.5, line="epoch 1"))
    {'run_id': 0, 'ts': 1.5, 'line': 'epoch 1'}
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from det_jupyter.config.redact import redact_config
from det_jupyter.searcher.ranking import best_index, best_value
from det_jupyter.server.dashboard import direct_dashboard_link
from det_jupyter.server.wire_models import (
    ActionModel,
    CheckpointModel,
    ClusterModel,
    ExperimentDetailModel,
    ExperimentSummaryModel,
    GpuModel,
    LogLineModel,
    LogPageModel,
    MetricSeriesModel,
    TrialDetailModel,
    TrialSummaryModel,
    WorkerModel,
)
from det_jupyter.states import ExperimentState
from det_jupyter.store import (
    CheckpointRow,
    ExperimentAggregate,
    ExperimentRow,
    LogRow,
    MetricRow,
    TrialRow,
    TrialStats,
)
from det_jupyter.store.progress import Plan, experiment_progress, plan_of
from det_jupyter.store.progress import trial_progress as _trial_progress
from det_jupyter.worker.gpu import GpuInfo

__all__ = [
    "best_trial_id",
    "downsample",
    "json_safe",
    "max_time_of",
    "planned_trials",
    "serialize_action",
    "serialize_checkpoint",
    "serialize_cluster",
    "serialize_experiment_detail",
    "serialize_experiment_summary",
    "serialize_gpu",
    "serialize_log",
    "serialize_log_page",
    "serialize_metric_series",
    "serialize_trial_detail",
    "serialize_trial_summary",
    "trial_progress",
    "work_progress",
]


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


def _searcher(config: Mapping[str, Any]) -> Mapping[str, Any]:
    searcher = config.get("searcher") or {}
    return searcher if isinstance(searcher, Mapping) else {}


def max_time_of(config: Mapping[str, Any]) -> float | None:
    """The searcher's ``max_time`` of a stored config (``None`` when unset: the trial's code decides)."""
    return plan_of(config).max_time


def planned_trials(config: Mapping[str, Any]) -> int | None:
    """How many trials an experiment's (stored) config plans: ``max_trials``, the grid's size, 1 for single.

    >>> planned_trials({"searcher": {"name": "random", "max_trials": 8}})
    8
    >>> planned_trials({"searcher": {"name": "single"}}), planned_trials({}) is None
    (1, True)
    """
    return plan_of(config).trials


def trial_progress(row: TrialRow, plan: Plan | float | None) -> float | None:
    """How much of its planned length a trial trained, in [0, 1] (:func:`det_jupyter.store.progress.trial_progress`).

    ``plan``: its experiment's :class:`~det_jupyter.store.progress.Plan`, or only its ``max_time``
    (the unit unknown: the length the searcher heard of counts).
    """
    if not isinstance(plan, Plan):
        plan = Plan(trials=None, max_time=plan)
    return _trial_progress(
        row.state, searcher_time=row.searcher_time, steps_completed=row.steps_completed, plan=plan
    )


def work_progress(row: ExperimentRow, trials: Sequence[TrialRow]) -> float:
    """The work an experiment did, in [0, 1]: :func:`det_jupyter.store.progress.experiment_progress`.

    The one definition every surface shows (a killed experiment keeps what it did; the engine's
    own ``progress``, the searcher's, is 1 for every ended experiment and travels as ``searcher_progress``).
    """
    return experiment_progress(row, trials)


def best_trial_id(trials: Sequence[TrialRow], *, smaller_is_better: bool) -> int | None:
    """The id of the trial with the best searcher metric (:mod:`det_jupyter.searcher.ranking`; ties: the older)."""
    ordered = sorted(trials, key=lambda t: t.id)
    i = best_index([t.best_validation for t in ordered], smaller_is_better=smaller_is_better)
    return None if i is None else ordered[i].id


def serialize_experiment_summary(
    row: ExperimentRow,
    stats: TrialStats,
    best_values: Sequence[float],
    trials: Sequence[TrialRow] = (),
    *,
    aggregate: ExperimentAggregate | None = None,
    sparkline_points: int = 40,
    now: float | None = None,
) -> ExperimentSummaryModel:
    """An experiment row plus its trial aggregates.

    ``best_values`` are the trials' best metrics in creation order (the sparkline); progress, the best
    trial and the first start come from ``aggregate`` (``Store.experiment_aggregates``: SQL, what the
    server sends) or else from ``trials``, all its trial rows; ``now`` the clock for ``duration`` and ``eta``.
    """
    now = time.time() if now is None else now
    searcher = _searcher(row.config)
    smaller = bool(searcher.get("smaller_is_better", True))
    best = best_value(best_values, smaller_is_better=smaller)  # det_jupyter.searcher.ranking decides "best"
    values = [best_values[i] for i in downsample(len(best_values), sparkline_points)]
    if aggregate is not None:
        progress, best_id, first = aggregate.progress, aggregate.best_trial_id, aggregate.first_started_at
    else:
        progress = work_progress(row, trials)
        best_id = best_trial_id(trials, smaller_is_better=smaller)
        first = min((t.started_at for t in trials if t.started_at is not None), default=None)
    planned = planned_trials(row.config)
    duration = max(0.0, (row.ended_at if row.ended_at is not None else now) - row.created_at)
    eta = None
    if row.state == ExperimentState.ACTIVE and 0.0 < progress < 1.0:
        started = row.created_at if first is None else first
        eta = max(0.0, now - started) * (1.0 - progress) / progress
    labels = row.config.get("labels") or []
    time_metric = searcher.get("time_metric")
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "labels": [str(x) for x in labels] if isinstance(labels, (list, tuple)) else [],
        "state": row.state.value,
        "progress": progress,
        "searcher_progress": max(0.0, min(1.0, float(row.progress))),
        "planned_trials": None if planned is None else max(planned, stats.total),
        "max_time": max_time_of(row.config),
        "time_metric": str(time_metric) if time_metric else None,
        "best_trial_id": best_id,
        "duration": duration,
        "eta": eta,
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


def serialize_trial_summary(
    row: TrialRow, *, max_time: float | None = None, best_id: int | None = None, plan: Plan | None = None
) -> TrialSummaryModel:
    """A trial row for a trial table (``plan`` or only ``max_time``: its experiment's; ``best_id``: its best trial)."""
    return {
        "id": row.id,
        "experiment_id": row.experiment_id,
        "request_id": row.request_id,
        "hparams": json_safe(row.hparams),
        "state": row.state.value,
        "restarts": row.restarts,
        "steps_completed": row.steps_completed,
        "searcher_time": float(row.searcher_time),
        "progress": trial_progress(row, plan if plan is not None else max_time),
        "is_best": best_id is not None and row.id == best_id,
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
    aggregate: ExperimentAggregate | None = None,
) -> ExperimentDetailModel:
    """An experiment with its config (secrets redacted: :func:`~det_jupyter.config.redact.redact_config`)
    and the page ``[offset, offset + limit)`` of its trials: ``trials`` are all of them in creation
    order, or, with ``aggregate`` (``Store.experiment_aggregates``), only that page."""
    summary = serialize_experiment_summary(row, stats, best_values, trials, aggregate=aggregate)
    page = [
        serialize_trial_summary(t, plan=plan_of(row.config), best_id=summary["best_trial_id"])
        for t in (trials if aggregate is not None else trials[offset : offset + limit])
    ]
    return {
        **summary,
        "config": json_safe(redact_config(row.config)),
        "entrypoint_name": row.entrypoint_name,
        "seed": row.seed,
        "owner": row.owner,
        "heartbeat": row.heartbeat,
        "cluster_address": row.cluster_address,
        "trials": {
            "trials": page,
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
    logs_cursor: int = 0,
    max_time: float | None = None,
    best_id: int | None = None,
) -> TrialDetailModel:
    """A trial with its metric series, checkpoints and log tail (``logs_cursor``: the last line's row id)."""
    return {
        **serialize_trial_summary(row, max_time=max_time, best_id=best_id),
        "run_id": row.run_id,
        "error": row.error,
        "metrics": serialize_metric_series(metrics, max_points=max_points),
        "checkpoints": [serialize_checkpoint(c) for c in checkpoints],
        "logs": [serialize_log(line) for line in logs],
        "logs_cursor": logs_cursor,
    }


def serialize_log_page(
    trial: TrialRow, lines: Sequence[LogRow], *, cursor: int, skipped: int
) -> LogPageModel:
    """New log lines of a trial since a cursor (``cursor``: the row id of the last one)."""
    return {
        "trial_id": trial.id,
        "state": trial.state.value,
        "lines": [serialize_log(line) for line in lines],
        "cursor": cursor,
        "skipped": skipped,
    }


def serialize_gpu(gpu: GpuInfo | Mapping[str, Any]) -> GpuModel:
    """A GPU from :func:`~det_jupyter.worker.gpu.gpu_inventory` or from a worker's description."""
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
    summary: Mapping[str, Any] | None,
    *,
    server_gpus: Sequence[GpuInfo],
    message: str,
    source: str = "none",
    dashboard_proxy_path: str | None = None,
    master_pid: int | None = None,
    experiments: Sequence[int] = (),
) -> ClusterModel:
    """The cluster (from :func:`~det_jupyter.engine.cluster.cluster_summary`, or the master's
    ``master.json`` workers), or the server's own GPUs when ``summary`` is ``None``."""
    if summary is None:
        return {
            "attached": False,
            "source": "none",
            "message": message,
            "scheduler": None,
            "dashboard_link": None,
            "dashboard_proxy_path": None,
            "master_pid": None,
            "experiments": list(experiments),
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
        "source": source,
        "message": message,
        "scheduler": summary.get("scheduler"),
        "dashboard_link": direct_dashboard_link(summary.get("dashboard_link")),
        "dashboard_proxy_path": dashboard_proxy_path,
        "master_pid": master_pid,
        "experiments": list(experiments),
        "workers": workers,
        "slots": {str(k): float(v) for k, v in (summary.get("slots") or {}).items()},
        "gpus": [g for w in workers for g in w["gpus"]],
    }


def serialize_action(experiment_id: int, action: str, request_id: int, state: str) -> ActionModel:
    """The control request written for an action."""
    return {"experiment_id": experiment_id, "action": action, "request_id": request_id, "state": state}
