"""The ``searcher`` section of an experiment config: which trials to run and for how long.

Both ways Determined spells a training length are accepted: ``time_metric`` + ``max_time``
(Determined >= 0.38) and the older ``max_length: {batches|epochs|records: N}``. Either way,
``time_metric`` and ``max_time`` are set after validation. :mod:`det_jupyter.config.experiment` re-exports
:class:`SearcherConfig`.

Example:
    >>> s = SearcherConfig(name="random", metric="val_loss", max_trials=8, max_length={"epochs": 10})
    >>> s.time_metric, s.max_time
    ('epochs', 10)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, Strict, model_serializer
from pydantic.functional_serializers import SerializerFunctionWrapHandler

from det_jupyter.config.formatting import Problem
from det_jupyter.config.names import (
    ASHA_SEARCHERS,
    SEARCHER_NAMES,
    SEARCHERS_NEEDING_MAX_TRIALS,
    TIME_METRICS,
    SearcherName,
    TimeMetric,
)
from det_jupyter.config.sections import (
    DETERMINED_ONLY,
    Bool,
    Length,
    NonNegInt,
    PosInt,
    Section,
    given_keys,
    owner_problems,
)

__all__ = ["SEARCHER_NAMES", "TIME_METRICS", "SearcherConfig", "SearcherName", "TimeMetric"]

# Keys that only some searchers read; any other searcher rejects them.
_SEARCHER_OWNERS: dict[str, tuple[str, ...]] = {
    "mode": ("adaptive_asha",),
    "max_rungs": ("adaptive_asha",),
    "bracket_rungs": ("adaptive_asha",),
    "divisor": ASHA_SEARCHERS,
    "stop_once": ASHA_SEARCHERS,
    "num_rungs": ("async_halving",),
}
_LENGTH_FIX = (
    "give the training length as `time_metric: batches` + `max_time: 1000` "
    f"(or the older `max_length: {{batches: 1000}}`; units {', '.join(TIME_METRICS)})"
)


class SearcherConfig(Section):
    """How trials are chosen and how long each trains (Determined's ``searcher`` section).

    Attributes:
        name: ``single``, ``grid``, ``random``, ``adaptive_asha`` or ``async_halving``.
        metric: the validation metric the searcher optimises.
        smaller_is_better: whether lower ``metric`` is better.
        max_trials: trials to start in all; required for random and both ASHA searchers, always 1 for
            ``single`` and ``None`` for ``grid`` (the grid decides).
        max_concurrent_trials: trials running at once; 0 means no limit beyond ``max_trials``.
        time_metric, max_time: the training length, always set after validation (from ``max_length``
            when the config uses that older style: ``time_metric`` is its unit, ``max_time`` its value).
        max_length: the older style of training length, kept as given.
        mode, divisor, max_rungs, bracket_rungs, stop_once: adaptive ASHA settings (``divisor`` and
            ``stop_once`` are used by ``async_halving`` too).
        num_rungs: rungs of ``async_halving`` (required there).

    Example:
        >>> s = SearcherConfig(name="adaptive_asha", metric="val_acc", smaller_is_better=False,
        ...                    max_trials=16, max_length={"batches": 640})
        >>> s.time_metric, s.max_time
        ('batches', 640)
    """

    name: SearcherName
    metric: Annotated[str, Field(min_length=1)]
    smaller_is_better: Bool = True
    max_trials: PosInt | None = None
    max_concurrent_trials: NonNegInt = 16
    time_metric: Annotated[str, Field(min_length=1)] | None = None
    max_time: PosInt | None = None
    max_length: Length | None = None
    mode: Literal["aggressive", "standard", "conservative"] = "standard"
    divisor: Annotated[float, Strict(), Field(gt=1)] = 4.0
    max_rungs: PosInt = 5
    bracket_rungs: list[PosInt] | None = None
    num_rungs: PosInt | None = None
    stop_once: Bool = False

    UNSUPPORTED_KEYS = {"source_trial_id": DETERMINED_ONLY, "source_checkpoint_uuid": DETERMINED_ONLY}

    @classmethod
    def _check(cls, data: Mapping[str, Any], derived: dict[str, Any]) -> list[Problem]:
        given, name = given_keys(data), data.get("name")
        problems = []
        if name in SEARCHER_NAMES:
            problems += owner_problems(data, _SEARCHER_OWNERS, "searcher", "name", name)
            if name in SEARCHERS_NEEDING_MAX_TRIALS and "max_trials" not in given:
                fix = "add `max_trials: 16` (how many trials to start in all)"
                problems.append(Problem(("max_trials",), f"is required for the {name} searcher", fix))
            if name == "async_halving" and "num_rungs" not in given:
                problems.append(
                    Problem(("num_rungs",), "is required for async_halving", "add `num_rungs: 4`")
                )
            if name == "single" and type(data.get("max_trials")) is int and data["max_trials"] != 1:
                fix = "remove max_trials, or use `name: random` to run several trials"
                message = f"must be 1 for the single searcher (got {data['max_trials']})"
                problems.append(Problem(("max_trials",), message, fix, data["max_trials"]))
        has_time, has_metric = "max_time" in given, "time_metric" in given
        if "max_length" in given and (has_time or has_metric):
            message = "given together with time_metric/max_time; both set the training length"
            fix = "keep one style: `max_length: {batches: N}` or `time_metric: batches` + `max_time: N`"
            problems.append(Problem(("max_length",), message, fix, data["max_length"]))
        elif has_metric and not has_time:
            fix = "add `max_time: <training length in time_metric units>`"
            problems.append(Problem(("max_time",), "is required when time_metric is set", fix))
        elif has_time and not has_metric:
            fix = "add `time_metric: batches` (or epochs, records, or a metric your trial reports)"
            problems.append(Problem(("time_metric",), "is required when max_time is set", fix))
        elif not (has_time or "max_length" in given):
            problems.append(Problem(("max_time",), "no training length given", _LENGTH_FIX))
        return problems

    def _finish(self, derived: dict[str, Any]) -> None:
        # Frozen model, normalised once at validation: object.__setattr__ is the documented way round.
        if self.max_length is not None:
            object.__setattr__(self, "time_metric", self.max_length.unit)
            object.__setattr__(self, "max_time", self.max_length.value)
        if self.name in ("single", "grid"):
            object.__setattr__(self, "max_trials", 1 if self.name == "single" else None)

    @model_serializer(mode="wrap")
    def _serialise(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        for key, owners in _SEARCHER_OWNERS.items():
            if self.name not in owners:
                out.pop(key, None)
        if self.max_length is not None:  # written in the style it was given in
            out.pop("time_metric", None)
            out.pop("max_time", None)
        return out
