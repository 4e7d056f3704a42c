"""The one metric-value policy: what a reported value becomes when it enters det_jupyter.

Reports enter through the :class:`~det_jupyter.worker.context.TrialContext`; its flush converts every
value with :func:`metric_values` before the ``metrics`` event is built. Nothing downstream (the
controller, the store, the readers) converts again; they only *rank*, with
:mod:`det_jupyter.searcher.ranking`.

- ``int`` (not ``bool``), finite ``float``: sent and stored as is; they rank.
- ``NaN``, ``+inf``, ``-inf``: sent and stored as ``None``; ranks worst.
- numpy scalar, 0-d array or tensor: the Python number it holds, then the rules above.
- ``bool`` and ``str``: sent and stored as is (tables, charts); never rank (worst).
- ``None``: stored as ``None``; ranks worst.
- anything else (a list, a tensor of several elements, an object): ``TypeError`` at the report call.

So a searcher metric that is NaN or missing ranks worst (the controller gives the searcher ``+inf``
when smaller is better, ``-inf`` otherwise) and a trial's best validation is never NaN.

Example:
    >>> import numpy as np
    >>> metric_values([3, 0.5, float("nan"), np.float32(0.25), True, "adam", None])
    [3, 0.5, None, 0.25, True, 'adam', None]
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["MetricValue", "is_metric_value", "jsonable", "metric_value", "metric_values", "unranked_reason"]

MetricValue = float | int | bool | str | None
"""A metric value as events carry it and the store keeps it (see the policy table above)."""


def metric_value(value: Any) -> MetricValue:
    """Turn one reported metric (python number, numpy scalar, 0-d tensor) into a msgpack-safe value.

    Applies the policy in this module's docstring. A GPU tensor syncs its device here, so the context
    converts buffered reports in batches with :func:`metric_values` instead.

    Raises:
        TypeError: the value is not a number (a list, a tensor of several elements, an object).

    Example:
        >>> metric_value(3), metric_value(0.5), metric_value(float("nan"))
        (3, 0.5, None)
    """
    if value is None or isinstance(value, (bool, str)):
        return value  # type: ignore[no-any-return]
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
    if isinstance(value, int):  # also a numpy bool's .item(): bool is an int
        return value
    return number if math.isfinite(number) else None


def metric_values(values: list[Any]) -> list[MetricValue]:
    """Convert a batch of reported values by the policy, with one device→host copy per (device, dtype).

    Calling ``.item()`` on each of hundreds of buffered GPU losses costs one synchronising copy each;
    stacking them first costs one per group.

    Example:
        >>> metric_values([1, float("inf")])
        [1, None]
    """
    return [metric_value(v) for v in _tensors_to_numbers(list(values))]


def unranked_reason(value: Any) -> str | None:
    """Why a reported searcher-metric value will not rank, in words for the trial's log; ``None`` if it ranks.

    The same policy as :func:`metric_value`, said out loud: the value is kept (or nulled) and ranks
    worst, so a NaN loss or a string never silently becomes a trial without a score.

    Example:
        >>> unranked_reason(0.5) is None
        True
        >>> unranked_reason(float("nan"))
        'is NaN: stored as null, it ranks worst'
        >>> unranked_reason("0.5")
        'is a str: stored as is, it never ranks (worst); report a number'
    """
    if hasattr(value, "item") and not isinstance(value, (bool, str)):
        try:
            value = value.item()
        except (TypeError, ValueError, RuntimeError):
            return None  # not a number at all: metric_value raises the TypeError that says so
    if value is None:
        return "is None: stored as null, it ranks worst"
    if isinstance(value, (bool, str)):
        return f"is a {type(value).__name__}: stored as is, it never ranks (worst); report a number"
    if isinstance(value, float) and math.isnan(value):
        return "is NaN: stored as null, it ranks worst"
    if isinstance(value, float) and math.isinf(value):
        return f"is {value}: stored as null, it ranks worst"
    return None


def is_metric_value(value: object) -> bool:
    """True for a value the policy can produce (what a decoded event may carry).

    Example:
        >>> is_metric_value(0.5), is_metric_value(float("nan")), is_metric_value([1])
        (True, False, False)
    """
    if value is None or isinstance(value, (bool, int, str)):
        return True
    return isinstance(value, float) and math.isfinite(value)


def jsonable(obj: Any) -> Any:
    """A JSON- and msgpack-safe copy of checkpoint metadata (numpy / tensor values become numbers).

    Example:
        >>> import numpy as np
        >>> jsonable({"epoch": np.int64(2), "tags": ("a", 1)})
        {'epoch': 2, 'tags': ['a', 1]}
    """
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    return metric_value(obj) if hasattr(obj, "item") else str(obj)


def _tensors_to_numbers(values: list[Any]) -> list[Any]:
    """Replace one-element accelerator tensors by Python numbers, one device→host copy per (device, dtype).

    CPU tensors and everything else are left to :func:`metric_value` (cheap there), as are tensors of
    several elements (it names the error).
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
