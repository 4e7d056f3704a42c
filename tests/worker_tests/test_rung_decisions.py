"""Exact rung decisions, on the worker side: after a validation at a searcher decision point (an ASHA
rung) the next ``should_stop()`` waits for the searcher's answer, and only there."""

from __future__ import annotations

import threading

from det_jupyter.worker.context import TrialContext, TrialSpec
from det_jupyter.worker.sinks import ListSink
from det_jupyter.worker.subcontexts import StopFlag


def _ctx(
    tmp_path: object, *, points: tuple[float, ...], decided: float = float("-inf"), timeout: float = 30.0
) -> TrialContext:
    spec = TrialSpec(
        experiment_id=1,
        trial_id=1,
        run_id=0,
        hparams={},
        metric="loss",
        smaller_is_better=True,
        time_metric="batches",
        max_time=16,
        storage_url=str(tmp_path),
        decision_points=points,
        decided_through=decided,
        decision_timeout=timeout,
    )
    return TrialContext(spec, ListSink(), StopFlag())


def _logs(ctx: TrialContext) -> list[str]:
    assert isinstance(ctx.sink, ListSink)
    return [line for e in ctx.sink.events if e["type"] == "log" for _, line in e["lines"]]


def test_no_wait_between_decision_points(tmp_path: object) -> None:
    ctx = _ctx(tmp_path, points=(4.0,), timeout=0.0)
    for step in (1, 2, 3):
        ctx.report_validation_metrics(step, {"loss": 1.0})
        assert ctx.should_stop() is False
    assert ctx._decision_waits == []  # nothing asked below the rung


def test_a_stop_at_the_rung_is_seen_by_the_next_check(tmp_path: object) -> None:
    ctx = _ctx(tmp_path, points=(4.0,))
    ctx.report_validation_metrics(4, {"loss": 1.0})
    threading.Timer(0.05, ctx._stop.set).start()  # the controller's stop, arriving a little later
    assert ctx.should_stop() is True  # without the wait this check would have said False
    assert any("searcher decision at batches 4: stop" in line for line in _logs(ctx))


def test_a_continue_releases_the_trial_and_later_points_wait_again(tmp_path: object) -> None:
    ctx = _ctx(tmp_path, points=(4.0, 8.0))
    ctx.report_validation_metrics(5, {"loss": 1.0})  # past the rung: still the rung's decision
    threading.Timer(0.05, ctx._stop.allow, args=(5.0,)).start()
    assert ctx.should_stop() is False
    assert ctx.should_stop() is False  # answered once; no second wait
    ctx.report_validation_metrics(8, {"loss": 1.0})
    assert ctx._awaiting == 8.0
    ctx._stop.allow(8.0)
    assert ctx.should_stop() is False
    assert len(ctx._decision_waits) == 2


def test_no_answer_times_out_and_says_so(tmp_path: object) -> None:
    ctx = _ctx(tmp_path, points=(4.0,), timeout=0.01)
    ctx.report_validation_metrics(4, {"loss": 1.0})
    assert ctx.should_stop() is False
    assert any("no answer (timed out)" in line for line in _logs(ctx))


def test_a_rerun_does_not_wait_for_decisions_already_made(tmp_path: object) -> None:
    ctx = _ctx(tmp_path, points=(4.0, 8.0), decided=5.0, timeout=0.0)
    ctx.report_validation_metrics(6, {"loss": 1.0})
    assert ctx._awaiting is None
    ctx.report_validation_metrics(8, {"loss": 1.0})
    assert ctx._awaiting == 8.0


def test_the_searcher_time_is_the_time_metric_when_reported(tmp_path: object) -> None:
    ctx = _ctx(tmp_path, points=(2.0,))
    ctx.report_validation_metrics(100, {"loss": 1.0, "batches": 1})  # 100 steps but 1 batch of searcher time
    assert ctx._awaiting is None
