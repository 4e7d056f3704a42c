"""ASHA (stopping-based, Determined >= 0.38): bracket arithmetic, stopping rule, lifecycle.

Expected numbers are Determined's (``adaptive_asha_test.go``, ``asha_stopping_test.go``) or worked by
hand from its formulas, as written next to each case.
"""

from __future__ import annotations

import itertools
import math

import pytest

import det_jupyter.searcher
import det_jupyter.searcher.asha
import det_jupyter.searcher.base
import det_jupyter.searcher.grid
import det_jupyter.searcher.random
import det_jupyter.searcher.single
from det_jupyter.config import load_config
from det_jupyter.errors import ConfigError
from det_jupyter.hparams import parse_hyperparameters
from det_jupyter.searcher import (
    ASHASearch,
    Bracket,
    ExitReason,
    Shutdown,
    Stop,
    adaptive_asha_brackets,
    async_halving_bracket,
    make_searcher,
    rung_lengths,
)
from det_jupyter.searcher.asha import EXITED_METRIC, bracket_max_concurrent_trials, bracket_max_trials

from .helpers import Driver, SearcherCfg, creates, roundtrip, stops

SPACE = parse_hyperparameters({"lr": {"type": "log", "minval": -4, "maxval": -1}, "bs": 32})


# --- Arithmetic -------------------------------------------------------------------------------------


def test_bracket_max_trials_determined_cases() -> None:  # TestBracketMaxTrials
    assert bracket_max_trials(20, 3.0, [3, 2, 1]) == [12, 5, 3]
    assert bracket_max_trials(50, 3.0, [4, 3]) == [35, 15]
    assert bracket_max_trials(50, 4.0, [3, 2]) == [37, 13]
    assert bracket_max_trials(100, 4.0, [4, 3, 2]) == [70, 22, 8]


def test_bracket_max_concurrent_trials_determined_cases() -> None:  # TestBracketMaxConcurrentTrials
    assert bracket_max_concurrent_trials(0, 3.0, [9, 3, 1]) == [3, 3, 3]
    assert bracket_max_concurrent_trials(11, 3.0, [9, 3, 1]) == [4, 4, 3]
    assert bracket_max_concurrent_trials(0, 4.0, [40, 10]) == [10, 10]
    assert bracket_max_concurrent_trials(2, 4.0, [5, 3, 1]) == [1, 1, 1]  # at least one per bracket


def test_rung_lengths_determined_cases() -> None:  # TestMakeRungs
    assert rung_lengths(3, 3.0, 9) == (1, 3, 9)
    assert rung_lengths(4, 2.0, 10) == (1, 2, 5, 10)
    assert rung_lengths(1, 3.0, 9) == (9,)
    assert rung_lengths(3, 3.0, 900) == (100, 300, 900)
    assert rung_lengths(4, 4.0, 10) == (1, 1, 2, 10)  # never below 1


def test_make_brackets_determined_cases() -> None:  # TestMakeBrackets
    # standard, max_time 100, max_trials 10, divisor 4, mct 2: max_rungs = min(5, 3+1, 1+1) = 2 -> [2, 1]
    assert adaptive_asha_brackets(max_trials=10, max_time=100, mode="standard", max_concurrent_trials=2) == [
        Bracket(2, 7, 1, (25, 100)),
        Bracket(1, 3, 1, (100,)),
    ]
    # conservative, max_time 1000, divisor 3, mct 5, max_trials 10: max_rungs = min(5, 6+1, 2+1) = 3
    assert adaptive_asha_brackets(
        max_trials=10, max_time=1000, divisor=3.0, mode="conservative", max_concurrent_trials=5
    ) == [Bracket(3, 7, 2, (111, 333, 1000)), Bracket(2, 2, 2, (333, 1000)), Bracket(1, 1, 1, (1000,))]


def test_worked_example_standard() -> None:
    # max_trials=16, max_time=640, divisor=4, max_rungs=5, standard, max_concurrent_trials=0:
    #   max_rungs = min(5, int(log 640/log 4)+1 = int(4.66)+1 = 5, int(log 16/log 4)+1 = 3) = 3
    #   standard: rungs (3-1)//2+1 .. 3 = [2, 3], sorted most first -> [3, 2]
    #   weights 4**2/3 = 5.33 and 4/2 = 2 -> int(16*5.33/7.33) = 11, int(16*2/7.33) = 4, +1 remainder -> [12, 4]
    #   concurrency (limit 0): max(last bracket's trials 4, int(4)) = 4 each, capped by max_trials -> [4, 4]
    #   rung lengths: 640/4**2 = 40, 640/4 = 160, 640
    s = make_searcher(SearcherCfg("adaptive_asha", max_trials=16, max_time=640, max_rungs=5), SPACE, 0)
    assert isinstance(s, ASHASearch)
    assert s.brackets == (Bracket(3, 12, 4, (40, 160, 640)), Bracket(2, 4, 4, (160, 640)))


