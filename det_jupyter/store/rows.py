"""The store's row types: frozen snapshots with no link back to the store (Optuna's ``FrozenTrial`` idea).

The read side returns them and the write side takes them (``Store.add_metrics([MetricRow(...)])``),
so one type names each record wherever it travels.

Example:
    >>> MetricRow(trial_id=1, run_id=0, kind="validation", steps=10, metrics={"loss": 0.5}, reported_at=0.0).kind
    'validation'
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from det_jupyter.states import ControlAction, ExperimentState, TrialState

__all__ = [
    "CheckpointRow",
    "ExperimentAggregate",
    "ExperimentRow",
    "LogRow",
    "MetricRow",
    "RequestRow",
    "TrialRow",
    "TrialStats",
]


@dataclass(frozen=True)
class ExperimentRow:
    """A read-only snapshot of an experiment (blobs left out)."""

    id: int
    name: str
    description: str
    state: ExperimentState
    config: dict[str, Any]
    entrypoint_name: str
    seed: int
    progress: float
    owner: str | None
    heartbeat: float | None
    cluster_address: str | None
    dashboard_link: str | None
    error: str | None
    created_at: float
    ended_at: float | None


@dataclass(frozen=True)
class TrialRow:
    """A read-only snapshot of a trial."""

    id: int
    experiment_id: int
    request_id: int
    hparams: dict[str, Any]
    state: TrialState
    restarts: int
    run_id: int
    steps_completed: int
    best_validation: float | None
    latest_validation: float | None
    searcher_time: float
    error: str | None
    worker: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None


@dataclass(frozen=True)
class MetricRow:
    """One report: ``kind`` is ``training`` or ``validation``."""

    trial_id: int
    run_id: int
    kind: str
    steps: int
    metrics: dict[str, Any]
    reported_at: float


@dataclass(frozen=True)
class CheckpointRow:
    """A committed checkpoint; ``state`` is ``COMPLETED`` or ``DELETED`` (by the GC policy)."""

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

    @classmethod
    def committed(
        cls,
        *,
        uuid: str,
        trial_id: int,
        experiment_id: int,
        run_id: int,
        steps: int,
        metadata: dict[str, Any],
        resources: dict[str, int],
        metric: float | None = None,
    ) -> CheckpointRow:
        """A just-committed checkpoint, stamped now (what the controller records).

        Example:
            >>> CheckpointRow.committed(uuid="u", trial_id=1, experiment_id=1, run_id=0, steps=5,
            ...                         metadata={}, resources={}).state
            'COMPLETED'
        """
        return cls(
            uuid,
            trial_id,
            experiment_id,
            run_id,
            steps,
            "COMPLETED",
            metric,
            metadata,
            resources,
            time.time(),
        )


@dataclass(frozen=True)
class LogRow:
    """One line of a trial's output."""

    trial_id: int
    run_id: int
    ts: float
    line: str


@dataclass(frozen=True)
class TrialStats:
    """Aggregates of an experiment's trials: how many per state, and the range of their best metrics."""

    experiment_id: int
    counts: dict[TrialState, int]
    min_best_validation: float | None
    max_best_validation: float | None

    @property
    def total(self) -> int:
        """All trials of the experiment."""
        return sum(self.counts.values())


@dataclass(frozen=True)
class ExperimentAggregate:
    """What a list of experiments shows of each one's trials, from aggregate queries (no trial rows read):
    ``stats`` (per state, metric range), ``progress`` (:mod:`det_jupyter.store.progress`'s rule),
    ``best_trial_id`` (:mod:`det_jupyter.searcher.ranking`'s order) and when the first trial started."""

    stats: TrialStats
    progress: float
    best_trial_id: int | None
    first_started_at: float | None


@dataclass(frozen=True)
class RequestRow:
    """A control request (pause / activate / kill) waiting for the controller."""

    id: int
    experiment_id: int
    action: ControlAction
    created_at: float
