"""Random search: ``max_trials`` trials with sampled hyperparameters, each trained to ``max_time``.

Follows Determined's ``master/pkg/searcher/random.go``: ``min(max_trials, max_concurrent_trials)``
trials at first (all of them when ``max_concurrent_trials`` is 0), then one more each time a trial
exits, until ``max_trials`` have been created. An errored trial counts against ``max_trials``.
"""

from __future__ import annotations

import random
from typing import Any

from det_jupyter.hparams import HParamSpace
from det_jupyter.searcher.base import FixedLengthSearch, rng_from_state, rng_state

__all__ = ["RandomSearch"]


class RandomSearch(FixedLengthSearch):
    """Sample the space ``max_trials`` times; no early stopping.

    Args:
        space: the hyperparameter space.
        max_trials: trials to create in total (>= 1).
        max_concurrent_trials: most trials live at once; 0 means no limit beyond ``max_trials``.
        max_time: training length of every trial, in the searcher's time unit (None: the trial code
            decides).
        seed: seeds the searcher's own ``random.Random``.

    Example:
        >>> from det_jupyter.hparams import parse_hyperparameters
        >>> space = parse_hyperparameters({"units": {"type": "int", "minval": 8, "maxval": 64}})
        >>> ops = RandomSearch(space, max_trials=10, max_concurrent_trials=2, max_time=100, seed=1).initial_operations()
        >>> [op.request_id for op in ops]
        [1, 2]
    """

    name = "random"

    def __init__(
        self,
        space: HParamSpace,
        *,
        max_trials: int,
        max_concurrent_trials: int,
        max_time: int | None,
        seed: int,
    ) -> None:
        if max_trials < 1:
            raise ValueError(f"max_trials must be >= 1 (got {max_trials})")
        super().__init__(max_trials, max_concurrent_trials, max_time)
        self.space = space
        self._rng = random.Random(seed)

    def _next_hparams(self) -> dict[str, Any]:
        return self.space.sample(self._rng)

    def _extra_state(self) -> dict[str, Any]:
        return {"rng": rng_state(self._rng)}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self._rng = rng_from_state(state["rng"])
