"""Property tests over random searcher configs and random event sequences.

Checked for every searcher and every event sequence:

* never more than the budget created (``max_trials``; grid: the grid size; single: 1), request ids
  1, 2, ... in order; ASHA: never more than a bracket's ``max_trials`` in that bracket;
* never more than ``max_concurrent_trials`` live (when > 0), nor more than a bracket's own limit unless
  another bracket has created all its trials (work-conserving shares under a global limit);
* ``Stop`` only for live trials, once each, and only from ASHA searchers;
* the ASHA stopping rule, against an independent model: a trial reporting ``time`` >= the length of the
  rung it waits for is added to that rung; with ``n`` metrics there (its own included) and ``better``
  of them strictly better, it continues below the top rung iff ``better < max(int(n / divisor), 1)``,
  else it gets ``Stop``; the top rung never stops; ERRORED/CANCELED trials are added as the worst
  metric to the rung they were waiting for;
* every search ends with one ``Shutdown``, last, once all trials have exited, when trials keep exiting;
* ``progress()`` in [0, 1] and 1.0 after Shutdown;
* a searcher restored (through JSON) from ``state_dict()`` at any point, with a different seed, returns
  exactly the same operations as the original from then on; the same seed gives the same operations.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from det_jupyter.hparams import parse_hyperparameters
from det_jupyter.searcher import (
    ASHASearch,
    Create,
    ExitReason,
    Operation,
    SearchMethod,
    Shutdown,
    Stop,
    make_searcher,
)

from .helpers import SearcherCfg, roundtrip

SPACE = parse_hyperparameters(
    {
        "units": {"type": "int", "minval": 1, "maxval": 64, "count": 3},
        "lr": {"type": "log", "minval": -4, "maxval": -1, "count": 2},
        "opt": {"name": {"type": "categorical", "vals": ["sgd", "adam"]}, "m": 0.9},
    }
)

configs = st.builds(
    SearcherCfg,
    name=st.sampled_from(["single", "grid", "random", "adaptive_asha", "async_halving"]),
    smaller_is_better=st.booleans(),
    max_trials=st.integers(1, 14),
    max_concurrent_trials=st.integers(0, 5),
    max_time=st.sampled_from([1, 2, 5, 16, 64, 100]),
    mode=st.sampled_from(["aggressive", "standard", "conservative"]),
    divisor=st.sampled_from([1.5, 2.0, 3.0, 4.0]),
    max_rungs=st.integers(1, 5),
    bracket_rungs=st.one_of(st.none(), st.lists(st.integers(1, 4), min_size=1, max_size=4)),
    num_rungs=st.integers(1, 4),
)
metrics = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0]), st.floats(-10, 10))
reasons = st.sampled_from(list(ExitReason))


class RungModel:
    """An independent, deliberately naive model of the ASHA stopping rule."""

    def __init__(self, s: ASHASearch) -> None:
        self.s = s
        self.rungs: list[list[list[float]]] = [[[] for _ in b.rung_lengths] for b in s.brackets]
        self.next_rung: dict[int, int] = {}

    def created(self, rid: int) -> None:
        self.next_rung[rid] = 0

    def expect_stop(self, rid: int, metric: float, time: float) -> bool:
        if rid not in self.next_rung:
            return False
        b = self.s.trial_bracket(rid)
        bracket = self.s.brackets[b]
        value = metric if self.s.smaller_is_better else -metric
        value = sys.float_info.max if math.isnan(value) else value
        while self.next_rung[rid] < bracket.num_rungs:
            r = self.next_rung[rid]
            if time < bracket.rung_lengths[r]:
                return False
            rung = self.rungs[b][r]
            better = sum(1 for m in rung if m < value)
            rung.append(value)
            if r == bracket.num_rungs - 1:
                del self.next_rung[rid]
                return False
            if better >= max(int(len(rung) / self.s.divisor), 1):
                del self.next_rung[rid]
                return True
            self.next_rung[rid] = r + 1
        return False

    def exited(self, rid: int, reason: ExitReason) -> None:
        r = self.next_rung.pop(rid, None)
        if r is not None and reason in (ExitReason.ERRORED, ExitReason.CANCELED):
            self.rungs[self.s.trial_bracket(rid)][r].append(sys.float_info.max)


class Checker:
    """Feeds events to a searcher, checks every answer, optionally mirrors them to twins."""

    def __init__(self, cfg: SearcherCfg, seed: int) -> None:
        self.cfg = cfg
        self.s = make_searcher(cfg, SPACE, seed)
        self.twins: list[SearchMethod] = []
        self.live: list[int] = []
        self.last_time: dict[int, float] = {}
        self.stopped: set[int] = set()
        self.created = 0
        self.per_bracket: dict[int, int] = {}
        self.shutdown = False
        self.model = RungModel(self.s) if isinstance(self.s, ASHASearch) else None
        self.budget = {"single": 1, "grid": SPACE.grid_size()}.get(cfg.name, cfg.max_trials or 0)

    def _event(self, name: str, *args: Any) -> list[Operation]:
        ops: list[Operation] = getattr(self.s, name)(*args)
        for twin in self.twins:
            assert getattr(twin, name)(*args) == ops, "a restored searcher diverged"
            assert twin.progress() == self.s.progress()
        return ops

    def _check(self, ops: list[Operation], expect_stop: bool | None = None) -> None:
        assert not self.shutdown
        for i, op in enumerate(ops):
            if isinstance(op, Create):
                self.created += 1
                assert op.request_id == self.created <= self.budget
                self.live.append(op.request_id)
                self.last_time[op.request_id] = 0.0
                if isinstance(self.s, ASHASearch):
                    assert self.model is not None
                    self.model.created(op.request_id)
                    b = self.s.trial_bracket(op.request_id)
                    self.per_bracket[b] = self.per_bracket.get(b, 0) + 1
                    assert self.per_bracket[b] <= self.s.brackets[b].max_trials
            elif isinstance(op, Stop):
                assert self.model is not None, "only ASHA stops trials"
                assert op.request_id in self.live and op.request_id not in self.stopped
                self.stopped.add(op.request_id)
            else:
                assert isinstance(op, Shutdown) and i == len(ops) - 1 and not self.live
                self.shutdown = True
        if self.cfg.max_concurrent_trials > 0:
            assert len(self.live) <= self.cfg.max_concurrent_trials
        if isinstance(self.s, ASHASearch):
            for b, bracket in enumerate(self.s.brackets):
                if sum(1 for r in self.live if self.s.trial_bracket(r) == b) > bracket.max_concurrent_trials:
                    # beyond its own share only under a global limit, on a slot that a bracket with no
                    # trials left gave up (the shares are work-conserving)
                    assert self.cfg.max_concurrent_trials > 0
                    assert any(
                        self.per_bracket.get(o, 0) == other.max_trials
                        for o, other in enumerate(self.s.brackets)
                        if o != b
                    )
        if expect_stop is not None:
            assert any(isinstance(op, Stop) for op in ops) == expect_stop
        assert 0.0 <= self.s.progress() <= 1.0

    def start(self) -> None:
        self._check(self._event("initial_operations"))

    def validate(self, rid: int, metric: float, time: float) -> None:
        ops = self._event("on_validation_completed", rid, metric, time)
        expect = self.model.expect_stop(rid, metric, time) if self.model is not None else False
        self.last_time[rid] = time
        self._check(ops, expect_stop=expect)

    def exit(self, rid: int, reason: ExitReason) -> None:
        self.live.remove(rid)
        if self.model is not None:
            self.model.exited(rid, reason)
        self._check(self._event("on_trial_exited", rid, reason))
        assert self.live or self.shutdown, "no live trials and no Shutdown"

    def restore_twin(self, seed: int) -> None:
        """From now on, a copy restored through JSON must answer every event exactly like the original."""
        twin = make_searcher(self.cfg, SPACE, seed)
        twin.load_state_dict(roundtrip(self.s.state_dict()))
        assert twin.progress() == self.s.progress()
        self.twins.append(twin)


def _run(cfg: SearcherCfg, seed: int, data: st.DataObject, restore_at: int | None) -> list[Any]:
    """Drive one search with random events; returns the events, to replay them."""
    c = Checker(cfg, seed)
    events: list[tuple[str, tuple[Any, ...]]] = []
    c.start()
    lengths = sorted({t for b in getattr(c.s, "brackets", ()) for t in b.rung_lengths} | {0, cfg.max_time})
    step = 0
    while not c.shutdown:
        if step == restore_at:
            c.restore_twin(seed + 1)
        step += 1
        rid = data.draw(st.sampled_from(c.live), label="trial")
        draining = step > 60  # after a while trials only exit, so the search must end
        if not draining and data.draw(st.booleans(), label="validate?"):
            time = data.draw(st.sampled_from([t for t in lengths if t >= c.last_time[rid]]), label="time")
            metric = data.draw(metrics, label="metric")
            events.append(("on_validation_completed", (rid, metric, time)))
            c.validate(rid, metric, time)
        else:
            reason = (
                ExitReason.STOPPED if rid in c.stopped and draining else data.draw(reasons, label="reason")
            )
            events.append(("on_trial_exited", (rid, reason)))
            c.exit(rid, reason)
        assert step < 10_000
    assert c.s.progress() == 1.0
    assert c.created <= c.budget
    if cfg.name == "grid":
        assert c.created == SPACE.grid_size()
    return events


@settings(max_examples=300, deadline=None)
@given(cfg=configs, seed=st.integers(0, 2**31), data=st.data())
def test_invariants_hold_for_random_event_sequences(cfg: SearcherCfg, seed: int, data: st.DataObject) -> None:
    _run(cfg, seed, data, restore_at=None)


@settings(max_examples=200, deadline=None)
@given(cfg=configs, seed=st.integers(0, 2**31), restore_at=st.integers(0, 40), data=st.data())
def test_restored_searcher_gives_identical_future_operations(
    cfg: SearcherCfg, seed: int, restore_at: int, data: st.DataObject
) -> None:
    _run(cfg, seed, data, restore_at=restore_at)


@settings(max_examples=100, deadline=None)
@given(cfg=configs, seed=st.integers(0, 2**31), data=st.data())
def test_same_seed_same_operations(cfg: SearcherCfg, seed: int, data: st.DataObject) -> None:
    events = _run(cfg, seed, data, restore_at=None)
    a, b = make_searcher(cfg, SPACE, seed), make_searcher(cfg, SPACE, seed)
    assert a.initial_operations() == b.initial_operations()
    for name, args in events:
        assert getattr(a, name)(*args) == getattr(b, name)(*args)
