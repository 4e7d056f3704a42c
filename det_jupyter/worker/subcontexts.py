"""The small sub-contexts of a :class:`~det_jupyter.worker.context.TrialContext` (Determined's shape).

``ctx.searcher`` (:class:`SearcherContext`): what the searcher asks of the trial. ``ctx.distributed``
(:class:`DistributedContext`): rank and size. :class:`StopFlag`: what ``ctx.should_stop()`` reads
(Determined's ``preempt``). ``ctx.checkpoint`` has its own module, ``checkpoint_context``.

Example:
    >>> SearcherContext("val_loss", True, "batches", 100).max_length
    100
    >>> DistributedContext().is_chief
    True
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["DistributedContext", "SearcherContext", "StopFlag"]


class StopFlag:
    """Set by the controller (searcher stop, pause, kill); read by ``ctx.should_stop()``.

    Thread-safe; the worker plugin sets it from the thread ``client.run`` uses.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        """Ask the run to stop at its next ``should_stop()`` check."""
        self._event.set()

    def is_set(self) -> bool:
        """True once a stop was requested."""
        return self._event.is_set()


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
