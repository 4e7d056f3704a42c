"""Searches without a training length (Determined >= 0.38) and the ``custom`` searcher (#10)."""

from __future__ import annotations

from typing import Any

import pytest

from det_jupyter.config import load_config
from det_jupyter.errors import ConfigError
from det_jupyter.hparams import HParamSpace
from det_jupyter.searcher import Create, ExitReason, SearchMethod, Shutdown, make_searcher
from det_jupyter.searcher.base import Operation, TrialLedger
from det_jupyter.searcher.preview import preview_search


@pytest.mark.parametrize("name", ["single", "grid", "random"])
def test_progress_without_a_length_counts_finished_trials(name: str) -> None:
    searcher_cfg: dict[str, Any] = {"name": name, "metric": "loss", "max_concurrent_trials": 4}
    if name == "random":
        searcher_cfg["max_trials"] = 4
    cfg = load_config(
        {
            "searcher": searcher_cfg,
            "hyperparameters": {"x": {"type": "int", "minval": 1, "maxval": 4, "count": 4}},
        }
    )
    searcher = make_searcher(cfg.searcher, cfg.hparam_space, seed=0)
    created = [op.request_id for op in searcher.initial_operations() if isinstance(op, Create)]
    assert searcher.progress() == 0.0
    searcher.on_validation_completed(created[0], 0.5, time=1000)  # time says nothing without a length
    assert searcher.progress() == 0.0
    ops = searcher.on_trial_exited(created[0], ExitReason.COMPLETED)
    assert searcher.progress() == pytest.approx(1 / len(created)) or isinstance(ops[-1], Shutdown)


def test_preview_says_the_trial_code_decides_the_length() -> None:
    preview = preview_search({"searcher": {"name": "random", "metric": "loss", "max_trials": 3}})
    assert preview.max_time is None and preview.total_time is None
    assert [row.count for row in preview.summary] == [3]
    assert "as long as the trial code decides" in str(preview)
    assert "as long as the trial code decides" in preview._repr_html_()


class FirstN(SearchMethod):
    """A user's search method: ``n`` trials one after another, each with lr = 10 ** -i."""

    name = "first_n"

    def __init__(self, space: HParamSpace, *, seed: int, n: int = 2) -> None:
        self.n, self.ledger, self.done = n, TrialLedger(), False

    def _next(self) -> list[Operation]:
        if self.ledger.created < self.n:
            return [Create(self.ledger.new_trial(), {"lr": 10.0**-self.ledger.created})]
        self.done = True
        return [self.ledger.shutdown()]

    def initial_operations(self) -> list[Operation]:
        return self._next()

    def on_validation_completed(self, request_id: int, metric: float, time: float) -> list[Operation]:
        return []

    def on_trial_exited(self, request_id: int, reason: ExitReason) -> list[Operation]:
        self.ledger.exit(request_id, reason)
        return self._next()

    def progress(self) -> float:
        return 1.0 if self.done else self.ledger.exited / self.n

    def state_dict(self) -> dict[str, Any]:
        return {"searcher": self.name, "ledger": self.ledger.to_state(), "done": self.done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ledger, self.done = TrialLedger.from_state(state["ledger"]), state["done"]


def _custom(**searcher: Any) -> dict[str, Any]:
    return {"searcher": {"name": "custom", "metric": "loss", **searcher}}


def test_a_custom_search_method_runs_from_the_notebook_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    import __main__

    monkeypatch.setattr(__main__, "FirstN", FirstN, raising=False)
    cfg = load_config(_custom(search_method="FirstN", options={"n": 3}))
    preview = preview_search(cfg)
    assert [hp["lr"] for _, hp, _ in preview.trials] == [0.1, 0.01, 0.001]
    assert cfg.to_dict()["searcher"]["search_method"] == "FirstN"


def test_a_custom_search_method_by_module_path() -> None:
    cfg = load_config(_custom(**{"class": f"{__name__}:FirstN"}))  # `class:` is accepted as an alias
    searcher = make_searcher(cfg.searcher, cfg.hparam_space, seed=0)
    assert isinstance(searcher, FirstN) and searcher.n == 2


@pytest.mark.parametrize(
    ("searcher", "path", "part"),
    [
        ({}, "searcher.search_method", "is required"),  # validation
        ({"search_method": "not a class"}, "searcher.search_method", "module:Class"),
        ({"search_method": "json:dumps"}, "searcher.search_method", "not a SearchMethod"),
        ({"search_method": "no_such_module_xyz:C"}, "searcher.search_method", "cannot import"),
        (
            {"search_method": f"{__name__}:FirstN", "options": {"m": 1}},
            "searcher.options",
            "unexpected keyword",
        ),
    ],
)
def test_custom_search_method_mistakes_name_the_field(searcher: dict[str, Any], path: str, part: str) -> None:
    with pytest.raises(ConfigError) as info:
        cfg = load_config(_custom(**searcher))
        make_searcher(cfg.searcher, cfg.hparam_space, seed=0)
    [error] = info.value.errors
    assert error.path == path and part in error.message


@pytest.mark.parametrize("retired", ["sync_halving", "adaptive", "adaptive_simple", "pbt"])
def test_retired_searchers_point_at_adaptive_asha(retired: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"searcher": {"name": retired, "metric": "loss", "max_length": {"batches": 10}}})
    [error] = info.value.errors
    assert error.path == "searcher.name" and "retired" in error.message
    assert "adaptive_asha" in (error.fix or "") or "async_halving" in (error.fix or "")
