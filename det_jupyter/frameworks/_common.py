"""Training-length arithmetic shared by the framework adapters (no torch, no keras here).

Both :class:`~det_jupyter.frameworks.torch.TorchTrial` and
:class:`~det_jupyter.frameworks.keras.DetCallback` count progress in a :class:`Progress` and ask one
:class:`Schedule` after every batch and every epoch end what to do: validate, checkpoint, finish;
after every validation, whether the ``checkpoint_policy`` wants a checkpoint.

Rules (the same for both frameworks):

- **Length**: train until ``ctx.searcher.max_time`` units of ``ctx.searcher.time_metric`` (``batches``,
  ``epochs`` or ``records``). Any other ``time_metric`` (a metric name) counts as ``epochs``; the trial
  logs that once.
- **Periods** (``min_validation_period``, ``min_checkpoint_period``, each ``(unit, n)``): an action is
  due whenever the progress in ``unit`` crosses a multiple of ``n``. Multiples, not "n since the last
  one", so a restarted trial validates at the same steps as an uninterrupted one. No validation period
  means once per epoch; no checkpoint period means only at the end (and on stop).
- **End**: when the length is reached, validate and checkpoint (unless already done at this batch).
- **Stop** (``ctx.should_stop()``): checkpoint (unless already done at this batch) and return, without
  an extra validation.
- **Initial validation** (``perform_initial_validation: true``): validate once before the first batch
  of a trial that starts from zero (a fresh trial, or a warm start from another trial's checkpoint,
  whose weights it measures), reported at ``steps`` 0. A trial resumed from its own checkpoint does
  not repeat it.
- **Checkpoint policy** (``checkpoint_policy``, Determined's): after each validation, ``all``
  checkpoints; ``best`` (the default) checkpoints when the validation is the trial's best so far by
  ``searcher.metric`` / ``smaller_is_better`` (:mod:`det_jupyter.searcher.ranking`; an unrankable
  value such as NaN is never best); ``none`` never checkpoints because of a validation. Every policy
  still checkpoints at ``min_checkpoint_period``, at the end and on stop, and nothing is saved twice at
  one batch (the validation at steps 0 saves nothing: the model is untrained, or is the warm start's).
  Determined's ``best`` compares with the best validation of the whole *experiment*, which a worker
  does not know; comparing with the trial's own best takes every checkpoint Determined would, and a
  few more early in a trial (the checkpoint GC policy deletes the extra ones).
- **Scheduling unit** (``scheduling_unit: n``): training metrics are reported once per ``n`` batches,
  at the unit's last batch (batches trained a multiple of ``n``), as the mean of each metric over the
  unit (see :class:`TrainingMeans`), plus once for a partial unit when training finishes. Unset: every
  batch is reported.

Example:
    >>> from det_jupyter.worker.context import local_context
    >>> ctx = local_context({}, time_metric="batches", max_time=3)
    >>> schedule, progress = Schedule(ctx, Progress()), Progress()
    >>> for _ in range(3):
    ...     progress.batches += 1
    ...     decision = schedule.decide(progress, stop_requested=False)
    >>> decision
    Decision(validate=True, checkpoint=True, finish=True, stopped=False)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, astuple, dataclass, replace
from pathlib import Path
from typing import Any

from det_jupyter.config.names import TIME_METRICS
from det_jupyter.errors import CheckpointError, ConfigError, FieldError
from det_jupyter.searcher.ranking import finite_or_none, is_better
from det_jupyter.worker.context import TrialContext

__all__ = [
    "CHECKPOINT_POLICIES",
    "STATE_FILE",
    "UNITS",
    "Decision",
    "Progress",
    "Schedule",
    "TrainingMeans",
    "is_warm_start",
    "length_unit",
    "read_best_validation",
    "read_state",
    "trial_owner",
    "write_state",
]

UNITS: tuple[str, ...] = TIME_METRICS  # the one list: det_jupyter.config.names
CHECKPOINT_POLICIES: tuple[str, ...] = ("best", "all", "none")
"""Determined's ``checkpoint_policy`` values (the config validates them; a hand-built spec is checked here)."""
NO_LENGTH_MESSAGE = (
    "TorchTrial / KerasTrial train for a length the searcher gives, and this config gives none"
)
NO_LENGTH_FIX = (
    "add `time_metric: epochs` + `max_time: 10` (or `max_length: {epochs: 10}`) to the searcher section, "
    "or write the training loop yourself in a function train(ctx)"
)
STATE_FILE = "trial_state.json"
"""The small JSON file every framework checkpoint carries: progress, last validation, the data section."""