def test_worked_example_conservative() -> None:
    # Same settings, conservative: rungs [3, 2, 1]; weights 5.33, 2, 1 (total 8.33)
    #   -> int(10.24) = 10, int(3.84) = 3, int(1.92) = 1, remainder 2 to the first -> [12, 3, 1]
    #   concurrency max(1, 4) = 4 each, capped by each bracket's max_trials -> [4, 3, 1]
    cfg = SearcherCfg("adaptive_asha", max_trials=16, max_time=640, mode="conservative")
    assert make_searcher(cfg, SPACE, 0).brackets == (  # type: ignore[attr-defined]
        Bracket(3, 12, 4, (40, 160, 640)),
        Bracket(2, 3, 3, (160, 640)),
        Bracket(1, 1, 1, (640,)),
    )
    # With max_concurrent_trials=4: 4 // 3 = 1 each, remainder 1 to the first -> [2, 1, 1]
    cfg = SearcherCfg(
        "adaptive_asha", max_trials=16, max_time=640, mode="conservative", max_concurrent_trials=4
    )
    assert [b.max_concurrent_trials for b in make_searcher(cfg, SPACE, 0).brackets] == [2, 1, 1]  # type: ignore[attr-defined]


def test_worked_example_aggressive() -> None:
    # aggressive: one bracket of max_rungs = 3 rungs with all 16 trials; concurrency max(16, 4) = 16
    cfg = SearcherCfg("adaptive_asha", max_trials=16, max_time=640, mode="aggressive")
    assert make_searcher(cfg, SPACE, 0).brackets == (Bracket(3, 16, 16, (40, 160, 640)),)  # type: ignore[attr-defined]
    # max_rungs caps the number of rungs: max_rungs=2 -> rungs 640/4 = 160 and 640
    cfg = SearcherCfg("adaptive_asha", max_trials=64, max_time=640, mode="aggressive", max_rungs=2, divisor=4)
    assert make_searcher(cfg, SPACE, 0).brackets == (Bracket(2, 64, 64, (160, 640)),)  # type: ignore[attr-defined]


def test_worked_example_async_halving() -> None:
    # num_rungs=3, divisor=4, max_time=64: 64/16 = 4, 64/4 = 16, 64.
    # Concurrency with limit 0: clamp(1, int(4 ** 2) = 16, max_trials).
    cfg = SearcherCfg("async_halving", num_rungs=3, divisor=4, max_time=64, max_trials=10)
    s = make_searcher(cfg, SPACE, 0)
    assert s.name == "async_halving"
    assert s.brackets == (Bracket(3, 10, 10, (4, 16, 64)),)  # type: ignore[attr-defined]
    assert (
        async_halving_bracket(num_rungs=3, max_trials=100, max_time=64, divisor=4).max_concurrent_trials == 16
    )
    assert (
        async_halving_bracket(
            num_rungs=3, max_trials=100, max_time=64, max_concurrent_trials=3
        ).max_concurrent_trials
        == 3
    )


def test_bracket_rungs_override_and_log_quirk() -> None:
    b = adaptive_asha_brackets(max_trials=20, max_time=900, divisor=3, bracket_rungs=[1, 3, 2])
    assert [x.num_rungs for x in b] == [3, 2, 1] and [x.max_trials for x in b] == [12, 5, 3]
    # Determined's float arithmetic: log(1000)/log(10) = 2.9999999999999996 -> 3 rungs, not 4.
    assert math.log(1000) / math.log(10) < 3
    assert (
        adaptive_asha_brackets(max_trials=10**4, max_time=1000, divisor=10, mode="aggressive")[0].num_rungs
        == 3
    )


# --- Stopping rule ------------------------------------------------------------------------------------


