"""The random searcher (Determined's random.go)."""

from __future__ import annotations

import pytest

from det_jupyter.errors import ConfigError
from det_jupyter.hparams import parse_hyperparameters
from det_jupyter.searcher import Create, ExitReason, RandomSearch, Shutdown, make_searcher

from .helpers import Driver, SearcherCfg, creates, roundtrip

SPACE = parse_hyperparameters(
    {"lr": {"type": "log", "minval": -4, "maxval": -1}, "units": {"type": "int", "minval": 8, "maxval": 64}}
)


def _random(max_trials: int = 5, mct: int = 2, seed: int = 0) -> RandomSearch:
    s = make_searcher(SearcherCfg("random", max_trials=max_trials, max_concurrent_trials=mct), SPACE, seed)
    assert isinstance(s, RandomSearch)
    return s


def test_lazy_creation_under_the_concurrency_limit() -> None:
    s = _random(max_trials=5, mct=2)
    assert [c.request_id for c in creates(s.initial_operations())] == [1, 2]
    assert [c.request_id for c in creates(s.on_trial_exited(2, ExitReason.COMPLETED))] == [3]
    assert [c.request_id for c in creates(s.on_trial_exited(1, ExitReason.COMPLETED))] == [4]
    assert [c.request_id for c in creates(s.on_trial_exited(3, ExitReason.COMPLETED))] == [5]
    assert s.on_trial_exited(4, ExitReason.COMPLETED) == []
    assert s.on_trial_exited(5, ExitReason.COMPLETED) == [Shutdown()]


def test_zero_concurrency_means_all_at_once() -> None:
    ops = _random(max_trials=7, mct=0).initial_operations()
    assert len(creates(ops)) == 7


def test_hparams_are_sampled_and_seeded() -> None:
    def all_hparams(seed: int) -> list[dict]:
        d = Driver(_random(max_trials=6, mct=2, seed=seed))
        d.run_fifo(lambda rid, t: 0.0, lambda rid: [100])
        return [c.hparams for c in d.created]

    a = all_hparams(1)
    assert a == all_hparams(1)
    assert a != all_hparams(2)
    assert all(8 <= h["units"] <= 64 and 1e-4 <= h["lr"] <= 1e-1 for h in a)
    assert len({h["units"] for h in a} | {h["lr"] for h in a}) > 2


def test_errored_trials_count_against_max_trials() -> None:
    s = _random(max_trials=3, mct=1)
    s.initial_operations()
    assert creates(s.on_trial_exited(1, ExitReason.ERRORED))[0].request_id == 2
    assert creates(s.on_trial_exited(2, ExitReason.ERRORED))[0].request_id == 3
    assert s.on_trial_exited(3, ExitReason.COMPLETED) == [Shutdown(failure=False)]


def test_failure_when_every_trial_errored() -> None:
    s = _random(max_trials=2, mct=0)
    s.initial_operations()
    assert s.on_trial_exited(1, ExitReason.ERRORED) == []
    assert s.on_trial_exited(2, ExitReason.ERRORED) == [Shutdown(failure=True)]


def test_progress() -> None:
    s = _random(max_trials=4, mct=2)
    s.initial_operations()
    assert s.progress() == 0.0
    s.on_validation_completed(1, 0.5, 50)
    assert s.progress() == pytest.approx(0.5 / 4)
    s.on_trial_exited(1, ExitReason.COMPLETED)
    assert s.progress() == pytest.approx(1 / 4)


def test_restore_mid_search_gives_the_same_future() -> None:
    s = _random(max_trials=6, mct=2, seed=5)
    s.initial_operations()
    s.on_trial_exited(1, ExitReason.COMPLETED)
    t = _random(max_trials=6, mct=2, seed=123)
    t.load_state_dict(roundtrip(s.state_dict()))
    futures = []
    for rid in (2, 3, 4, 5, 6):
        ops = s.on_trial_exited(rid, ExitReason.COMPLETED)
        assert ops == t.on_trial_exited(rid, ExitReason.COMPLETED)
        futures += ops
    assert [op.request_id for op in creates(futures)] == [4, 5, 6]
    assert futures[-1] == Shutdown()


def test_max_trials_is_required() -> None:
    with pytest.raises(ConfigError) as info:
        make_searcher(SearcherCfg("random", max_trials=None), SPACE, 0)
    assert info.value.paths == ["searcher.max_trials"]


def test_create_is_a_frozen_record() -> None:
    op = Create(1, {"a": 1})
    with pytest.raises(AttributeError):
        op.request_id = 2  # type: ignore[misc]
