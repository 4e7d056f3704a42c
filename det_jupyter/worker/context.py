"""The trial context: everything user code on a worker may touch (Determined's Core API, notebook-sized).

User code receives a :class:`TrialContext` and never imports Dask. It composes sub-contexts, as
Determined's ``core.Context`` does: ``ctx.checkpoint`` (save / restore), ``ctx.searcher`` (metric and
length), ``ctx.distributed`` (rank / size). Reports go to an :class:`EventSink` (Dask events on a
cluster, a list in :func:`local_context`), checkpoints to :class:`~det_jupyter.checkpoints.CheckpointStorage`.

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
import math
import sys
import tempfile
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from det_jupyter.checkpoints import CheckpointStorage

__all__ = [
    "CheckpointContext",
    "DistributedContext",
    "EventSink",
    "ListSink",
    "SearcherContext",
    "StopFlag",
    "TrialContext",
    "TrialSpec",
    "local_context",
    "metric_value",
]


class EventSink(Protocol):
    """Where a trial's events go. ``emit`` must be cheap and thread-safe; events are msgpack-safe dicts."""

    def emit(self, event: dict[str, Any]) -> None: ...


class ListSink:
    """An :class:`EventSink` that keeps events in lists (local runs and tests).

    ``before_read``, if set (``local_context`` sets it to the context's flush), runs before
    :attr:`events` is read, so buffered reports show up without being sent one by one.
    """

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.before_read: Callable[[], None] | None = None

    def emit(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._events.append(event)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event emitted so far, in order."""
        if self.before_read is not None:
            self.before_read()
        return self._events

    def _records(self, kind: str) -> list[dict[str, Any]]:
        out = []
        for ev in self.events:
            if ev["type"] == "metrics":
                out += [{"steps": r[1], "metrics": r[2]} for r in ev["records"] if r[0] == kind]
        return out

    @property
    def training(self) -> list[dict[str, Any]]:
        """Training reports in order, as ``{"steps", "metrics"}``."""
        return self._records("training")

    @property
    def validation(self) -> list[dict[str, Any]]:
        """Validation reports in order, as ``{"steps", "metrics"}``."""
        return self._records("validation")


class StopFlag:
    """Set by the controller (searcher stop, pause, kill); read by ``ctx.should_stop()``."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


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
    max_time: int
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
    max_time: int

    @property
    def max_length(self) -> int:
        """Alias of ``max_time`` (Determined's older ``max_length`` wording)."""
        return self.max_time


@dataclass(frozen=True)
class DistributedContext:
    """Rank and size of this trial's process group (size 1 until multi-slot trials land)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_chief(self) -> bool:
        """True on rank 0, the process that reports and checkpoints."""
        return self.rank == 0


def metric_value(value: Any) -> float | int | str | None:
    """Turn a reported metric (python number, numpy scalar, 0-d tensor) into a msgpack-safe value.

    Example:
        >>> metric_value(3), metric_value(0.5), metric_value(float("nan"))
        (3, 0.5, None)
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    try:
        if hasattr(value, "item"):  # numpy scalar, 0-d array or tensor (syncs a GPU tensor: done in batches)
            value = value.item()  # an array or tensor of several elements raises here
        number = float(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(
            f"metric value {value!r} of type {type(value).__name__} is not a number; report floats, ints, "
            "numpy scalars or 0-d tensors"
        ) from None
    if isinstance(value, int):
        return value
    return number if math.isfinite(number) else None


class CheckpointContext:
    """Save and restore this trial's checkpoints (``ctx.checkpoint``).

    Example:
        >>> ctx = local_context(hparams={})
        >>> with ctx.checkpoint.save(steps=5) as path:
        ...     _ = (path / "state.txt").write_text("5")
        >>> with ctx.checkpoint.restore() as path:
        ...     (path / "state.txt").read_text()
        '5'
    """

    def __init__(self, trial: TrialContext, storage: CheckpointStorage, latest: str | None, steps: int):
        self._trial = trial
        self._storage = storage
        self.latest: str | None = latest
        """UUID of this trial's newest committed checkpoint, or ``None``."""
        self.latest_steps: int = steps
        """Steps at which ``latest`` was saved (0 on a fresh start)."""

    @contextlib.contextmanager
    def save(self, steps: int, metadata: Mapping[str, Any] | None = None) -> Iterator[Path]:
        """Write a checkpoint: yields an empty local directory; on exit it is committed atomically.

        Args:
            steps: training progress at this checkpoint (same unit as your metric reports).
            metadata: small JSON-safe facts to keep with it (framework, format, epoch...).

        If the block raises, nothing is committed and the exception propagates.
        """
        if steps < 0:
            raise ValueError(f"ctx.checkpoint.save(steps={steps}): steps must be non-negative")
        uuid = str(uuidlib.uuid4())
        user_metadata = _jsonable(dict(metadata or {}))  # numpy / tensor values as in the event below
        with self._storage.stage(uuid) as path:
            yield path
            meta = {
                **user_metadata,
                "steps": int(steps),
                "experiment_id": self._trial.experiment_id,
                "trial_id": self._trial.trial_id,
                "hparams": self._trial.hparams,
            }
            resources = self._storage.commit(uuid, path, meta)
        self._storage.write_latest(self._trial.experiment_id, self._trial.trial_id, uuid, int(steps))
        self.latest, self.latest_steps = uuid, int(steps)
        self._trial._flush()
        self._trial._emit(
            {
                "type": "checkpoint",
                "uuid": uuid,
                "steps": int(steps),
                "metadata": user_metadata,
                "resources": resources,
            }
        )

    @contextlib.contextmanager
    def restore(self) -> Iterator[Path | None]:
        """Yields the local directory of this trial's newest checkpoint, or ``None`` on a fresh start."""
        if self.latest is None:
            yield None
            return
        with self._storage.restore_path(self.latest) as path:
            yield path


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
        self.run_id = spec.run_id
        self.data: dict[str, Any] = spec.data
        self.seed = spec.seed
        self.sink = sink
        self.searcher = SearcherContext(spec.metric, spec.smaller_is_better, spec.time_metric, spec.max_time)
        self.distributed = DistributedContext()
        storage = CheckpointStorage(spec.storage_url, spec.storage_options)
        self.checkpoint = CheckpointContext(
            self, storage, spec.latest_checkpoint, spec.latest_checkpoint_steps
        )
        self._stop = stop_flag or StopFlag()
        self._flush_interval = flush_interval
        self._pending: list[tuple[str, int, Mapping[str, Any], float]] = []
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()
        self._seq = 0

    def __repr__(self) -> str:
        return f"TrialContext(trial_id={self.trial_id}, run_id={self.run_id}, hparams={self.hparams!r})"

    # --- reporting -----------------------------------------------------------------------------

    def report_training_metrics(self, steps: int, metrics: Mapping[str, Any]) -> None:
        """Record training metrics at ``steps`` (cheap: buffered, values converted when flushed).

        Example:
            >>> ctx = local_context(hparams={})
            >>> ctx.report_training_metrics(10, {"loss": 0.25})
        """
        self._check_report("report_training_metrics", steps, metrics)
        record = ("training", int(steps), dict(metrics), time.time())
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
        if self.searcher.metric not in metrics:
            raise ValueError(
                f"report_validation_metrics(steps={steps}) lacks the searcher metric "
                f"{self.searcher.metric!r} (got {sorted(metrics)}); report it, or change searcher.metric"
            )
        record = ("validation", int(steps), dict(metrics), time.time())
        with self._lock:
            self._pending.append(record)
        self._flush()

    def should_stop(self) -> bool:
        """True when the searcher stopped this trial or the user paused or killed the experiment.

        Check it once per batch or epoch; on True, save a checkpoint and return.
        """
        return self._stop.is_set()

    def log(self, message: str) -> None:
        """Send one line to the trial's log (``print`` inside a trial does the same)."""
        self._emit({"type": "log", "lines": [[time.time(), str(message)]]})

    # --- internals -----------------------------------------------------------------------------

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
        with self._lock:
            pending, self._pending = self._pending, []
            self._last_flush = time.monotonic()
        if not pending:
            return
        values = iter(_tensors_to_numbers([v for _, _, metrics, _ in pending for v in metrics.values()]))
        records = [
            [kind, steps, {str(k): metric_value(next(values)) for k in metrics}, ts]
            for kind, steps, metrics, ts in pending
        ]
        self._emit({"type": "metrics", "records": records})

    def _emit(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._seq += 1
            event["seq"] = self._seq
        event["trial_id"] = self.trial_id
        event["run_id"] = self.run_id
        self.sink.emit(event)

    @property
    def events_sent(self) -> int:
        """How many events this context has emitted (the controller checks it has them all)."""
        return self._seq

    def _close(self) -> None:
        """Flush what is buffered; the runtime calls it when user code returns or raises."""
        self._flush()


def _tensors_to_numbers(values: list[Any]) -> list[Any]:
    """Replace one-element accelerator tensors by Python numbers, one device→host copy per (device, dtype).

    Calling ``.item()`` on each of hundreds of buffered GPU losses costs one synchronising copy each;
    stacking them first costs one per group. CPU tensors and everything else are left to
    :func:`metric_value` (cheap there), as are tensors of several elements (it names the error).
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return values
    groups: dict[tuple[Any, Any], list[int]] = {}
    for i, value in enumerate(values):
        if isinstance(value, torch.Tensor) and not value.is_cpu and value.numel() == 1:
            groups.setdefault((value.device, value.dtype), []).append(i)
    for indices in groups.values():
        if len(indices) < 2:
            continue
        numbers = torch.stack([values[i].detach().reshape(()) for i in indices]).tolist()
        for i, number in zip(indices, numbers):
            values[i] = number
    return values


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    return metric_value(obj) if hasattr(obj, "item") else str(obj)


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
