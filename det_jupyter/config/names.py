"""The closed vocabularies of a config, each written once: searcher names and time-metric units.

Every other list is derived from these ``Literal`` types with :func:`typing.get_args`, so adding a
searcher or a unit here is the only edit that changes what validation accepts, what ``make_searcher``
dispatches on and what the framework adapters count in. Values stay plain ``str`` at runtime (what the
store, the JSON wire format and Determined configs hold).

Example:
    >>> SEARCHER_NAMES
    ('single', 'grid', 'random', 'adaptive_asha', 'async_halving', 'custom')
    >>> TIME_METRICS, "epochs" in TIME_METRICS
    (('batches', 'epochs', 'records'), True)
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "ASHA_SEARCHERS",
    "RETIRED_SEARCHERS",
    "SEARCHERS_NEEDING_MAX_TRIALS",
    "SEARCHER_NAMES",
    "TIME_METRICS",
    "SearcherName",
    "TimeMetric",
]

SearcherName = Literal["single", "grid", "random", "adaptive_asha", "async_halving", "custom"]
"""A ``searcher.name`` det_jupyter runs (``custom``: a user's search method, ``searcher.class``)."""

TimeMetric = Literal["batches", "epochs", "records"]
"""A unit of training length (``max_length: {unit: N}``, ``time_metric``, validation/checkpoint periods).

``searcher.time_metric`` may also name a metric the trial reports; the framework adapters then count
``epochs`` (:func:`det_jupyter.frameworks._common.length_unit`).
"""

SEARCHER_NAMES: tuple[SearcherName, ...] = get_args(SearcherName)
TIME_METRICS: tuple[TimeMetric, ...] = get_args(TimeMetric)

ASHA_SEARCHERS: tuple[SearcherName, ...] = ("adaptive_asha", "async_halving")
"""The early-stopping searchers (rungs, ``divisor``, ``stop_once``)."""

SEARCHERS_NEEDING_MAX_TRIALS: tuple[SearcherName, ...] = ("random", *ASHA_SEARCHERS)
"""Searchers whose config must give ``max_trials`` (``single`` runs 1, ``grid`` runs its grid)."""

RETIRED_SEARCHERS: dict[str, str] = {
    "sync_halving": "`name: async_halving` with the same `num_rungs`, `divisor` and `max_length` "
    "(or `time_metric` + `max_time`), and `max_trials`",
    "adaptive": "`name: adaptive_asha` with the same `mode`, `divisor`, `max_rungs` and `max_length` "
    "(or `time_metric` + `max_time`), and `max_trials` instead of `budget`",
    "adaptive_simple": "`name: adaptive_asha` with the same `max_trials`, `mode`, `divisor`, `max_rungs` "
    "and `max_length` (or `time_metric` + `max_time`)",
    "pbt": "`name: adaptive_asha` (early stopping of poor trials) with `max_trials` = population_size x "
    "num_rounds and `time_metric` + `max_time` = the full training length",
}
"""Searchers Determined retired (end of life in its schema; ``pbt`` removed earlier), each with the
``adaptive_asha`` / ``async_halving`` settings that do the same job."""
