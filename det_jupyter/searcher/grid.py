"""Grid search: one trial per grid point, each trained to ``max_time``.

As Determined's ``master/pkg/searcher/grid.go``: the grid is :meth:`HParamSpace.grid` (int, double and
log hparams need ``count``), trials are created lazily under ``max_concurrent_trials`` (0 = all at
once), an errored trial is not retried. Determined pops points from the end of its list; we create them
in grid order (first to last), which changes only the order of the trials. ``max_trials`` does not
apply (Determined's grid config has none): the grid size is the trial budget. A space with no
hyperparameters has one point, ``{}``.
"""

from __future__ import annotations

import copy
from typing import Any

from det_jupyter.hparams import HParamSpace
from det_jupyter.searcher.base import FixedLengthSearch

__all__ = ["GridSearch"]


class GridSearch(FixedLengthSearch):
    """Every grid point, once.

    Args:
        space: the hyperparameter space; every int/double/log hparam needs ``count``.
        max_concurrent_trials: most trials live at once; 0 means no limit.
        max_time: training length of every trial (``None``: the trial code decides).

    Raises:
        ConfigError: an int, double or log hparam has no ``count``.

    Example:
        >>> from det_jupyter.hparams import parse_hyperparameters
        >>> space = parse_hyperparameters({"units": {"type": "int", "minval": 32, "maxval": 128, "count": 3}})
        >>> [op.hparams for op in GridSearch(space, max_concurrent_trials=0, max_time=10).initial_operations()]
        [{'units': 32}, {'units': 80}, {'units': 128}]
    """

    name = "grid"

    def __init__(self, space: HParamSpace, *, max_concurrent_trials: int, max_time: int | None) -> None:
        self.space = space
        self.points = space.grid()
        super().__init__(len(self.points), max_concurrent_trials, max_time)

    def _next_hparams(self) -> dict[str, Any]:
        # Trial n (1-based) gets grid point n - 1; the ledger numbers trials after this call.
        return copy.deepcopy(self.points[self._ledger.created])