def length_unit(time_metric: str) -> str:
    """The unit a trial counts ``max_time`` in: ``time_metric`` itself, or ``epochs`` for a metric name.

    Example:
        >>> length_unit("batches"), length_unit("val_loss")
        ('batches', 'epochs')
    """
    return time_metric if time_metric in UNITS else "epochs"


@dataclass
class Progress:
    """How far a trial has trained.

    Attributes:
        batches: batches trained in all (the ``steps`` of every report and checkpoint).
        epochs: completed epochs.
        batch_in_epoch: batches trained in the current, unfinished epoch.
        records: records (samples) trained in all.
    """

    batches: int = 0
    epochs: int = 0
    batch_in_epoch: int = 0
    records: int = 0

    def value(self, unit: str) -> int:
        """Progress in ``batches``, ``epochs`` (completed) or ``records``."""
        if unit not in UNITS:
            raise ValueError(f"unknown training unit {unit!r}; use one of {', '.join(UNITS)}")
        return int(getattr(self, unit))

    def end_epoch(self) -> None:
        """Mark the current epoch complete."""
        self.epochs += 1
        self.batch_in_epoch = 0

    def metrics(self, epoch_length: int | None = None) -> dict[str, int | float]:
        """``batches``, ``epochs`` and ``records`` for a report, so any searcher unit can be read from it.

        ``epochs`` is a float: completed epochs plus the finished fraction of the current one when the
        epoch length (in batches) is known.

        Example:
            >>> Progress(batches=12, epochs=1, batch_in_epoch=4, records=96).metrics(epoch_length=8)
            {'batches': 12, 'epochs': 1.5, 'records': 96}
        """
        fraction = self.batch_in_epoch / epoch_length if epoch_length else 0.0
        return {"batches": self.batches, "epochs": self.epochs + fraction, "records": self.records}

    def copy(self) -> Progress:
        return replace(self)


@dataclass(frozen=True)
class Decision:
    """What the loop must do now. ``stopped`` means ``finish`` because of ``ctx.should_stop()``."""

    validate: bool = False
    checkpoint: bool = False
    finish: bool = False
    stopped: bool = False

    def __or__(self, other: Decision) -> Decision:
        return Decision(*(a or b for a, b in zip(astuple(self), astuple(other))))


