"""The single searcher: one trial, trained to max_time."""

from __future__ import annotations

import random

import pytest

from det_jupyter.hparams import parse_hyperparameters
from det_jupyter.searcher import Create, ExitReason, SearcherStateError, Shutdown, SingleSearch, make_searcher

from .helpers import Driver, SearcherCfg, roundtrip

SPACE = parse_hyperparameters({"lr": 0.01, "units": {"type": "int", "minval": 1, "maxval": 100}})


def test_one_trial_with_sampled_hparams_then_shutdown() -> None:
    s = make_searcher(SearcherCfg("single", max_trials=None, max_concurrent_trials=16), SPACE, seed=3)
    assert isinstance(s, SingleSearch) and s.name == "single"
    ops = s.initial_operations()
    assert ops == [Create(1, SPACE.sample(random.Random(3)))]
    assert s.on_validation_completed(1, 0.3, 50) == []
    assert s.progress() == pytest.approx(0.5)
    assert s.on_trial_exited(1, ExitReason.COMPLETED) == [Shutdown(failure=False)]
    assert s.progress() == 1.0


@pytest.mark.parametrize(
    ("reason", "failure"),
    [(ExitReason.ERRORED, True), (ExitReason.CANCELED, False), (ExitReason.STOPPED, False)],
)
def test_exit_reasons(reason: ExitReason, failure: bool) -> None:
    s = SingleSearch(SPACE, max_time=10, seed=0)
    s.initial_operations()
    assert s.on_trial_exited(1, reason) == [Shutdown(failure=failure)]


def test_max_trials_in_the_config_does_not_apply() -> None:
    d = Driver(make_searcher(SearcherCfg("single", max_trials=5), SPACE, seed=0))
    d.run_fifo(lambda rid, t: 0.0, lambda rid: [10])
    assert len(d.created) == 1


def test_contract_errors_and_ignored_events() -> None:
    s = SingleSearch(SPACE, max_time=10, seed=0)
    s.initial_operations()
    with pytest.raises(SearcherStateError, match="initial_operations"):
        s.initial_operations()
    with pytest.raises(SearcherStateError, match="request_id 2 was never created"):
        s.on_validation_completed(2, 0.1, 1)
    with pytest.raises(SearcherStateError):
        s.on_trial_exited(0, ExitReason.COMPLETED)
    assert s.on_trial_exited(1, ExitReason.COMPLETED) == [Shutdown()]
    assert s.on_trial_exited(1, ExitReason.COMPLETED) == []  # a repeated exit is ignored
    assert s.on_validation_completed(1, 0.1, 10) == []


def test_state_round_trip() -> None:
    s = SingleSearch(SPACE, max_time=10, seed=0)
    s.initial_operations()
    s.on_validation_completed(1, 0.1, 4)
    t = SingleSearch(SPACE, max_time=10, seed=99)
    t.load_state_dict(roundtrip(s.state_dict()))
    assert t.progress() == s.progress() == pytest.approx(0.4)
    assert t.on_trial_exited(1, ExitReason.COMPLETED) == [Shutdown()]
    with pytest.raises(SearcherStateError, match="cannot load a 'single'"):
        make_searcher(SearcherCfg("random", max_trials=1), SPACE, 0).load_state_dict(s.state_dict())
