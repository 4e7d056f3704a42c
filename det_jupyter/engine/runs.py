"""Typed records of the controller's trials and runs, and the decisions its lifecycle rules return.

:class:`TrialRecord` and :class:`RunRecord` are the controller's working copies of a non-terminal
trial and of one submitted attempt ("run") of it. The rules in :mod:`det_jupyter.engine.lifecycle`
read and update them and return *decisions* (:class:`Submit`, :class:`RequestStop`, :class:`EndTrial`,
...), small frozen records the controller applies with the store, the searcher and the launcher.

Example:
    >>> trial = TrialRecord(id=7, request_id=1, hparams={"lr": 0.1})
    >>> Submit(RunRecord(trial, run_id=0, key="det-trial-e1-t7-r0-n"))
    Submit(run=RunRecord(trial_id=7, run_id=0, key='det-trial-e1-t7-r0-n'))
    >>> StopReason.PAUSE < StopReason.SEARCHER < StopReason.KILL
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any

from det_jupyter.checkpoints import CheckpointStorage
from det_jupyter.config import ExperimentConfig, Length
from det_jupyter.config.environment import DeviceKind
from det_jupyter.searcher import ExitReason
from det_jupyter.states import ExperimentState, TrialState
from det_jupyter.worker.context import TrialSpec
from det_jupyter.worker.events import CheckpointSaved, Exited, Log, Metrics, RunStatus

__all__ = [
    "AppendLog",
    "CutOff",
    "Decision",
    "EndTrial",
    "FetchResult",
    "FinishExperiment",
    "MarkStarted",
    "Outcome",
    "OutcomeStatus",
    "RecordCheckpoint",
    "RecordLogs",
    "RecordMetrics",
    "ReleaseRun",
    "ReportValidation",
    "RequestStop",
    "RunRecord",
    "ScoreCheckpoint",
    "SetExperimentState",
    "StopReason",
    "Submit",
    "TaskEnd",
    "TrialRecord",
    "UpdateTrial",
    "experiment_key",
    "trial_spec",
]


# --- records ---------------------------------------------------------------------------------------


@dataclass(eq=False)
class TrialRecord:
    """The controller's working copy of a non-terminal trial.

    Attributes:
        id: the trial's id in the store. request_id: the searcher's id for it.
        restarts: failed runs so far. run_id: id of the newest run (-1 before the first).
        latest_checkpoint, latest_checkpoint_steps: where the next run starts from.
        best: best rankable searcher-metric value so far (``None`` when none ranked).
        searcher_time: trial length the searcher last heard of.
        validations: steps → the value given to the searcher (unrankable as the worst ±inf).
        unscored_checkpoints: steps → uuid of checkpoints awaiting a validation at those steps.
    """

    id: int
    request_id: int
    hparams: dict[str, Any]
    restarts: int = 0
    run_id: int = -1
    latest_checkpoint: str | None = None
    latest_checkpoint_steps: int = 0
    best: float | None = None
    searcher_time: float = 0.0
    validations: dict[int, float] = field(default_factory=dict)
    unscored_checkpoints: dict[int, str] = field(default_factory=dict)
    last_failure: tuple[str, int] | None = None
    """The previous failed run's (failure signature, latest checkpoint steps then), for the
    deterministic-error rule (:func:`~det_jupyter.engine.lifecycle.finalize`)."""
    reported_metric: bool = False
    """Whether a validation of this trial carried the searcher metric (seen by this controller)."""


class StopReason(IntEnum):
    """Why a run was asked to stop; a larger value takes precedence (pause < searcher < kill)."""

    PAUSE = 1
    SEARCHER = 2
    KILL = 3


class OutcomeStatus(str, Enum):
    """How a run ended: the worker's :class:`~det_jupyter.worker.events.RunStatus`, or Dask's view."""

    COMPLETED = "completed"
    ERROR = "error"
    CANCELLED = "cancelled"
    """Its task was cancelled (by a stop of a queued run, a cut-off, or outside det_jupyter)."""
    LOST = "lost"
    """Its task failed without user code raising: the worker died or was lost."""


@dataclass(frozen=True)
class Outcome:
    """The end of one run: status, traceback and how many events it announced."""

    status: OutcomeStatus
    traceback: str | None = None
    events_sent: int = 0

    @classmethod
    def of(cls, exited: Exited) -> Outcome:
        """The outcome an ``exited`` event (or a task's summary) reports."""
        status = OutcomeStatus.COMPLETED if exited.status == RunStatus.COMPLETED else OutcomeStatus.ERROR
        return cls(status, exited.traceback, exited.events_sent)


class TaskEnd(str, Enum):
    """How a run's task ended, as the launcher sees it."""

    FINISHED = "finished"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(eq=False)
class RunRecord:
    """One submitted attempt ("run") of a trial, alive until it is finalized.

    Attributes:
        trial: the trial it runs. run_id: its number. key: its unique task key (also its stop key).
        started: its ``started`` event arrived. worker: the worker's address from that event.
        events_seen: events counted towards the ``events_sent`` of its ``exited`` event.
        outcome: how it ended, once known. task_done: its task ended.
        wait_until: deadline (monotonic) of a wait for its result or its last events.
        stop_reason, stop_requested_at: the strongest stop asked of it, and since when (monotonic).
    """

    trial: TrialRecord
    run_id: int
    key: str
    started: bool = False
    worker: str | None = None
    events_seen: int = 0
    outcome: Outcome | None = None
    task_done: bool = False
    wait_until: float | None = None
    stop_reason: StopReason | None = None
    stop_requested_at: float | None = None
    last_progress: float | None = None
    """When (monotonic) it last reported: started, metrics or a checkpoint (the no-progress timeout)."""
    no_progress: str | None = None
    """Why it was cut off for making no progress, once it was."""

    def __repr__(self) -> str:
        return f"RunRecord(trial_id={self.trial.id}, run_id={self.run_id}, key={self.key!r})"


# --- decisions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submit:
    """Submit this new run (trial state QUEUED, its ``run_id`` and ``restarts`` written)."""

    run: RunRecord


@dataclass(frozen=True)
class RequestStop:
    """Ask a run to stop; cancel its task instead if it is still queued and ``cancel_if_queued``."""

    run: RunRecord
    reason: StopReason
    cancel_if_queued: bool


@dataclass(frozen=True)
class ReleaseRun:
    """The run is finalized: the launcher may forget its task."""

    run: RunRecord


@dataclass(frozen=True)
class CutOff:
    """The run ignored ``should_stop()`` for ``grace`` s: cancel its task and restart its worker.

    ``why``, when given, is the log line instead (a run that made no progress for ``grace`` s).
    """

    run: RunRecord
    grace: float
    why: str = ""


@dataclass(frozen=True)
class FetchResult:
    """The task finished but no ``exited`` event came: fetch its result, then call ``on_result``."""

    run: RunRecord


@dataclass(frozen=True)
class UpdateTrial:
    """Write these columns of a trial (buffered)."""

    trial_id: int
    values: dict[str, Any]


@dataclass(frozen=True)
class MarkStarted:
    """The run started: record its worker and start time (and ACTIVE unless it is stopping)."""

    trial_id: int
    worker: str
    active: bool


@dataclass(frozen=True)
class EndTrial:
    """The trial reached a terminal state; tell the searcher ``exit_reason`` unless it is ``None``."""

    trial: TrialRecord
    state: TrialState
    exit_reason: ExitReason | None


@dataclass(frozen=True)
class AppendLog:
    """Add one line of det_jupyter's own to a trial's log."""

    trial_id: int
    run_id: int
    text: str


@dataclass(frozen=True)
class RecordMetrics:
    """Store a run's metric reports."""

    trial_id: int
    run_id: int
    body: Metrics


@dataclass(frozen=True)
class RecordLogs:
    """Store a run's log lines."""

    trial_id: int
    run_id: int
    body: Log


@dataclass(frozen=True)
class RecordCheckpoint:
    """Register a committed checkpoint, with the validation measured at its steps if known."""

    trial_id: int
    run_id: int
    body: CheckpointSaved
    metric: float | None


@dataclass(frozen=True)
class ScoreCheckpoint:
    """A validation arrived at the steps of an earlier checkpoint: attach its value."""

    uuid: str
    metric: float


@dataclass(frozen=True)
class ReportValidation:
    """Tell the searcher about a validation (``metric`` already ±inf when unrankable)."""

    request_id: int
    metric: float
    time: float


@dataclass(frozen=True)
class SetExperimentState:
    """The experiment moved to a non-terminal state (PAUSED, ACTIVE, STOPPING_CANCELED)."""

    state: ExperimentState


@dataclass(frozen=True)
class FinishExperiment:
    """The experiment is over: write its final state (and ``error``) and end the loop."""

    state: ExperimentState
    error: str | None = None


Decision = (
    Submit
    | RequestStop
    | ReleaseRun
    | CutOff
    | FetchResult
    | UpdateTrial
    | MarkStarted
    | EndTrial
    | AppendLog
    | RecordMetrics
    | RecordLogs
    | RecordCheckpoint
    | ScoreCheckpoint
    | ReportValidation
    | SetExperimentState
    | FinishExperiment
)


def trial_spec(
    cfg: ExperimentConfig,
    run: RunRecord,
    *,
    experiment_id: int,
    seed: int,
    storage: CheckpointStorage,
    topic: str,
    experiment_key: str = "",
    device: DeviceKind = "cpu",
    warm_start: str | None = None,
    decision_points: tuple[float, ...] = (),
) -> TrialSpec:
    """Everything a worker needs to run ``run`` (its trial's hparams, metric, storage, periods, seed).

    The seed is the experiment's, offset by the trial's request id, so a trial's runs share it and
    two experiments with the same ``experiment_seed`` give their trials the same seeds. ``device``
    (``cpu`` or ``cuda``: the slots the trial gets) picks the environment variables of a per-device
    ``environment_variables``. ``warm_start`` (a checkpoint uuid, from
    :func:`~det_jupyter.engine.checkpoint_sync.warm_start_checkpoint`) is where a trial without a
    checkpoint of its own starts (``searcher.source_trial_id`` / ``source_checkpoint_uuid``).
    ``max_time`` is ``None`` when the config gives no training length: the trial code decides.
    ``decision_points`` are the trial lengths where the searcher may stop it (ASHA's rungs,
    ``SearchMethod.decision_points``); those up to the trial's ``searcher_time`` are already decided.
    ``checkpoint_policy`` (Determined's default ``best`` when unset), ``perform_initial_validation`` and
    ``scheduling_unit`` are what TorchTrial / KerasTrial apply (:mod:`det_jupyter.frameworks._common`).

    Example:
        >>> spec = trial_spec(cfg, run, experiment_id=1, seed=42, storage=storage, topic="t")  # doctest: +SKIP
    """
    trial = run.trial
    latest, latest_steps = trial.latest_checkpoint, trial.latest_checkpoint_steps
    if latest is None and warm_start is not None:  # its own checkpoints, once it has any, come first
        latest, latest_steps = warm_start, 0
    return TrialSpec(
        experiment_id=experiment_id,
        trial_id=trial.id,
        run_id=run.run_id,
        hparams=trial.hparams,
        metric=cfg.searcher.metric,
        smaller_is_better=cfg.searcher.smaller_is_better,
        time_metric=cfg.searcher.time_metric or "batches",
        max_time=cfg.searcher.max_time,
        storage_url=storage.url,
        storage_options=storage.storage_options,
        latest_checkpoint=latest,
        latest_checkpoint_steps=latest_steps,
        seed=(seed + 1_000_003 * trial.request_id) % 2**31,
        data=dict(cfg.data),
        env_vars=cfg.environment.env_vars_for(device),
        min_validation_period=_period(cfg.min_validation_period),
        min_checkpoint_period=_period(cfg.min_checkpoint_period),
        records_per_epoch=cfg.records_per_epoch,
        topic=topic,
        run_key=run.key,
        experiment_key=experiment_key,
        perform_initial_validation=bool(cfg.perform_initial_validation),
        checkpoint_policy=cfg.checkpoint_policy or "best",  # Determined's default
        scheduling_unit=cfg.scheduling_unit,
        decision_points=tuple(decision_points),
        decided_through=float(trial.searcher_time) if trial.searcher_time else -math.inf,
    )


def _period(length: Length | None) -> tuple[str, int] | None:
    return None if length is None else (str(length.unit), int(length.value))


def experiment_key(experiment_id: int, created_at: float) -> str:
    """What tells an experiment from another with the same id (ids restart at 1 in a new store that may
    share a checkpoint root with an old one): its id and creation time, stable across resumes.

    Example:
        >>> experiment_key(3, 1700000000.25)
        '3-1700000000.25'
    """
    return f"{experiment_id}-{created_at!r}"