class Schedule:
    """Decides, from the trial's spec and its progress, when to validate, checkpoint and finish.

    Args:
        ctx: the trial context (``ctx.searcher`` gives the length and metric, ``ctx.spec`` the periods,
            ``checkpoint_policy``, ``perform_initial_validation`` and ``scheduling_unit``).
        progress: where training starts (restored from a checkpoint, or zero).
        validated_at: batches at the newest validation already reported (restored), if any.
        best: the best searcher-metric value of the trial's validations so far (restored), if any.

    The loop runs the initial validation when :attr:`initial_validation` is true, calls :meth:`decide`
    after every batch and every epoch end, does what it says, and records it with :meth:`validated`
    (whose answer says whether the checkpoint policy wants a checkpoint now) / :meth:`checkpointed`.

    Example (``checkpoint_policy: best`` with a smaller-is-better metric):
        >>> from det_jupyter.worker.context import local_context
        >>> schedule = Schedule(local_context({}, metric="val_loss"), Progress())
        >>> [schedule.validated(Progress(batches=b), {"val_loss": v}) for b, v in [(5, 0.5), (10, 0.7), (15, 0.4)]]
        [True, False, True]
    """

    def __init__(
        self,
        ctx: TrialContext,
        progress: Progress,
        validated_at: int | None = None,
        best: float | None = None,
    ) -> None:
        if ctx.searcher.max_time is None:
            raise ConfigError(FieldError("searcher.max_time", NO_LENGTH_MESSAGE, NO_LENGTH_FIX))
        self.unit = length_unit(ctx.searcher.time_metric)
        self.max_time = int(ctx.searcher.max_time)
        if self.unit != ctx.searcher.time_metric:
            ctx.log(
                f"searcher.time_metric {ctx.searcher.time_metric!r} is not one of {', '.join(UNITS)}: "
                f"training for max_time={self.max_time} epochs"
            )
        self.validation_period = _period(ctx.spec.min_validation_period, "min_validation_period") or (
            "epochs",
            1,
        )
        self.checkpoint_period = _period(ctx.spec.min_checkpoint_period, "min_checkpoint_period")
        self.checkpoint_policy = _checkpoint_policy(ctx.spec.checkpoint_policy)
        self.scheduling_unit = _scheduling_unit(ctx.spec.scheduling_unit)
        self.metric = ctx.searcher.metric
        self.smaller_is_better = ctx.searcher.smaller_is_better
        self.best = best
        self.validated_at = validated_at
        self.initial_validation = bool(ctx.spec.perform_initial_validation) and (
            progress.batches == 0 and validated_at is None
        )
        """Whether the loop must validate once before the first batch (cleared by :meth:`validated`)."""
        # Progress at the start is already saved (restored), or is the untrained model (nothing to save).
        self.checkpointed_at: int | None = progress.batches
        # decide() runs after every batch: positions in a (batches, epochs, records) tuple, not getattr
        self._unit_index = _INDEX[self.unit]
        self._validation = _indexed_period(self.validation_period)
        self._checkpoint = _indexed_period(self.checkpoint_period)
        self._prev = _values(progress)

    def reached(self, progress: Progress) -> bool:
        """True once ``progress`` has reached ``max_time`` in the trial's unit."""
        return progress.value(self.unit) >= self.max_time

    def decide(self, progress: Progress, *, stop_requested: bool) -> Decision:
        """What to do now that training has reached ``progress`` (call once per batch and epoch end)."""
        before, now = self._prev, _values(progress)
        self._prev = now
        done = now[self._unit_index] >= self.max_time
        stopped = stop_requested and not done
        validate = done or _crossed(self._validation, before, now)
        checkpoint = done or stopped or _crossed(self._checkpoint, before, now)
        if not (validate or checkpoint or stopped):
            return _NOTHING  # the common case, without building a Decision
        return Decision(
            validate=validate and self.validated_at != progress.batches,
            checkpoint=checkpoint and self.checkpointed_at != progress.batches,
            finish=done or stopped,
            stopped=stopped,
        )

    def validated(self, progress: Progress, metrics: Mapping[str, Any] | None = None) -> bool:
        """Record a validation at ``progress``; True when the checkpoint policy wants a checkpoint now.

        ``metrics`` are the reported ones (their ``searcher.metric`` updates :attr:`best`). Never True
        where a checkpoint at this batch exists already (e.g. the validation at steps 0).
        """
        self.validated_at = progress.batches
        self.initial_validation = False
        value = _metric_number(None if metrics is None else metrics.get(self.metric))
        improved = is_better(value, self.best, smaller_is_better=self.smaller_is_better)
        if improved:
            self.best = value
        if self.checkpointed_at == progress.batches:
            return False
        return self.checkpoint_policy == "all" or (self.checkpoint_policy == "best" and improved)

    def report_due(self, progress: Progress) -> bool:
        """Whether training metrics are reported at this batch: every batch, or a unit's last batch."""
        unit = self.scheduling_unit
        return unit is None or progress.batches % unit == 0

    def checkpointed(self, progress: Progress) -> None:
        self.checkpointed_at = progress.batches


class TrainingMeans:
    """Training reports averaged over a ``scheduling_unit`` (Determined's reporting period).

    :meth:`add` each batch's metrics; :meth:`take` returns the mean of every numeric metric over the
    batches added since the last take (tensors stay tensors: summed on their device, no sync), and the
    newest value of the others (``str``, ``bool``, ``None``), in the order first seen.

    Example:
        >>> means = TrainingMeans()
        >>> for loss in (1.0, 2.0, 6.0):
        ...     means.add({"loss": loss, "phase": "warmup"})
        >>> means.take(), means.pending
        ({'loss': 3.0, 'phase': 'warmup'}, False)
    """

    def __init__(self) -> None:
        self._sums: dict[str, Any] = {}
        self._counts: dict[str, int] = {}
        self._latest: dict[str, Any] = {}

    @property
    def pending(self) -> bool:
        """True when batches were added since the last :meth:`take`."""
        return bool(self._sums or self._latest)

    def add(self, metrics: Mapping[str, Any]) -> None:
        for key, value in metrics.items():
            if value is None or isinstance(value, (bool, str)):
                self._latest[key] = value
            elif key in self._sums:
                self._sums[key] = self._sums[key] + value
                self._counts[key] += 1
            else:
                self._sums[key] = value
                self._counts[key] = 1
                self._latest.setdefault(key, None)  # keeps the key's first-seen position

    def take(self) -> dict[str, Any]:
        sums, counts, latest = self._sums, self._counts, self._latest
        self._sums, self._counts, self._latest = {}, {}, {}
        return {key: sums[key] / counts[key] if key in sums else value for key, value in latest.items()}