def _halving(num_rungs: int = 3, max_time: int = 9, divisor: float = 3.0, max_trials: int = 10,
             mct: int = 0, smaller_is_better: bool = True) -> ASHASearch:  # fmt: skip
    cfg = SearcherCfg("async_halving", num_rungs=num_rungs, max_time=max_time, divisor=divisor,
                      max_trials=max_trials, max_concurrent_trials=mct, smaller_is_better=smaller_is_better)  # fmt: skip
    s = make_searcher(cfg, SPACE, seed=0)
    assert isinstance(s, ASHASearch)
    return s


def test_stop_trials_determined_cases() -> None:  # TestStopTrials: rungs (1, 3, 9), divisor 3
    s = _halving(mct=3)
    s.initial_operations()
    assert s.on_validation_completed(1, 0.5, 1) == []  # first validation continues
    assert s.on_validation_completed(2, 0.4, 1) == []  # better than the first: continues
    assert s.on_validation_completed(3, 0.6, 1) == [Stop(3)]  # n=3, keep max(int(3/3), 1) = 1, rank 2
    assert s.rung_metrics(0)[0] == [(2, 0.4), (1, 0.5), (3, 0.6)]


def test_determined_asha_stopping_search_method() -> None:  # TestASHAStoppingSearchMethod
    # max_trials 10, divisor 3, max_time 900, 3 rungs, mct 3; trials run one after another reporting
    # every 100 batches a metric worse than every earlier one: only the first reaches the top rung.
    s = _halving(num_rungs=3, max_time=900, divisor=3, max_trials=10, mct=3)
    assert s.brackets[0].rung_lengths == (100, 300, 900)
    counter = itertools.count(1)
    d = Driver(s)
    d.run_fifo(lambda rid, t: float(next(counter)), lambda rid: range(0, 901, 100))
    assert len(d.created) == 10
    assert d.max_live == 3
    assert len(d.stopped) == 9 and 1 not in d.stopped
    assert d.shutdown == Shutdown()


def test_keep_top_fraction_as_trials_arrive() -> None:
    # divisor 2, rung 0 at 4: the k-th trial continues iff fewer than max(int(k/2), 1) earlier ones beat it.
    s = _halving(num_rungs=2, max_time=8, divisor=2, max_trials=8, mct=8)
    s.initial_operations()
    results = [
        s.on_validation_completed(rid, m, 4) for rid, m in enumerate([5, 4, 6, 3, 7, 6.5, 1, 8], start=1)
    ]
    assert [bool(r) for r in results] == [False, False, True, False, True, True, False, True]
    # ties favour the newcomer: better = number strictly better
    t = _halving(num_rungs=2, max_time=8, divisor=2, max_trials=4, mct=4)
    t.initial_operations()
    assert t.on_validation_completed(1, 1.0, 4) == []
    assert t.on_validation_completed(2, 1.0, 4) == []  # n=2, keep 1, 0 strictly better


def test_larger_is_better() -> None:
    s = _halving(num_rungs=2, max_time=8, divisor=2, max_trials=4, mct=4, smaller_is_better=False)
    s.initial_operations()
    assert s.on_validation_completed(1, 0.9, 4) == []
    assert s.on_validation_completed(2, 0.1, 4) == [Stop(2)]
    assert s.rung_metrics(0) == [[(1, 0.9), (2, 0.1)], []]


def test_one_report_can_clear_several_rungs_and_top_rung_completes() -> None:
    s = _halving(num_rungs=3, max_time=9, divisor=3, max_trials=3, mct=1)
    s.initial_operations()
    assert s.on_validation_completed(1, 0.5, 9) == []  # rungs 1, 3 and 9 at once; no Stop at max_time
    assert [len(r) for r in s.rung_metrics(0)] == [1, 1, 1]
    assert s.on_validation_completed(1, 0.1, 9) == []  # judged once per rung
    assert [len(r) for r in s.rung_metrics(0)] == [1, 1, 1]
    assert [c.request_id for c in creates(s.on_trial_exited(1, ExitReason.COMPLETED))] == [2]


def test_reports_below_a_rung_and_after_stop_are_ignored() -> None:
    s = _halving(num_rungs=2, max_time=8, divisor=2, max_trials=2, mct=2)
    s.initial_operations()
    assert s.on_validation_completed(1, 0.1, 3) == []
    assert s.rung_metrics(0) == [[], []]
    s.on_validation_completed(1, 0.1, 4)
    assert s.on_validation_completed(2, 0.9, 4) == [Stop(2)]
    assert s.on_validation_completed(2, 0.0, 8) == []  # already told to stop: no second Stop
    assert s.rung_metrics(0)[1] == []


