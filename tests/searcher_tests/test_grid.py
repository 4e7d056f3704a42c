"""The grid searcher (Determined's grid.go): every grid point once, each to max_time."""

from __future__ import annotations

import pytest

from det_jupyter.errors import ConfigError
from det_jupyter.hparams import parse_hyperparameters
from det_jupyter.searcher import ExitReason, GridSearch, Shutdown, make_searcher

from .helpers import Driver, SearcherCfg, creates, roundtrip

SPACE = parse_hyperparameters(
    {
        "units": {"type": "int", "minval": 32, "maxval": 128, "count": 3},
        "lr": {"type": "log", "minval": -3, "maxval": -1, "count": 2},
        "act": {"type": "categorical", "vals": ["relu", "tanh"]},
        "bs": 16,
    }
)


def _grid(mct: int = 0, space=SPACE) -> GridSearch:  # type: ignore[no-untyped-def]
    s = make_searcher(SearcherCfg("grid", max_concurrent_trials=mct, max_trials=None), space, seed=0)
    assert isinstance(s, GridSearch)
    return s


def test_every_point_once_in_grid_order() -> None:
    d = Driver(_grid(mct=3))
    d.run_fifo(lambda rid, t: 0.0, lambda rid: [100])
    assert [c.hparams for c in d.created] == SPACE.grid()
    assert len(d.created) == SPACE.grid_size() == 12
    assert d.max_live == 3
    assert d.shutdown == Shutdown()


def test_zero_concurrency_creates_the_whole_grid() -> None:
    assert len(creates(_grid(mct=0).initial_operations())) == 12


def test_determined_grid_search_method() -> None:  # TestGridSearchMethod
    space = parse_hyperparameters({"a": {"type": "int", "minval": 0, "maxval": 3, "count": 4}})
    d = Driver(_grid(mct=2, space=space))
    d.run_fifo(lambda rid, t: 0.0, lambda rid: [10])
    assert sorted(c.hparams["a"] for c in d.created) == [0, 1, 2, 3]
    assert not d.stopped


def test_errored_points_are_not_retried() -> None:
    s = _grid(mct=12)
    s.initial_operations()
    for rid in range(1, 12):
        assert s.on_trial_exited(rid, ExitReason.ERRORED) == []
    assert s.on_trial_exited(12, ExitReason.COMPLETED) == [Shutdown(failure=False)]


def test_max_trials_does_not_apply() -> None:
    s = make_searcher(SearcherCfg("grid", max_trials=2), SPACE, seed=0)
    assert len(creates(s.initial_operations())) == 12


def test_empty_space_is_one_trial() -> None:
    s = _grid(space=parse_hyperparameters({}))
    assert [c.hparams for c in creates(s.initial_operations())] == [{}]
    assert s.on_trial_exited(1, ExitReason.COMPLETED) == [Shutdown()]


def test_missing_count_is_a_config_error() -> None:
    space = parse_hyperparameters({"x": {"type": "int", "minval": 0, "maxval": 5}, "y": 1})
    with pytest.raises(ConfigError) as info:
        make_searcher(SearcherCfg("grid"), space, seed=0)
    assert info.value.paths == ["hyperparameters.x.count"]


def test_grid_hparams_are_copies() -> None:
    space = parse_hyperparameters({"layers": {"type": "categorical", "vals": [[1], [2]]}})
    s = _grid(space=space)
    ops = creates(s.initial_operations())
    ops[0].hparams["layers"].append(99)
    assert s.points[0] == {"layers": [1]}


def test_restore_mid_search() -> None:
    s = _grid(mct=2)
    s.initial_operations()
    s.on_trial_exited(1, ExitReason.COMPLETED)
    t = _grid(mct=2)
    t.load_state_dict(roundtrip(s.state_dict()))
    for rid in range(2, 13):
        assert s.on_trial_exited(rid, ExitReason.COMPLETED) == t.on_trial_exited(rid, ExitReason.COMPLETED)
    assert s.progress() == t.progress() == 1.0
