"""The small sub-contexts of a :class:`~det_jupyter.worker.context.TrialContext` (Determined's shape).

A trial context is Determined's ``core.Context``: the notebook's ``ctx`` and ``det.core.init()`` give
the same object, with these parts:

- ``ctx.train`` (:class:`TrainContext`): ``report_training_metrics(steps_completed=, metrics=)``,
  ``report_validation_metrics``, ``report_progress``, ``report_metrics`` (any group);
- ``ctx.preempt`` (:class:`PreemptContext`): ``should_preempt()``, true when the searcher stopped the
  trial or the user paused or killed the experiment (``ctx.should_stop()`` is the short name);
- ``ctx.searcher`` (:class:`SearcherContext`): the metric, its direction and the training length, and
  Determined's ``operations()`` loop;
- ``ctx.distributed`` (:class:`~det_jupyter.worker.distributed.DistributedContext`): rank, size,
  collectives;
- ``ctx.checkpoint``: its own module, ``checkpoint_context``.

:class:`StopFlag` is what ``should_preempt()`` reads; the worker plugin sets it.

Example:
    >>> SearcherContext("val_loss", True, "batches", 100).max_length
    100
    >>> DistributedContext().is_chief
    True
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from det_jupyter.worker.distributed import DistributedContext

if TYPE_CHECKING:
    from det_jupyter.worker.context import TrialContext

__all__ = [
    "DistributedContext",
    "EarlyExitReason",
    "PreemptContext",
    "PreemptMode",
    "SearcherContext",
    "SearcherOperation",
    "StopFlag",
    "TrainContext",
]


class StopFlag:
    """Set by the controller (searcher stop, pause, kill); read by ``ctx.should_stop()``.

    It also carries the searcher's *decisions*: :meth:`allow` records that the searcher let the trial
    go on past its validations up to some trial length, which :meth:`wait_decision` waits for (exact
    rung decisions). Thread-safe; the worker plugin sets it from the thread ``client.run`` uses.

    Example:
        >>> flag = StopFlag()
        >>> flag.allow(4.0); flag.wait_decision(4.0, timeout=0.0), flag.wait_decision(16.0, timeout=0.0)
        (True, False)
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._cond = threading.Condition()
        self._decided = -math.inf

    def set(self) -> None:
        """Ask the run to stop at its next ``should_stop()`` check."""
        self._event.set()
        with self._cond:
            self._cond.notify_all()

    def is_set(self) -> bool:
        """True once a stop was requested."""
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Block until a stop is requested or ``timeout`` seconds pass; whether it was requested."""
        return self._event.wait(timeout)

    def allow(self, time: float) -> None:
        """The searcher let the trial continue after its validation at trial length ``time``."""
        with self._cond:
            self._decided = max(self._decided, float(time))
            self._cond.notify_all()

    @property
    def decided(self) -> float:
        """The longest trial length the searcher has let the trial continue from (``-inf``: none)."""
        return self._decided

    def wait_decision(self, time: float, timeout: float) -> bool:
        """Wait until the searcher decided on the validation at ``time`` (a stop, or :meth:`allow`
        up to ``time``); whether it did within ``timeout`` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: self._event.is_set() or self._decided >= time, timeout)


@dataclass(frozen=True)
class SearcherContext:
    """What the searcher asks of this trial.

    Attributes:
        metric: the validation metric the searcher ranks trials by (report it in validations).
        smaller_is_better: whether a smaller ``metric`` is better.
        time_metric: the unit of trial length: ``batches``, ``epochs``, ``records`` or a metric name.
        max_time: train for this many ``time_metric`` units unless ``should_stop()`` says stop earlier.
    """

    metric: str
    smaller_is_better: bool
    time_metric: str
    max_time: int | None

    @property
    def max_length(self) -> int | None:
        """Alias of ``max_time`` (Determined's older ``max_length`` wording)."""
        return self.max_time

    _trial: TrialContext | None = field(default=None, repr=False, compare=False)

    def operations(self, searcher_mode: Any = None, auto_ack: bool = True) -> Iterator[SearcherOperation]:
        """Determined's ``core_context.searcher.operations()`` loop: one operation, the whole training.

        The operation's :attr:`~SearcherOperation.length` is ``max_time`` (``None`` when the config
        gives no training length: the trial decides). Early stopping reaches the trial through
        ``core_context.preempt.should_preempt()``, so no further operations follow.

        Example:
            >>> from det_jupyter.worker.context import local_context
            >>> ctx = local_context({}, metric="loss", max_time=3)
            >>> for op in ctx.searcher.operations():
            ...     op.report_completed(0.5)
            >>> op.length, ctx.sink.validation[-1]
            (3, {'steps': 3, 'metrics': {'loss': 0.5}})
        """
        if self._trial is None:
            raise RuntimeError("this SearcherContext belongs to no trial")
        yield SearcherOperation(self._trial, self.max_time)


