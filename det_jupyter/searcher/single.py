"""Single search: one trial, hyperparameters sampled from the space, trained to ``max_time``.

As Determined's ``newSingleSearch`` (``master/pkg/searcher/random.go``): a random search with
``max_trials = 1`` and ``max_concurrent_trials = 1``. Spaces for ``single`` usually hold constants only;
any ranges in them are sampled once.
"""

from __future__ import annotations

from det_jupyter.hparams import HParamSpace
from det_jupyter.searcher.random import RandomSearch

__all__ = ["SingleSearch"]


class SingleSearch(RandomSearch):
    """One trial.

    Example:
        >>> from det_jupyter.hparams import parse_hyperparameters
        >>> SingleSearch(parse_hyperparameters({"lr": 0.01}), max_time=100, seed=0).initial_operations()
        [Create(request_id=1, hparams={'lr': 0.01})]
    """

    name = "single"

    def __init__(self, space: HParamSpace, *, max_time: int | None, seed: int) -> None:
        super().__init__(space, max_trials=1, max_concurrent_trials=1, max_time=max_time, seed=seed)