def test_errored_trial_counts_as_worst_at_its_rung() -> None:
    # divisor 2; A reports 0.5 and continues; B and C error before rung 0, so rung 0 holds A, B, C.
    # D reports 0.6: n = 4, keep max(int(4/2), 1) = 2, one better -> continues (would stop without B, C).
    s = _halving(num_rungs=2, max_time=8, divisor=2, max_trials=4, mct=4)
    s.initial_operations()
    assert s.on_validation_completed(1, 0.5, 4) == []
    s.on_trial_exited(2, ExitReason.ERRORED)
    s.on_trial_exited(3, ExitReason.CANCELED)
    assert [m for _, m in s.rung_metrics(0)[0]] == [0.5, EXITED_METRIC, EXITED_METRIC]
    assert s.on_validation_completed(4, 0.6, 4) == []


def test_nan_metric_ranks_worst() -> None:
    s = _halving(num_rungs=2, max_time=8, divisor=2, max_trials=2, mct=2)
    s.initial_operations()
    assert s.on_validation_completed(1, float("nan"), 4) == []  # alone: continues
    assert s.on_validation_completed(2, 1e300, 4) == []  # better than NaN
    assert s.on_validation_completed(2, float("inf"), 8) == []
    roundtrip(s.state_dict())  # still strict JSON


# --- Lifecycle ----------------------------------------------------------------------------------------


def test_new_trials_come_when_trials_exit_not_on_stop() -> None:
    s = _halving(num_rungs=2, max_time=8, divisor=2, max_trials=3, mct=2)
    assert len(creates(s.initial_operations())) == 2
    s.on_validation_completed(1, 0.1, 4)
    assert s.on_validation_completed(2, 0.9, 4) == [Stop(2)]  # no Create yet: 2 is still live
    assert [c.request_id for c in creates(s.on_trial_exited(2, ExitReason.STOPPED))] == [3]
    assert s.on_trial_exited(3, ExitReason.ERRORED) == []
    assert s.on_trial_exited(1, ExitReason.COMPLETED) == [Shutdown(failure=False)]
    assert s.progress() == 1.0


def test_global_limits_hold_across_brackets() -> None:
    # bracket_rungs [3, 2, 1] with max_trials 2: Determined gives each bracket at least one trial (3 in
    # all); we cap the total at max_trials. With max_concurrent_trials 1, one trial lives at a time.
    cfg = SearcherCfg(
        "adaptive_asha", max_trials=2, max_time=16, bracket_rungs=[1, 2, 3], max_concurrent_trials=1
    )
    s = make_searcher(cfg, SPACE, 0)
    assert [b.max_trials for b in s.brackets] == [1, 1, 1]  # type: ignore[attr-defined]
    d = Driver(s)
    d.run_fifo(lambda rid, t: 0.0, lambda rid: [1, 4, 16])
    assert len(d.created) == 2 and d.max_live == 1


def test_brackets_fill_in_order_and_exits_refill_their_bracket() -> None:
    cfg = SearcherCfg("adaptive_asha", max_trials=16, max_time=640, max_concurrent_trials=4)
    s = make_searcher(cfg, SPACE, 0)
    assert isinstance(s, ASHASearch)
    assert [b.max_concurrent_trials for b in s.brackets] == [2, 2]
    ops = s.initial_operations()
    assert [s.trial_bracket(c.request_id) for c in creates(ops)] == [0, 0, 1, 1]
    new = creates(s.on_trial_exited(3, ExitReason.STOPPED))
    assert [s.trial_bracket(c.request_id) for c in new] == [1]