class SearcherOperation:
    """One unit of work from the searcher: train to :attr:`length`, then :meth:`report_completed`."""

    def __init__(self, trial: TrialContext, length: int | None) -> None:
        self._trial = trial
        self.length = length
        """How far to train, in the searcher's ``time_metric`` units (``None``: the trial decides)."""
        self.completed = False

    def report_progress(self, length: float) -> None:
        """How far the trial got towards :attr:`length` (shown as the trial's progress)."""
        if self.length:
            self._trial.train.report_progress(min(float(length) / self.length, 1.0))

    def report_completed(self, searcher_metric: Any) -> None:
        """The operation is done: report ``searcher_metric`` as a validation at :attr:`length`, unless
        a validation at (or past) that point already carried the searcher metric."""
        trial = self._trial
        steps = self.length if self.length is not None else (trial._last_validation_steps or 0)
        last = trial._last_validation_steps
        if last is None or last < steps:
            trial.report_validation_metrics(steps, {trial.searcher.metric: searcher_metric})
        self.completed = True


class EarlyExitReason(Enum):
    """Why a trial exits before its length (Determined's ``core.EarlyExitReason``)."""

    INVALID_HP = "EXITED_REASON_INVALID_HP"
    USER_REQUESTED_STOP = "EXITED_REASON_USER_REQUESTED_STOP"


class PreemptMode(Enum):
    """Who asks the master about preemption (Determined's ``core.PreemptMode``); accepted, one behaviour:
    the chief's flag decides, and with several processes it is broadcast."""

    WorkersAskChief = "WORKERS_ASK_CHIEF"
    ChiefOnly = "CHIEF_ONLY"
    WorkersAskMaster = "WORKERS_ASK_MASTER"


class PreemptContext:
    """``core_context.preempt``: should this trial stop now (searcher stop, pause, kill)?

    Example:
        >>> from det_jupyter.worker.context import local_context
        >>> local_context({}).preempt.should_preempt()
        False
    """

    def __init__(self, trial: TrialContext) -> None:
        self._trial = trial
        self.acknowledged = False

    def should_preempt(self, auto_ack: bool = True) -> bool:
        """True when the trial should checkpoint and exit. With several processes the chief's
        answer is broadcast, so every rank returns the same value (call it on every rank)."""
        stop = self._trial._stop_requested()
        if self._trial.distributed.size > 1:
            stop = bool(self._trial.distributed.broadcast(stop))
        if stop and auto_ack:
            self.acknowledged = True
        return stop

    def acknowledge_preemption_signal(self) -> None:
        """Say the trial will exit for the preemption (implied by ``should_preempt(auto_ack=True)``)."""
        self.acknowledged = True


class TrainContext:
    """``core_context.train``: report metrics and progress (Determined's ``core.TrainContext``).

    The short notebook names stay on the context itself: ``ctx.report_training_metrics(steps,
    metrics)`` is ``ctx.train.report_training_metrics(steps_completed=steps, metrics=metrics)``.

    Example:
        >>> from det_jupyter.worker.context import local_context
        >>> ctx = local_context({}, metric="loss")
        >>> ctx.train.report_training_metrics(steps_completed=5, metrics={"loss": 0.3})
        >>> ctx.train.report_validation_metrics(steps_completed=5, metrics={"loss": 0.2})
        >>> [r["steps"] for r in ctx.sink.training + ctx.sink.validation]
        [5, 5]
    """

    def __init__(self, trial: TrialContext) -> None:
        self._trial = trial
        self.progress: float | None = None
        self.status: str | None = None
        self.early_exit: EarlyExitReason | None = None

    def report_training_metrics(
        self,
        steps_completed: int,
        metrics: Mapping[str, Any],
        batch_metrics: list[Mapping[str, Any]] | None = None,
    ) -> None:
        """Training metrics after ``steps_completed`` batches (``batch_metrics`` are not kept)."""
        self._trial.report_training_metrics(steps_completed, metrics)

    def report_validation_metrics(self, steps_completed: int, metrics: Mapping[str, Any]) -> None:
        """Validation metrics after ``steps_completed``; the searcher reads its metric from them."""
        self._trial.report_validation_metrics(steps_completed, metrics)

    def report_metrics(self, group: str, steps_completed: int, metrics: Mapping[str, Any]) -> None:
        """Metrics of a ``group``: ``training`` and ``validation`` as above; any other group is kept
        with the training metrics, its names prefixed ``group/``."""
        if group == "validation":
            self.report_validation_metrics(steps_completed, metrics)
        elif group == "training":
            self.report_training_metrics(steps_completed, metrics)
        else:
            self.report_training_metrics(steps_completed, {f"{group}/{k}": v for k, v in metrics.items()})

    def report_progress(self, progress: float) -> None:
        """How far the trial is, from 0 to 1 (kept on this context; the trial's steps show progress)."""
        if not 0.0 <= float(progress) <= 1.0:
            raise ValueError(f"report_progress({progress!r}): progress must be between 0 and 1")
        self.progress = float(progress)

    def report_early_exit(self, reason: EarlyExitReason) -> None:
        """Say why the trial exits early; written to the trial's log."""
        self.early_exit = reason
        self._trial.log(f"[det_jupyter] trial exits early: {reason.name}")

    def set_status(self, status: str) -> None:
        """A short free-text status, written to the trial's log."""
        self.status = status
        self._trial.log(f"[det_jupyter] status: {status}")

    def get_experiment_best_validation(self) -> float | None:
        """Not tracked inside a trial here; ``None`` (as Determined returns before any validation)."""
        warnings.warn(
            "get_experiment_best_validation() is not available inside det_jupyter trials; returns None",
            stacklevel=2,
        )
        return None
