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
from collections.abc import Mapping, Sequence
from typing import Any

from det_jupyter.config.redact import redact_config
from det_jupyter.searcher.ranking import best_value
from det_jupyter.server.wire_models import (
    ActionModel,
    CheckpointModel,
    ClusterModel,
    ExperimentDetailModel,
    ExperimentSummaryModel,
    GpuModel,
    LogLineModel,
    MetricSeriesModel,
    TrialDetailModel,
    TrialSummaryModel,
    WorkerModel,
)
from det_jupyter.store import CheckpointRow, ExperimentRow, LogRow, MetricRow, TrialRow, TrialStats
from det_jupyter.worker.gpu import GpuInfo

__all__ = [
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
    """An experiment with its config (secrets redacted: :func:`~det_jupyter.config.redact.redact_config`) and a page of trials."""
    summary = serialize_experiment_summary(row, stats, best_values)
    return {
        **summary,
        "config": json_safe(redact_config(row.config)),
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
