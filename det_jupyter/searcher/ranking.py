"""What "best" means, decided once: every place that ranks trials or checkpoints calls this module.

A metric value is *rankable* when it is a finite real number (``bool`` is not a metric). Anything
else (``None``, NaN, ±inf, a string) ranks worst, whichever the direction. Ties go to the older
item: the smaller ``tiebreak`` (trial id, or ``-steps`` for "newest checkpoint of a trial first").
The controller, ``Experiment.best_trial()`` / ``best_checkpoint()``, the widget, the reports, the
server's serializers and the checkpoint GC all use these functions, so they cannot disagree
(``tests/searcher_tests/test_ranking.py`` checks them against one store). The one deliberate exception
is ASHA's rung order (``asha.py``), which follows Determined's tie rule so searcher decisions match.

Example:
    >>> best_index([0.3, float("nan"), 0.1, 0.1], smaller_is_better=True)
    2
    >>> is_better(0.9, 0.8, smaller_is_better=False), is_better(float("nan"), None, smaller_is_better=True)
    (True, False)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

__all__ = ["best_index", "best_of", "best_value", "finite_or_none", "is_better", "is_rankable", "rank_key"]

T = TypeVar("T")


def is_rankable(value: object) -> bool:
    """True for a finite int or float (not ``bool``); such values take part in a ranking."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def finite_or_none(value: object) -> float | None:
    """``float(value)`` when rankable, else ``None`` (what the store keeps as a trial's best)."""
    return float(value) if is_rankable(value) else None  # type: ignore[arg-type]


def rank_key(value: object, *, smaller_is_better: bool, tiebreak: float = 0.0) -> tuple[int, float, float]:
    """Sort key: ascending order puts the best first, unrankable values last, ties by ``tiebreak``.

    Example:
        >>> sorted([0.2, None, 0.7], key=lambda v: rank_key(v, smaller_is_better=False))
        [0.7, 0.2, None]
    """
    if not is_rankable(value):
        return (1, 0.0, tiebreak)
    number = float(value)  # type: ignore[arg-type]
    return (0, number if smaller_is_better else -number, tiebreak)


def is_better(new: object, old: object, *, smaller_is_better: bool) -> bool:
    """True when ``new`` ranks strictly better than ``old`` (any rankable value beats an unrankable one)."""
    return rank_key(new, smaller_is_better=smaller_is_better) < rank_key(
        old, smaller_is_better=smaller_is_better
    )


def best_of(
    items: Iterable[T],
    value: Callable[[T], object],
    *,
    smaller_is_better: bool,
    tiebreak: Callable[[T], float] | None = None,
) -> T | None:
    """The item with the best rankable ``value(item)`` (ties: smallest ``tiebreak``); ``None`` if none ranks.

    Example:
        >>> best_of([("a", 0.5), ("b", 0.9)], lambda t: t[1], smaller_is_better=False)
        ('b', 0.9)
    """
    best: T | None = None
    best_key: tuple[int, float, float] | None = None
    for item in items:
        key = rank_key(
            value(item), smaller_is_better=smaller_is_better, tiebreak=tiebreak(item) if tiebreak else 0.0
        )
        if key[0] == 0 and (best_key is None or key < best_key):
            best, best_key = item, key
    return best


def best_index(values: Sequence[object], *, smaller_is_better: bool) -> int | None:
    """Index of the best rankable value (ties: the first); ``None`` if none ranks."""
    found = best_of(
        range(len(values)), values.__getitem__, smaller_is_better=smaller_is_better, tiebreak=float
    )
    return found


def best_value(values: Iterable[object], *, smaller_is_better: bool) -> float | None:
    """The best rankable value as a ``float``; ``None`` if none ranks (e.g. an experiment's best metric).

    Example:
        >>> best_value([0.3, None, float("nan"), 0.1], smaller_is_better=True)
        0.1
        >>> best_value([None, float("inf")], smaller_is_better=False) is None
        True
    """
    return finite_or_none(best_of(values, lambda v: v, smaller_is_better=smaller_is_better))
