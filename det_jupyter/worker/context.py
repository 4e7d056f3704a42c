"""The trial context: everything user code on a worker may touch (Determined's Core API, notebook-sized).

User code receives a :class:`TrialContext` and never imports Dask. It composes sub-contexts, as
Determined's ``core.Context`` does, each in its own module: ``ctx.checkpoint`` (``checkpoint_context``:
save / restore), ``ctx.searcher`` and ``ctx.distributed`` (``subcontexts``: metric and length, rank and
size). Reports become typed events (``events``) sent to an :class:`EventSink` (``sinks``: Dask events
on a cluster, a list in :func:`local_context`); reported values follow the one policy of
``metric_values`` (non-finite → ``None``; ``bool`` / ``str`` kept, never ranked).

This module re-exports what it always exported (``det_jupyter.worker.context.TrialContext`` is the
class stored experiments pickle by reference).

Training metrics are buffered and sent at most every ``flush_interval`` seconds (and before every
validation, checkpoint and exit), so reporting every batch costs microseconds and never forces a GPU
sync per step: tensors are turned into numbers only when a batch of records is flushed, with one
device→host copy per device and dtype for the whole batch (not one ``.item()`` per report).

Example (run user code in the kernel, no cluster needed):
    >>> from det_jupyter.worker.context import local_context
    >>> def train(ctx):
    ...     for step in range(1, 4):
    ...         ctx.report_training_metrics(step, {"loss": 1.0 / step})
    ...     ctx.report_validation_metrics(3, {"val_loss": 0.3})
    >>> ctx = local_context(hparams={"lr": 0.1}, metric="val_loss")
    >>> train(ctx)
    >>> ctx.sink.validation[-1]["metrics"]
    {'val_loss': 0.3}
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from det_jupyter.checkpoints import CheckpointStorage
from det_jupyter.worker.checkpoint_context import CheckpointContext
from det_jupyter.worker.events import (
    EventBody,
    Log,
    LogLine,
    MetricKind,
    MetricRecord,
    Metrics,
    RunEvent,
    encode,
)
from det_jupyter.worker.metric_values import metric_value, metric_values, unranked_reason
from det_jupyter.worker.sinks import EventSink, ListSink
from det_jupyter.worker.subcontexts import (
    DistributedContext,
    PreemptContext,
    SearcherContext,
    StopFlag,
    TrainContext,
)

__all__ = [
    "CheckpointContext",
    "DistributedContext",
    "EventSink",
    "ListSink",
    "SearcherContext",
    "StopFlag",
    "TrialContext",
    "TrialSpec",
    "current_context",
    "local_context",
    "metric_value",
]

RECENT_TRAINING = 1000
"""How many of the newest training reports a context remembers for its next checkpoint's metadata."""


@dataclass(frozen=True)
class TrialSpec:
    """Everything a worker needs to run one attempt ("run") of a trial. Picklable, no live objects."""

    experiment_id: int
    trial_id: int
    run_id: int
    hparams: dict[str, Any]
    metric: str
    smaller_is_better: bool
    time_metric: str
    max_time: int | None
    storage_url: str
    storage_options: dict[str, Any] = field(default_factory=dict)
    latest_checkpoint: str | None = None
    latest_checkpoint_steps: int = 0
    seed: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    env_vars: dict[str, str] = field(default_factory=dict)
    min_validation_period: tuple[str, int] | None = None
    min_checkpoint_period: tuple[str, int] | None = None
    records_per_epoch: int | None = None
    topic: str = ""
    run_key: str = ""
    experiment_key: str = ""
    perform_initial_validation: bool = False
    checkpoint_policy: str = "best"
    scheduling_unit: int | None = None
    decision_points: tuple[float, ...] = ()
    """Trial lengths (searcher time) where the searcher may stop the trial after a validation (ASHA's
    rungs): a validation at or past one makes the next ``should_stop()`` wait for the decision."""
    decided_through: float = -math.inf
    """Decisions already made up to this trial length (a rerun does not wait for them again)."""
    decision_timeout: float = 10.0
    """Longest wait for a searcher decision (a slow or dead controller never blocks a trial longer)."""


