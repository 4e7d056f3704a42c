"""Training-length arithmetic shared by the framework adapters (no torch, no keras here).

Both :class:`~det_jupyter.frameworks.torch.TorchTrial` and
:class:`~det_jupyter.frameworks.keras.DetCallback` count progress in a :class:`Progress` and ask one
:class:`Schedule` after every batch and every epoch end what to do: validate, checkpoint, finish.

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
from dataclasses import asdict, astuple, dataclass, replace
from pathlib import Path
from typing import Any

from det_jupyter.config.names import TIME_METRICS
from det_jupyter.errors import CheckpointError, ConfigError, FieldError
from det_jupyter.worker.context import TrialContext

__all__ = [
    "STATE_FILE",
    "UNITS",
    "Decision",
    "Progress",
    "Schedule",
    "is_warm_start",
    "length_unit",
    "read_state",
    "trial_owner",
    "write_state",
]

UNITS: tuple[str, ...] = TIME_METRICS  # the one list: det_jupyter.config.names
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
        ctx: the trial context (``ctx.searcher`` gives the length, ``ctx.spec`` the periods).
        progress: where training starts (restored from a checkpoint, or zero).
        validated_at: batches at the newest validation already reported (restored), if any.

    The loop calls :meth:`decide` after every batch and every epoch end, does what it says, and records
    it with :meth:`validated` / :meth:`checkpointed`.
    """

    def __init__(self, ctx: TrialContext, progress: Progress, validated_at: int | None = None) -> None:
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
        self.validated_at = validated_at
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

    def validated(self, progress: Progress) -> None:
        self.validated_at = progress.batches

    def checkpointed(self, progress: Progress) -> None:
        self.checkpointed_at = progress.batches


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
) -> None:
    """Write :data:`STATE_FILE` into a checkpoint directory; ``owner`` is :func:`trial_owner`."""
    doc = {"progress": asdict(progress), "validated_at": validated_at, "data": data, "trial": owner}
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


def is_warm_start(path: Path, owner: str) -> bool:
    """Whether the checkpoint at ``path`` was written by another trial than ``owner`` (a warm start)."""
    try:
        doc = json.loads((path / STATE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return doc.get("trial") not in (None, owner)