def _checkpoint_policy(policy: str) -> str:
    if policy not in CHECKPOINT_POLICIES:
        raise ValueError(f"checkpoint_policy={policy!r}: use one of {', '.join(CHECKPOINT_POLICIES)}")
    return policy


def _scheduling_unit(unit: int | None) -> int | None:
    if unit is None:
        return None
    if isinstance(unit, bool) or not isinstance(unit, int) or unit < 1:
        raise ValueError(f"scheduling_unit={unit!r}: give a number of batches >= 1, or None")
    return unit


def _metric_number(value: Any) -> float | None:
    """The searcher-metric value as a rankable float, or ``None`` (missing, NaN, inf, bool, str)."""
    if value is None or isinstance(value, (bool, str)):
        return None
    try:
        return finite_or_none(float(value))
    except (TypeError, ValueError):
        return None


def _period(period: tuple[str, int] | None, name: str) -> tuple[str, int] | None:
    if period is None:
        return None
    unit, n = period
    if unit not in UNITS or int(n) < 1:
        raise ValueError(f"{name}={period!r}: give (unit, n) with unit in {', '.join(UNITS)} and n >= 1")
    return str(unit), int(n)


_INDEX = {unit: i for i, unit in enumerate(UNITS)}
_NOTHING = Decision()


def _values(progress: Progress) -> tuple[int, int, int]:
    return progress.batches, progress.epochs, progress.records


def _indexed_period(period: tuple[str, int] | None) -> tuple[int, int] | None:
    return None if period is None else (_INDEX[period[0]], period[1])


def _crossed(period: tuple[int, int] | None, before: tuple[int, ...], after: tuple[int, ...]) -> bool:
    if period is None:
        return False
    i, n = period
    return after[i] // n > before[i] // n


def trial_owner(ctx: TrialContext) -> str:
    """Which trial a checkpoint's state belongs to (its experiment key, or id, and trial id)."""
    return f"{ctx.experiment_key or ctx.experiment_id}/{ctx.trial_id}"


def write_state(
    path: Path,
    progress: Progress,
    *,
    validated_at: int | None,
    data: dict[str, Any],
    owner: str | None = None,
    best_validation: float | None = None,
) -> None:
    """Write :data:`STATE_FILE` into a checkpoint directory; ``owner`` is :func:`trial_owner`.

    ``best_validation`` is :attr:`Schedule.best` (what ``checkpoint_policy: best`` compares with).
    """
    doc = {
        "progress": asdict(progress),
        "validated_at": validated_at,
        "best_validation": best_validation,
        "data": data,
        "trial": owner,
    }
    (path / STATE_FILE).write_text(json.dumps(doc, default=str))


def read_state(path: Path, owner: str | None = None) -> tuple[Progress, int | None, dict[str, Any]]:
    """Read :data:`STATE_FILE` from a checkpoint directory: ``(progress, validated_at, data)``.

    With ``owner`` (:func:`trial_owner` of the trial restoring it): a checkpoint another trial wrote
    is a warm start (``searcher.source_trial_id`` / ``source_checkpoint_uuid``): the weights come from
    it but training counts from zero, as in Determined.
    """
    file = path / STATE_FILE
    if not file.exists():
        raise CheckpointError(
            f"{path} has no {STATE_FILE}: it was not written by TorchTrial / KerasTrial / DetCallback; "
            "load it with det_jupyter.torch.load_model or det_jupyter.keras.load_model instead"
        )
    doc = json.loads(file.read_text())
    data = dict(doc.get("data") or {})
    if owner is not None and doc.get("trial") not in (None, owner):
        return Progress(), None, data
    return Progress(**doc["progress"]), doc.get("validated_at"), data


def read_best_validation(path: Path, owner: str) -> float | None:
    """The best searcher-metric value :data:`STATE_FILE` records for ``owner``'s trial, if any.

    ``None`` for a warm start (another trial's best says nothing about this one), a checkpoint written
    before the value was recorded, or one with no rankable validation yet.
    """
    try:
        doc = json.loads((path / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if doc.get("trial") not in (None, owner):
        return None
    return _metric_number(doc.get("best_validation"))


def is_warm_start(path: Path, owner: str) -> bool:
    """Whether the checkpoint at ``path`` was written by another trial than ``owner`` (a warm start)."""
    try:
        doc = json.loads((path / STATE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return doc.get("trial") not in (None, owner)
