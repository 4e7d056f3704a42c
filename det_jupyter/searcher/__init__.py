"""Searchers: pure state machines that turn trial events into operations.

``make_searcher`` builds the searcher an experiment config names. Every searcher follows the contract
in :class:`~det_jupyter.searcher.base.SearchMethod`.

Example:
    >>> from dataclasses import dataclass
    >>> from det_jupyter.hparams import parse_hyperparameters
    >>> @dataclass
    ... class Cfg:
    ...     name: str = "random"; metric: str = "loss"; smaller_is_better: bool = True
    ...     max_trials: int | None = 3; max_concurrent_trials: int = 1; time_metric: str = "batches"
    ...     max_time: int = 100; mode: str = "standard"; divisor: float = 4.0; max_rungs: int = 5
    ...     bracket_rungs: list[int] | None = None; num_rungs: int | None = None; stop_once: bool = False
    >>> searcher = make_searcher(Cfg(), parse_hyperparameters({"lr": 0.1}), seed=0)
    >>> searcher.initial_operations()
    [Create(request_id=1, hparams={'lr': 0.1})]
"""

from __future__ import annotations

from typing import Any

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
from det_jupyter.searcher.grid import GridSearch
from det_jupyter.searcher.random import RandomSearch
from det_jupyter.searcher.single import SingleSearch

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
    "make_searcher",
    "rung_lengths",
]

SEARCHER_NAMES = ("single", "grid", "random", "adaptive_asha", "async_halving")


def make_searcher(searcher_config: Any, space: HParamSpace, seed: int) -> SearchMethod:
    """Build the searcher that ``searcher_config`` names.

    Args:
        searcher_config: the experiment's ``SearcherConfig``; read attributes are ``name``,
            ``smaller_is_better``, ``max_trials``, ``max_concurrent_trials``, ``max_time``, ``mode``,
            ``divisor``, ``max_rungs``, ``bracket_rungs`` and ``num_rungs`` (``metric``,
            ``time_metric`` and ``stop_once`` do not change the search).
        space: the parsed hyperparameter space.
        seed: the experiment seed; the searcher's random generator starts from it.

    Returns:
        A fresh searcher; call ``initial_operations()`` first.

    Raises:
        ConfigError: the searcher cannot run with these settings (e.g. grid without ``count``,
            random without ``max_trials``), each problem with its ``searcher.*`` path and fix.
    """
    c = searcher_config
    name = c.name
    errors: list[FieldError] = []
    if name not in SEARCHER_NAMES:
        raise ConfigError(
            FieldError(
                "searcher.name", f"unknown searcher {name!r}", f"use one of {', '.join(SEARCHER_NAMES)}"
            )
        )
    if c.max_time < 1:
        errors.append(
            FieldError("searcher.max_time", f"must be >= 1 (got {c.max_time})", "set it to 1 or more")
        )
    if c.max_concurrent_trials < 0:
        errors.append(
            FieldError(
                "searcher.max_concurrent_trials",
                f"must be >= 0 (got {c.max_concurrent_trials})",
                "use 0 for no limit",
            )
        )
    needs_trials = name in ("random", "adaptive_asha", "async_halving")
    if needs_trials and (c.max_trials is None or c.max_trials < 1):
        errors.append(
            FieldError(
                "searcher.max_trials",
                f"the {name} searcher needs max_trials >= 1 (got {c.max_trials})",
                "set `max_trials: N`",
            )
        )
    if name in ("adaptive_asha", "async_halving") and not c.divisor > 1:
        errors.append(
            FieldError("searcher.divisor", f"must be > 1 (got {c.divisor})", "use e.g. `divisor: 4`")
        )
    if name == "adaptive_asha":
        if c.mode not in ("aggressive", "standard", "conservative"):
            errors.append(
                FieldError(
                    "searcher.mode", f"unknown mode {c.mode!r}", "use aggressive, standard or conservative"
                )
            )
        if c.max_rungs < 1:
            errors.append(
                FieldError("searcher.max_rungs", f"must be >= 1 (got {c.max_rungs})", "set it to 1 or more")
            )
        if c.bracket_rungs and any(r < 1 for r in c.bracket_rungs):
            errors.append(
                FieldError(
                    "searcher.bracket_rungs", f"every entry must be >= 1 (got {c.bracket_rungs})", None
                )
            )
    if name == "async_halving" and (c.num_rungs is None or c.num_rungs < 1):
        errors.append(
            FieldError(
                "searcher.num_rungs",
                f"async_halving needs num_rungs >= 1 (got {c.num_rungs})",
                "set `num_rungs: N`",
            )
        )
    if errors:
        raise ConfigError(errors)

    if name == "single":
        return SingleSearch(space, max_time=c.max_time, seed=seed)
    if name == "grid":
        return GridSearch(space, max_concurrent_trials=c.max_concurrent_trials, max_time=c.max_time)
    if name == "random":
        return RandomSearch(
            space,
            max_trials=c.max_trials,
            max_concurrent_trials=c.max_concurrent_trials,
            max_time=c.max_time,
            seed=seed,
        )
    if name == "adaptive_asha":
        brackets = adaptive_asha_brackets(
            max_trials=c.max_trials,
            max_time=c.max_time,
            divisor=c.divisor,
            mode=c.mode,
            max_rungs=c.max_rungs,
            max_concurrent_trials=c.max_concurrent_trials,
            bracket_rungs=c.bracket_rungs,
        )
    else:
        brackets = [
            async_halving_bracket(
                num_rungs=c.num_rungs,
                max_trials=c.max_trials,
                max_time=c.max_time,
                divisor=c.divisor,
                max_concurrent_trials=c.max_concurrent_trials,
            )
        ]
    return ASHASearch(
        space,
        brackets,
        divisor=c.divisor,
        smaller_is_better=c.smaller_is_better,
        max_trials=c.max_trials,
        max_concurrent_trials=c.max_concurrent_trials,
        seed=seed,
        name=name,
    )
