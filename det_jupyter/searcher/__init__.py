"""Searchers: pure state machines that turn trial events into operations.

``make_searcher`` builds the searcher an experiment config names. Every searcher follows the contract
in :class:`~det_jupyter.searcher.base.SearchMethod`.

Example:
    >>> from det_jupyter.config import load_config
    >>> cfg = load_config({"searcher": {"name": "single", "metric": "loss", "max_length": {"batches": 100}},
    ...                    "hyperparameters": {"lr": 0.1}})
    >>> make_searcher(cfg.searcher, cfg.hparam_space, seed=0).initial_operations()
    [Create(request_id=1, hparams={'lr': 0.1})]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from det_jupyter.config.names import SEARCHER_NAMES
from det_jupyter.errors import ConfigError, FieldError
from det_jupyter.hparams import HParamSpace
from det_jupyter.searcher.asha import (
    ASHASearch,
    Bracket,
    adaptive_asha_brackets,
    async_halving_bracket,
    rung_lengths,
)
from det_jupyter.searcher.base import (
    Create,
    ExitReason,
    Operation,
    SearcherStateError,
    SearchMethod,
    Shutdown,
    Stop,
)
from det_jupyter.searcher.custom import make_custom_searcher, resolve_search_method
from det_jupyter.searcher.grid import GridSearch
from det_jupyter.searcher.random import RandomSearch
from det_jupyter.searcher.single import SingleSearch

if TYPE_CHECKING:
    from det_jupyter.config.searcher import SearcherConfig

__all__ = [
    "SEARCHER_NAMES",
    "ASHASearch",
    "Bracket",
    "Create",
    "ExitReason",
    "GridSearch",
    "Operation",
    "RandomSearch",
    "SearchMethod",
    "SearcherStateError",
    "Shutdown",
    "SingleSearch",
    "Stop",
    "adaptive_asha_brackets",
    "async_halving_bracket",
    "make_custom_searcher",
    "make_searcher",
    "resolve_search_method",
    "rung_lengths",
]


def make_searcher(config: SearcherConfig, space: HParamSpace, seed: int) -> SearchMethod:
    """Build the searcher that a validated ``SearcherConfig`` names.

    The config's own validation (:class:`~det_jupyter.config.searcher.SearcherConfig`) is the only check
    of its fields; this function only dispatches on ``config.name``.

    Args:
        config: the experiment's searcher section; read attributes are ``name``,
            ``smaller_is_better``, ``max_trials``, ``max_concurrent_trials``, ``max_time``, ``mode``,
            ``divisor``, ``max_rungs``, ``bracket_rungs`` and ``num_rungs`` (``metric``,
            ``time_metric`` and ``stop_once`` do not change the search); ``search_method`` and
            ``options`` for ``custom`` (:mod:`det_jupyter.searcher.custom`). ``max_time`` may be
            ``None`` for single, grid and random: the trial code decides how long a trial trains.
        space: the parsed hyperparameter space.
        seed: the experiment seed; the searcher's random generator starts from it.

    Returns:
        A fresh searcher; call ``initial_operations()`` first.

    Raises:
        ConfigError: the hyperparameter space does not suit the searcher (grid without ``count``), a
            ``custom`` search method cannot be resolved or built, or a field that validation always
            sets is missing (a config built without validation).

    Example:
        >>> from det_jupyter.config import load_config
        >>> cfg = load_config({"searcher": {"name": "random", "metric": "loss", "max_trials": 3,
        ...                                 "time_metric": "batches", "max_time": 100},
        ...                    "hyperparameters": {"lr": 0.1}})
        >>> make_searcher(cfg.searcher, cfg.hparam_space, seed=0).initial_operations()[0]
        Create(request_id=1, hparams={'lr': 0.1})
    """
    c = config
    if c.name == "custom":
        return make_custom_searcher(c, space, seed)
    if c.name == "single":
        return SingleSearch(space, max_time=c.max_time, seed=seed)
    if c.name == "grid":
        return GridSearch(space, max_concurrent_trials=c.max_concurrent_trials, max_time=c.max_time)
    if c.name not in SEARCHER_NAMES:  # unreachable for a validated config; a stand-in may get here
        fix = f"use one of {', '.join(SEARCHER_NAMES)}"
        raise ConfigError(FieldError("searcher.name", f"unknown searcher {c.name!r}", fix))
    max_trials = _required(c.max_trials, "max_trials")
    if c.name == "random":
        return RandomSearch(
            space,
            max_trials=max_trials,
            max_concurrent_trials=c.max_concurrent_trials,
            max_time=c.max_time,
            seed=seed,
        )
    max_time = _required(c.max_time, "max_time")  # the ASHA searchers' rungs are fractions of it
    if c.name == "adaptive_asha":
        brackets = adaptive_asha_brackets(
            max_trials=max_trials,
            max_time=max_time,
            divisor=c.divisor,
            mode=c.mode,
            max_rungs=c.max_rungs,
            max_concurrent_trials=c.max_concurrent_trials,
            bracket_rungs=c.bracket_rungs,
        )
    else:
        brackets = [
            async_halving_bracket(
                num_rungs=_required(c.num_rungs, "num_rungs"),
                max_trials=max_trials,
                max_time=max_time,
                divisor=c.divisor,
                max_concurrent_trials=c.max_concurrent_trials,
            )
        ]
    return ASHASearch(
        space,
        brackets,
        divisor=c.divisor,
        smaller_is_better=c.smaller_is_better,
        max_trials=max_trials,
        max_concurrent_trials=c.max_concurrent_trials,
        seed=seed,
        name=c.name,
    )


def _required(value: int | None, key: str) -> int:
    # Validation guarantees these for the searchers that read them (SearcherConfig._check/_finish);
    # this narrows the type and names the field for a config built without validation.
    if value is None:
        raise ConfigError(FieldError(f"searcher.{key}", "is not set", f"set `{key}` in the searcher section"))
    return value
