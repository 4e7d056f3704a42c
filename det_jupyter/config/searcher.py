"""The ``searcher`` section of an experiment config: which trials to run and for how long.

Both ways Determined spells a training length are accepted: ``time_metric`` + ``max_time``
(Determined >= 0.38) and the older ``max_length: {batches|epochs|records: N}`` (a bare number
``max_length: N`` counts the steps the trial reports, i.e. batches). Either way, ``time_metric`` and
``max_time`` are set after validation when a length is given. As in Determined >= 0.38 only the ASHA
searchers need one; without one (``max_time is None``) the trial code decides how long it trains.

Searchers Determined retired (``sync_halving``, ``adaptive``, ``adaptive_simple``, ``pbt``) are an
error that names the ``adaptive_asha`` / ``async_halving`` settings doing the same job. ``custom``
runs a user's search method: ``search_method: module:Class`` (or a class defined in the notebook),
a subclass of :class:`det_jupyter.searcher.base.SearchMethod` (see
:mod:`det_jupyter.searcher.custom`), built with the ``options`` mapping as keyword arguments. :mod:`det_jupyter.config.experiment` re-exports
:class:`SearcherConfig`.

Example:
    >>> s = SearcherConfig(name="random", metric="val_loss", max_trials=8, max_length={"epochs": 10})
    >>> s.time_metric, s.max_time
    ('epochs', 10)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, Strict, field_validator, model_serializer
from pydantic.functional_serializers import SerializerFunctionWrapHandler
from pydantic_core import PydanticCustomError

from det_jupyter.config.formatting import ERROR_TYPE, Problem, show
from det_jupyter.config.names import (
    ASHA_SEARCHERS,
    RETIRED_SEARCHERS,
    SEARCHER_NAMES,
    SEARCHERS_NEEDING_MAX_TRIALS,
    TIME_METRICS,
    SearcherName,
    TimeMetric,
)
from det_jupyter.config.sections import (
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
    "search_method": ("custom",),
    "options": ("custom",),
    "unit": ("custom",),
    "budget": tuple(RETIRED_SEARCHERS),
    "train_stragglers": tuple(RETIRED_SEARCHERS),
}
_LENGTH_FIX = (
    "give the training length as `time_metric: batches` + `max_time: 1000` "
    f"(or the older `max_length: {{batches: 1000}}`; units {', '.join(TIME_METRICS)})"
)


class SearcherConfig(Section):
    """How trials are chosen and how long each trains (Determined's ``searcher`` section).

    Attributes:
        name: ``single``, ``grid``, ``random``, ``adaptive_asha``, ``async_halving`` or ``custom``.
        metric: the validation metric the searcher optimises.
        smaller_is_better: whether lower ``metric`` is better.
        max_trials: trials to start in all; required for random and both ASHA searchers, always 1 for
            ``single`` and ``None`` for ``grid`` (the grid decides).
        max_concurrent_trials: trials running at once; 0 means no limit beyond ``max_trials``.
        time_metric, max_time: the training length, set after validation when one is given (from
            ``max_length`` when the config uses that older style: ``time_metric`` is its unit,
            ``max_time`` its value); both ``None`` when none is given: the trial code decides.
            Required for the ASHA searchers.
        max_length: the older style of training length, kept as given.
        source_trial_id, source_checkpoint_uuid: a warm start: every trial's first run starts from
            that checkpoint (of a trial: its best, else its latest). At most one of them.
        search_method, options: the ``custom`` searcher's class (``module:Class``, or a name in the
            notebook) and the keyword arguments it is built with.
        unit: Determined's unit of a ``custom`` searcher's lengths (kept).
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

    source_trial_id: Annotated[int, Strict(), Field(ge=1)] | None = None
    source_checkpoint_uuid: Annotated[str, Field(min_length=1)] | None = None
    search_method: Annotated[str, Field(min_length=1)] | None = None
    options: dict[str, Any] | None = None
    unit: TimeMetric | None = None
    budget: Any = None  # only in retired searchers (an error naming the replacement)
    train_stragglers: Any = None

    ALIASES = {"class": "search_method"}

    @field_validator("name", mode="before")
    @classmethod
    def _retired(cls, value: Any) -> Any:
        if isinstance(value, str) and value in RETIRED_SEARCHERS:
            message = f"the {value} searcher was retired by Determined"
            fix = "use " + RETIRED_SEARCHERS[value]
            raise PydanticCustomError(ERROR_TYPE, "{message}", {"message": message, "fix": fix})
        return value

    @field_validator("max_length", mode="before")
    @classmethod
    def _unitless_length(cls, value: Any) -> Any:
        # Determined's unitless `max_length: N` counts what the trial reports as steps: batches.
        return {"batches": value} if type(value) is int else value

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
        has_time, has_metric, has_length = "max_time" in given, "time_metric" in given, "max_length" in given
        if has_length and (has_time or has_metric):
            message = "given together with time_metric/max_time; both set the training length"
            fix = "keep one style: `max_length: {batches: N}` or `time_metric: batches` + `max_time: N`"
            problems.append(Problem(("max_length",), message, fix, data["max_length"]))
        elif has_metric and not has_time:
            fix = "add `max_time: <training length in time_metric units>`"
            problems.append(Problem(("max_time",), "is required when time_metric is set", fix))
        elif has_time and not has_metric:
            fix = "add `time_metric: batches` (or epochs, records, or a metric your trial reports)"
            problems.append(Problem(("time_metric",), "is required when max_time is set", fix))
        elif not (has_time or has_length) and name in ASHA_SEARCHERS:
            message = f"the {name} searcher needs a training length (its rungs are fractions of it)"
            problems.append(Problem(("max_time",), message, _LENGTH_FIX))
        if "source_trial_id" in given and "source_checkpoint_uuid" in given:
            message = "given together with source_checkpoint_uuid; a warm start has one source"
            fix = "keep one of `source_trial_id` and `source_checkpoint_uuid`"
            problems.append(Problem(("source_trial_id",), message, fix, data["source_trial_id"]))
        if name == "custom" and "search_method" not in given:
            fix = "add `search_method: my_module:MySearch` (a det_jupyter.searcher.SearchMethod subclass)"
            problems.append(Problem(("search_method",), "is required for the custom searcher", fix))
        method = data.get("search_method")
        if isinstance(method, str) and method and not _is_class_reference(method):
            message = f"must be module:Class or a name defined in the notebook (got {show(method)})"
            fix = "write it as `my_module:MySearch` or `MySearch`"
            problems.append(Problem(("search_method",), message, fix, method))
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


def _is_class_reference(text: str) -> bool:
    """``module.path:Class.attr`` or a bare ``Name``, each part an identifier."""
    module, _, attr = text.partition(":")
    parts = [*module.split("."), *(attr.split(".") if attr else [])] if ":" in text else [text]
    return all(p.isidentifier() for p in parts)