def test_bracket_shares_are_work_conserving_under_a_global_limit() -> None:
    # standard mode, 3 brackets, max_concurrent_trials 2: shares max(2, 3) split -> [1, 1, 1]. Each
    # bracket gets its share first; once the brackets in front have created all their trials, the
    # remaining one runs on both slots (Determined would leave the second slot idle).
    cfg = SearcherCfg("adaptive_asha", max_trials=12, max_time=64, max_concurrent_trials=2, mode="conservative",
                      bracket_rungs=[3, 2, 1])  # fmt: skip
    s = make_searcher(cfg, SPACE, 0)
    assert isinstance(s, ASHASearch)
    assert [(b.max_trials, b.max_concurrent_trials) for b in s.brackets] == [(9, 1), (2, 1), (1, 1)]
    ops = s.initial_operations()
    assert [s.trial_bracket(c.request_id) for c in creates(ops)] == [0, 1]  # shares first, in order
    # bracket 1 creates its second (and last) trial on its own slot
    assert [s.trial_bracket(c.request_id) for c in creates(s.on_trial_exited(2, ExitReason.STOPPED))] == [1]
    # bracket 1 has no trials left: its slot goes to bracket 2 (within its share), not to bracket 0
    assert [s.trial_bracket(c.request_id) for c in creates(s.on_trial_exited(3, ExitReason.STOPPED))] == [2]
    # brackets 1 and 2 are done creating: bracket 0 gets the freed slot beyond its share of 1
    assert [s.trial_bracket(c.request_id) for c in creates(s.on_trial_exited(4, ExitReason.STOPPED))] == [0]
    assert [r for r in range(1, 6) if s.trial_bracket(r) == 0] == [1, 5]  # both live; the limit of 2 holds
    assert creates(s.on_validation_completed(5, 0.5, 1)) == []
    # with no global limit (0) each bracket keeps Determined's own share
    free = make_searcher(
        SearcherCfg("adaptive_asha", max_trials=12, max_time=64, bracket_rungs=[3, 2, 1]), SPACE, 0
    )
    assert isinstance(free, ASHASearch)
    first = creates(free.initial_operations())
    assert len(first) == sum(min(b.max_concurrent_trials, b.max_trials) for b in free.brackets)


def test_stopping_rule_matches_ray_asha_once_a_rung_has_seen_enough() -> None:
    # Li et al.'s ASHA and Ray Tune's ASHAScheduler keep a trial at a rung iff it is in the top 1/eta of
    # the metrics that rung has seen (Ray: not below the (1 - 1/eta) percentile of the earlier ones).
    # With 8 earlier metrics 1..8 (smaller is better) at rung 1 and eta 4: 9 metrics, keep int(9/4) = 2.
    cfg = SearcherCfg("async_halving", max_trials=20, max_time=16, num_rungs=3, divisor=4,
                      max_concurrent_trials=20)  # fmt: skip
    s = make_searcher(cfg, SPACE, 0)
    s.initial_operations()
    for rid in range(1, 9):
        s.on_validation_completed(rid, float(rid), 1)
    assert stops(s.on_validation_completed(9, 1.5, 1)) == []  # second best of 9: kept
    assert stops(s.on_validation_completed(10, 2.5, 1)) == [10]  # third best of 10 (keep 2): stopped
    assert stops(s.on_validation_completed(11, 0.5, 1)) == []  # the best: kept


def test_progress_and_restore() -> None:
    cfg = SearcherCfg("adaptive_asha", max_trials=8, max_time=64, divisor=2, mode="conservative")
    a, b = make_searcher(cfg, SPACE, 1), make_searcher(cfg, SPACE, 2)
    a.initial_operations()
    a.on_validation_completed(1, 0.3, 64)
    a.on_validation_completed(2, 0.4, 64)
    assert 0.0 < a.progress() < 1.0
    b.load_state_dict(roundtrip(a.state_dict()))
    assert b.progress() == a.progress()
    assert a.on_trial_exited(1, ExitReason.COMPLETED) == b.on_trial_exited(1, ExitReason.COMPLETED)
    other = make_searcher(SearcherCfg("adaptive_asha", max_trials=9, max_time=64, divisor=2), SPACE, 1)
    with pytest.raises(det_jupyter.searcher.SearcherStateError, match="brackets"):
        other.load_state_dict(a.state_dict())


def test_config_errors() -> None:
    # The searcher section's validation is the one check of its fields; make_searcher only dispatches.
    raw = {
        "name": "async_halving",
        "metric": "loss",
        "time_metric": "batches",
        "max_time": 64,
        "divisor": 1.0,
    }
    with pytest.raises(ConfigError) as info:
        load_config({"searcher": raw})
    assert sorted(info.value.paths) == ["searcher.divisor", "searcher.max_trials", "searcher.num_rungs"]
    with pytest.raises(ConfigError, match=r"searcher\.num_rungs"):  # an unvalidated stand-in is still named
        make_searcher(SearcherCfg("async_halving", max_trials=4, num_rungs=None), SPACE, 0)
    with pytest.raises(ConfigError, match="unknown searcher 'pbt'"):
        make_searcher(SearcherCfg("pbt"), SPACE, 0)