class TrialContext:
    """What user code receives: hyperparameters, reporting, checkpoints, stop requests.

    Create it with :func:`local_context` to run user code in the kernel; on a cluster the runtime
    builds it. Reports are only sent from the chief (rank 0).

    Attributes:
        hparams: this trial's hyperparameters (nested dicts as in the config).
        trial_id, experiment_id: ids in the store.
        run_id: how many times this trial was restarted before this run (0 on the first).
        data: the config's ``data`` section.
        seed: a per-trial seed derived from ``reproducibility.experiment_seed``.
    """

    def __init__(
        self,
        spec: TrialSpec,
        sink: EventSink,
        stop_flag: StopFlag | None = None,
        *,
        flush_interval: float = 0.2,
    ) -> None:
        self.spec = spec
        self.hparams: dict[str, Any] = spec.hparams
        self.trial_id = spec.trial_id
        self.experiment_id = spec.experiment_id
        self.experiment_key = spec.experiment_key  # tells this experiment from others with its id
        self.run_id = spec.run_id
        self.data: dict[str, Any] = spec.data
        self.seed = spec.seed
        self.sink = sink
        self.searcher = SearcherContext(
            spec.metric, spec.smaller_is_better, spec.time_metric, spec.max_time, _trial=self
        )
        self.distributed = DistributedContext()
        self.train = TrainContext(self)
        self.preempt = PreemptContext(self)
        storage = CheckpointStorage(spec.storage_url, spec.storage_options)
        self.checkpoint = CheckpointContext(
            self, storage, spec.latest_checkpoint, spec.latest_checkpoint_steps
        )
        self._stop = stop_flag or StopFlag()
        self._awaiting: float | None = None  # the decision point whose searcher decision is pending
        self._passed = spec.decided_through  # decision points up to here are decided
        self._decision_waits: list[float] = []  # seconds waited per decision (for the log and benchmarks)
        self._flush_interval = flush_interval
        self._pending: list[tuple[MetricKind, int, Mapping[str, Any], float]] = []
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()
        self._seq = 0
        self._last_validation_steps: int | None = None
        self._warned: dict[str, int] = {}
        self._recent_validations: dict[int, dict[str, Any]] = {}
        """steps → converted metrics of the newest validations sent (a checkpoint at those steps,
        even one written in the background, carries them in its metadata.json, so they survive a
        worker that dies before their event is out)."""
        self._recent_training: deque[tuple[int, dict[str, Any], float]] = deque(maxlen=RECENT_TRAINING)
        """(steps, converted metrics, reported_at) of the newest training reports sent: a checkpoint
        carries those since the previous one, so they survive a master or worker that dies while
        their event is in flight (the rerun resumes past them and would never report them again)."""

    def __repr__(self) -> str:
        return f"TrialContext(trial_id={self.trial_id}, run_id={self.run_id}, hparams={self.hparams!r})"

    @property
    def data_dir(self) -> Path | None:
        """``data.data_dir`` as a local directory (``None`` when the config has none); ``$DATA_DIR`` of
        command trials. A remote fsspec URL is downloaded on first use, once per worker
        (:mod:`det_jupyter.worker.data`), with ``data.storage_options``.

        Example:
            >>> local_context({}, data={"data_dir": "/srv/data"}).data_dir
            PosixPath('/srv/data')
        """
        url = self.data.get("data_dir")
        if not url:
            return None
        from det_jupyter.worker.data import local_data  # it imports the worker scratch helpers

        return local_data(str(url), self.data.get("storage_options") or {})

    # --- reporting -----------------------------------------------------------------------------

    def report_training_metrics(self, steps: int, metrics: Mapping[str, Any]) -> None:
        """Record training metrics at ``steps`` (cheap: buffered, values converted when flushed).

        Example:
            >>> ctx = local_context(hparams={})
            >>> ctx.report_training_metrics(10, {"loss": 0.25})
        """
        self._check_report("report_training_metrics", steps, metrics)
        record = (MetricKind.TRAINING, int(steps), dict(metrics), time.time())
        with self._lock:  # a checkpoint written in the background may flush meanwhile
            self._pending.append(record)
        if time.monotonic() - self._last_flush >= self._flush_interval:
            self._flush()

    def report_validation_metrics(self, steps: int, metrics: Mapping[str, Any]) -> None:
        """Record validation metrics at ``steps``; the searcher reads ``metrics[ctx.searcher.metric]``.

        Sent at once (with any buffered training metrics first), since the searcher may act on it.

        Example:
            >>> ctx = local_context(hparams={}, metric="val_acc")
            >>> ctx.report_validation_metrics(10, {"val_acc": 0.9})
        """
        self._check_report("report_validation_metrics", steps, metrics)
        if self.searcher.metric not in metrics:  # fail fast: a typo would waste the whole run
            raise ValueError(
                f"report_validation_metrics(steps={steps}) lacks the searcher metric "
                f"{self.searcher.metric!r} (got {sorted(metrics)}); report it, or change searcher.metric"
            )
        self._warn_validation(steps, metrics)
        record = (MetricKind.VALIDATION, int(steps), dict(metrics), time.time())
        with self._lock:
            self._pending.append(record)
        self._flush()
        self._note_decision_point(steps, metrics)

    def should_stop(self) -> bool:
        """True when the searcher stopped this trial or the user paused or killed the experiment.

        Check it once per batch or epoch; on True, save a checkpoint and return. Determined's
        ``core_context.preempt.should_preempt()`` is the same question (broadcast across ranks).

        Right after a validation at one of the searcher's decision points (an ASHA rung), it waits for
        the searcher's answer on that validation (at most ``decision_timeout`` seconds), so a trial the
        searcher stops at a rung never trains past it, however fast its epochs are.
        """
        return self._stop_requested()

    def _stop_requested(self) -> bool:
        """The stop flag, after waiting for a pending searcher decision (see :meth:`should_stop`)."""
        point = self._awaiting
        if point is not None:
            self._awaiting = None
            started = time.monotonic()
            decided = self._stop.wait_decision(point, self.spec.decision_timeout)
            waited = time.monotonic() - started
            self._decision_waits.append(waited)
            outcome = "stop" if self._stop.is_set() else "continue" if decided else "no answer (timed out)"
            self.log(
                f"[det_jupyter] searcher decision at {self.searcher.time_metric} {point:g}: {outcome} "
                f"(waited {waited * 1000:.0f} ms)"
            )
        return self._stop.is_set()

    def _note_decision_point(self, steps: int, metrics: Mapping[str, Any]) -> None:
        """After a validation: if it reaches a decision point not yet passed, the next stop check waits.

        The trial length is the searcher's: the ``time_metric`` value when the validation reports one,
        else ``steps`` (as the controller reads it).
        """
        points = self.spec.decision_points
        if not points:
            return
        elapsed = metrics.get(self.searcher.time_metric)
        length = (
            float(elapsed)
            if isinstance(elapsed, int | float) and not isinstance(elapsed, bool)
            else float(steps)
        )
        reached = [p for p in points if self._passed < p <= length]
        if reached:
            self._passed = max(reached)
            self._awaiting = self._passed

    # --- Determined's core.Context -----------------------------------------------------------------

    def __enter__(self) -> TrialContext:
        """``with det.core.init() as core_context:`` gives this context."""
        return self

    def __exit__(self, *exc: object) -> None:
        self._flush()  # the runtime (or the command bridge) closes the context itself

    def close(self) -> None:
        """Send what is buffered (Determined's ``core_context.close()``)."""
        self._flush()

    def log(self, message: str) -> None:
        """Send one line to the trial's log (``print`` inside a trial does the same)."""
        self._emit(Log((LogLine(time.time(), str(message)),)))

    # --- internals -----------------------------------------------------------------------------

    def _warn_validation(self, steps: int, metrics: Mapping[str, Any]) -> None:
        """Warn in the trial's log when the searcher will not read this validation as meant.

        A searcher-metric value that does not rank (NaN, inf, None, bool, str:
        :func:`~det_jupyter.worker.metric_values.unranked_reason`) and steps that do not increase;
        each kind at most three times per run.
        """
        name = self.searcher.metric
        where = f"trial {self.trial_id}, report_validation_metrics(steps={steps})"
        reason = unranked_reason(metrics[name])
        if reason is not None:
            self._warn("unranked", f"{where}: searcher metric {name!r} = {metrics[name]!r} {reason}")
        last = self._last_validation_steps
        if last is not None and steps <= last:
            self._warn(
                "steps",
                f"{where} comes after a validation at steps={last}: validation steps should increase "
                "(the searcher reads them as training progress). Fix: pass the number of batches (or "
                f"{self.searcher.time_metric}) trained so far",
            )
        self._last_validation_steps = steps if last is None else max(last, steps)

    def _warn(self, kind: str, message: str, limit: int = 3) -> None:
        count = self._warned[kind] = self._warned.get(kind, 0) + 1
        if count <= limit:
            more = " (further warnings like this one are left out for this run)" if count == limit else ""
            self.log(f"[det_jupyter] warning: {message}{more}")

    def _check_report(self, name: str, steps: int, metrics: Mapping[str, Any]) -> None:
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise ValueError(f"{name}(steps={steps!r}): steps must be a non-negative int")
        if not isinstance(metrics, Mapping) or not metrics:
            raise ValueError(
                f"{name}(steps={steps}): metrics must be a non-empty dict of name -> number (got {metrics!r})"
            )
        for key, value in metrics.items():
            # cheap type check now (no GPU sync), so a bad value fails at the call that passed it and
            # never poisons the buffered reports flushed later
            if not (value is None or isinstance(value, (int, float, str)) or hasattr(value, "item")):
                raise TypeError(
                    f"{name}(steps={steps}): metric {key!r} = {value!r} of type {type(value).__name__} is "
                    "not a number; report floats, ints, numpy scalars or 0-d tensors"
                )
        if not self.distributed.is_chief:
            raise RuntimeError(
                f"only the chief (rank 0) may call {name}(); this is rank {self.distributed.rank}"
            )

    def _flush(self) -> None:
        """Send buffered reports as one ``metrics`` event, values converted by the metric-value policy."""
        with self._lock:
            pending, self._pending = self._pending, []
            self._last_flush = time.monotonic()
        if not pending:
            return
        values = iter(metric_values([v for _, _, metrics, _ in pending for v in metrics.values()]))
        records = tuple(
            MetricRecord(kind, steps, {str(k): next(values) for k in metrics}, ts)
            for kind, steps, metrics, ts in pending
        )
        with self._lock:
            for record in records:
                if record.kind == MetricKind.TRAINING:
                    self._recent_training.append((record.steps, dict(record.metrics), record.reported_at))
                if record.kind == MetricKind.VALIDATION:
                    self._recent_validations[record.steps] = dict(record.metrics)
                    while len(self._recent_validations) > 8:
                        del self._recent_validations[next(iter(self._recent_validations))]
        self._emit(Metrics(records))

    def _relay(self, event: dict[str, Any]) -> None:
        """Send an event a trial's command process encoded, numbered in this run's sequence."""
        with self._lock:
            self._seq += 1
            event = {**event, "trial_id": self.trial_id, "run_id": self.run_id, "seq": self._seq}
        self.sink.emit(event)

    def _emit(self, body: EventBody) -> None:
        """Number the event (``seq`` 1, 2, ... per run), encode it once and hand it to the sink."""
        with self._lock:
            self._seq += 1
            seq = self._seq
        self.sink.emit(encode(RunEvent(self.trial_id, self.run_id, seq, body)))

    def _training_since(self, after: int, upto: int) -> list[list[Any]]:
        """``[steps, metrics, reported_at]`` of the training reports sent with ``after < steps <= upto``."""
        with self._lock:
            return [[s, m, ts] for s, m, ts in self._recent_training if after < s <= upto]

    @property
    def events_sent(self) -> int:
        """How many events this context has emitted (the controller checks it has them all)."""
        return self._seq

    def _close(self) -> None:
        """Flush what is buffered; the runtime calls it when user code returns or raises."""
        self._flush()


def local_context(
    hparams: Mapping[str, Any],
    *,
    metric: str = "val_loss",
    smaller_is_better: bool = True,
    time_metric: str = "batches",
    max_time: int = 100,
    checkpoint_dir: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> TrialContext:
    """A context for running or debugging user code in the kernel, with no cluster and no store.

    Events land in ``ctx.sink`` (a :class:`ListSink`); checkpoints in ``checkpoint_dir`` (a temp dir
    by default). Training reports are buffered as on a worker (no GPU sync per step) and flushed
    whenever ``ctx.sink`` is read.

    Example:
        >>> ctx = local_context({"lr": 0.01}, metric="val_acc", smaller_is_better=False)
        >>> ctx.hparams["lr"]
        0.01
    """
    spec = TrialSpec(
        experiment_id=0,
        trial_id=0,
        run_id=0,
        hparams=dict(hparams),
        metric=metric,
        smaller_is_better=smaller_is_better,
        time_metric=time_metric,
        max_time=max_time,
        storage_url=checkpoint_dir or tempfile.mkdtemp(prefix="det-local-ckpt-"),
        data=dict(data or {}),
    )
    sink = ListSink()
    ctx = TrialContext(spec, sink)
    sink.before_read = ctx._flush
    return ctx


_current: contextvars.ContextVar[TrialContext | None] = contextvars.ContextVar(
    "det_jupyter_trial", default=None
)


def current_context() -> TrialContext | None:
    """The context of the trial running in this thread (``det.core.init()`` returns it), or ``None``.

    Example:
        >>> current_context() is None
        True
    """
    return _current.get()


@contextlib.contextmanager
def running(ctx: TrialContext) -> Iterator[TrialContext]:
    """Make ``ctx`` this thread's :func:`current_context` for the block (the runtime wraps user code)."""
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)
