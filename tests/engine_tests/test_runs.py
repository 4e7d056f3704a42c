"""The lifecycle rules as pure functions: decisions in, no Dask, no store, no clock."""

from __future__ import annotations

import math

import pytest

from det_jupyter.engine.finalize import finalize
from det_jupyter.engine.lifecycle import EVENTS_GRACE, RESULT_GRACE, Lifecycle
from det_jupyter.engine.runs import (
    CutOff,
    EndTrial,
    FetchResult,
    FinishExperiment,
    Outcome,
    OutcomeStatus,
    ReleaseRun,
    ReportValidation,
    RequestStop,
    RunRecord,
    SetExperimentState,
    StopReason,
    Submit,
    TaskEnd,
    TrialRecord,
    UpdateTrial,
)
from det_jupyter.searcher import ExitReason
from det_jupyter.states import ControlAction, ExperimentState, TrialState
from det_jupyter.worker.events import Exited, MetricKind, MetricRecord, Metrics, RunEvent, RunStatus, Started

COMPLETED, ERROR = Outcome(OutcomeStatus.COMPLETED), Outcome(OutcomeStatus.ERROR, "boom")


def _rules(**kwargs: object) -> Lifecycle:
    values: dict[str, object] = {"experiment_id": 1, "nonce": "n", "max_restarts": 1, "max_time": 10}
    values.update(kwargs)
    return Lifecycle(**values)  # type: ignore[arg-type]


def _running(rules: Lifecycle, trial_id: int = 7) -> RunRecord:
    (submit,) = rules.add_trial(TrialRecord(trial_id, trial_id, {}))
    assert isinstance(submit, Submit)
    rules.on_event(RunEvent(trial_id, submit.run.run_id, 1, Started("w")), now=0.0)
    return submit.run


def _end(rules: Lifecycle, run: RunRecord, status: RunStatus = RunStatus.COMPLETED) -> list[object]:
    seq = run.events_seen + 1
    rules.on_event(
        RunEvent(run.trial.id, run.run_id, seq, Exited(status, "tb", events_sent=seq - 1)), now=0.0
    )
    return list(rules.on_task_end(run.key, TaskEnd.FINISHED, None, now=0.0))


@pytest.mark.parametrize(
    ("reason", "outcome", "state", "expected"),
    [
        (None, COMPLETED, TrialState.COMPLETED, ExitReason.COMPLETED),
        (StopReason.SEARCHER, COMPLETED, TrialState.STOPPED, ExitReason.STOPPED),
        (StopReason.KILL, COMPLETED, TrialState.CANCELED, None),
        (StopReason.KILL, ERROR, TrialState.CANCELED, None),
    ],
)
def test_finalize_ends_trials(
    reason: StopReason | None, outcome: Outcome, state: TrialState, expected: ExitReason | None
) -> None:
    run = RunRecord(TrialRecord(1, 1, {}, run_id=0), 0, "k", stop_reason=reason)
    (end,) = finalize(run, outcome, state=ExperimentState.ACTIVE, max_restarts=1, max_time=10)
    assert end == EndTrial(run.trial, state, expected)


def test_a_searcher_stop_after_max_time_still_completes() -> None:
    trial = TrialRecord(1, 1, {}, run_id=0, searcher_time=10)
    run = RunRecord(trial, 0, "k", stop_reason=StopReason.SEARCHER)
    (end,) = finalize(run, COMPLETED, state=ExperimentState.ACTIVE, max_restarts=1, max_time=10)
    assert isinstance(end, EndTrial) and end.state == TrialState.COMPLETED


def test_errors_restart_until_max_restarts_then_error() -> None:
    rules = _rules(max_restarts=1)
    run = _running(rules)
    out = _end(rules, run, RunStatus.ERROR)
    assert isinstance(out[0], ReleaseRun)
    assert UpdateTrial(7, {"error": "tb", "restarts": 1}) in out
    assert isinstance(out[-1], Submit) and out[-1].run.run_id == 1
    out = _end(rules, out[-1].run, RunStatus.ERROR)
    assert out[-1] == EndTrial(run.trial, TrialState.ERROR, ExitReason.ERRORED)
    assert rules.trials == {}


def test_an_error_while_paused_keeps_the_trial_paused() -> None:
    rules = _rules(max_restarts=3)
    run = _running(rules)
    rules.on_request(ControlAction.PAUSE, now=0.0)
    out = _end(rules, run, RunStatus.ERROR)
    assert UpdateTrial(7, {"error": "tb", "restarts": 1, "state": TrialState.PAUSED}) in out
    assert not any(isinstance(d, Submit) for d in out)


def test_a_lost_worker_is_a_failure() -> None:
    rules = _rules(max_restarts=0)
    run = _running(rules)
    out = rules.on_task_end(run.key, TaskEnd.FAILED, "KilledWorker: x", now=0.0)
    end = out[-1]
    assert isinstance(end, EndTrial) and end.state == TrialState.ERROR
    assert (
        UpdateTrial(
            7, {"error": "KilledWorker: x (the worker running the trial died or was lost)", "restarts": 1}
        )
        in out
    )


def test_finalize_waits_for_announced_events_then_gives_up_after_events_grace() -> None:
    rules = _rules()
    run = _running(rules)
    rules.on_event(RunEvent(7, 0, 3, Exited(RunStatus.COMPLETED, events_sent=2)), now=0.0)  # seq 2 is late
    assert rules.on_task_end(run.key, TaskEnd.FINISHED, None, now=100.0) == []
    assert rules.tick(100.0 + EVENTS_GRACE - 0.1) == []
    out = rules.tick(100.0 + EVENTS_GRACE)
    assert isinstance(out[-1], EndTrial) and out[-1].state == TrialState.COMPLETED


def test_a_late_event_completes_the_wait() -> None:
    rules = _rules()
    run = _running(rules)
    rules.on_event(RunEvent(7, 0, 3, Exited(RunStatus.COMPLETED, events_sent=2)), now=0.0)
    assert rules.on_task_end(run.key, TaskEnd.FINISHED, None, now=0.0) == []
    record = MetricRecord(MetricKind.TRAINING, 1, {"loss": 1.0}, 0.0)
    out = rules.on_event(RunEvent(7, 0, 2, Metrics((record,))), now=0.0)
    assert any(isinstance(d, EndTrial) for d in out)


def test_a_missing_exited_event_fetches_the_result_after_result_grace() -> None:
    rules = _rules()
    run = _running(rules)
    assert rules.on_task_end(run.key, TaskEnd.FINISHED, None, now=0.0) == []
    assert rules.tick(RESULT_GRACE - 0.1) == []
    assert rules.tick(RESULT_GRACE) == [FetchResult(run)]
    out = rules.on_result(run, COMPLETED)
    assert isinstance(out[-1], EndTrial)


def test_stop_precedence_pause_searcher_kill() -> None:
    rules = _rules()
    run = _running(rules)
    assert rules.on_request(ControlAction.PAUSE, now=0.0)[1:] == [RequestStop(run, StopReason.PAUSE, False)]
    assert rules.searcher_stop(7, now=1.0) == [RequestStop(run, StopReason.SEARCHER, False)]
    assert rules.on_request(ControlAction.PAUSE, now=2.0) == []  # already paused
    assert rules.on_request(ControlAction.KILL, now=3.0)[1:] == [RequestStop(run, StopReason.KILL, False)]
    assert rules.searcher_stop(7, now=4.0) == []  # weaker than kill
    assert run.stop_reason == StopReason.KILL


def test_a_queued_run_is_cancelled_rather_than_stopped() -> None:
    rules = _rules()
    (submit,) = rules.add_trial(TrialRecord(7, 7, {}))
    assert isinstance(submit, Submit)
    out = rules.on_request(ControlAction.KILL, now=0.0)
    assert out == [
        SetExperimentState(ExperimentState.STOPPING_CANCELED),
        RequestStop(submit.run, StopReason.KILL, True),
    ]


def test_pause_then_activate_resubmits_paused_trials_with_restarts_untouched() -> None:
    rules = _rules()
    run = _running(rules)
    rules.on_request(ControlAction.PAUSE, now=0.0)
    out = _end(rules, run)
    assert UpdateTrial(7, {"state": TrialState.PAUSED}) in out and not any(isinstance(d, Submit) for d in out)
    out = rules.on_request(ControlAction.ACTIVATE, now=1.0)
    assert out[0] == SetExperimentState(ExperimentState.ACTIVE)
    assert isinstance(out[1], Submit) and out[1].run.run_id == 1 and run.trial.restarts == 0


def test_activate_while_a_paused_run_winds_down_resubmits_when_it_ends() -> None:
    rules = _rules()
    run = _running(rules)
    rules.on_request(ControlAction.PAUSE, now=0.0)
    assert rules.on_request(ControlAction.ACTIVATE, now=1.0) == [SetExperimentState(ExperimentState.ACTIVE)]
    out = _end(rules, run)
    assert isinstance(out[-1], Submit) and out[-1].run.run_id == 1


def test_searcher_stop_on_a_paused_trial_ends_it_stopped() -> None:
    rules = _rules(state=ExperimentState.PAUSED)
    trial = TrialRecord(7, 3, {})
    assert rules.add_trial(trial) == [UpdateTrial(7, {"state": TrialState.PAUSED})]
    assert rules.searcher_stop(3, now=0.0) == [EndTrial(trial, TrialState.STOPPED, ExitReason.STOPPED)]
    assert rules.trials == {}


def test_stop_grace_cut_off() -> None:
    rules = _rules(stop_grace=30.0)
    run = _running(rules)
    rules.on_request(ControlAction.KILL, now=100.0)
    assert rules.tick(130.0) == []
    assert rules.tick(130.5) == [CutOff(run, 30.0)]
    assert rules.tick(200.0) == []  # once


def test_kill_cancels_trials_without_runs_and_tells_the_searcher_nothing() -> None:
    rules = _rules(state=ExperimentState.PAUSED)
    trial = TrialRecord(7, 7, {})
    rules.add_trial(trial)
    out = rules.kill(now=0.0)
    assert out == [
        SetExperimentState(ExperimentState.STOPPING_CANCELED),
        EndTrial(trial, TrialState.CANCELED, None),
    ]
    assert rules.finish() == FinishExperiment(ExperimentState.CANCELED)


def test_experiment_final_states() -> None:
    rules = _rules()
    run = _running(rules)
    assert rules.finish() is None
    validation = MetricRecord(MetricKind.VALIDATION, 10, {"val_loss": 0.5}, 0.0)
    rules.on_event(RunEvent(7, 0, 2, Metrics((validation,))), now=0.0)
    _end(rules, run)
    assert rules.finish() is None  # the searcher has not shut down
    rules.searcher_shutdown(failure=False)
    assert rules.finish() == FinishExperiment(ExperimentState.COMPLETED)
    failed = _rules()
    failed.searcher_shutdown(failure=True)
    final = failed.finish()
    assert (
        final is not None
        and final.state == ExperimentState.ERROR
        and "every trial failed" in (final.error or "")
    )


@pytest.mark.parametrize(("smaller", "worst"), [(True, math.inf), (False, -math.inf)])
def test_unrankable_validations_rank_worst(smaller: bool, worst: float) -> None:
    rules = _rules(smaller_is_better=smaller)
    run = _running(rules)
    records = (
        MetricRecord(MetricKind.VALIDATION, 5, {"val_loss": None}, 0.0),
        MetricRecord(MetricKind.VALIDATION, 6, {"val_loss": True}, 0.0),
        MetricRecord(MetricKind.VALIDATION, 7, {"val_loss": 0.5}, 0.0),
    )
    out = rules.on_event(RunEvent(7, 0, 2, Metrics(records)), now=0.0)
    reports = [d for d in out if isinstance(d, ReportValidation)]
    assert [d.metric for d in reports] == [worst, worst, 0.5]
    assert run.trial.best == 0.5
    updates = [d.values for d in out if isinstance(d, UpdateTrial) and "best_validation" in d.values]
    assert [u["best_validation"] for u in updates] == [None, None, 0.5]


def test_events_of_a_finalized_run_are_ignored() -> None:
    rules = _rules()
    run = _running(rules)
    _end(rules, run)
    assert rules.on_event(RunEvent(7, 0, 9, Started("w")), now=0.0) == []


# ---------------------------------------------------------------------------------------------- trial_spec (#10)


def _spec_of(config: dict[str, object], trial: TrialRecord | None = None, **kwargs: object) -> object:
    from det_jupyter.checkpoints import CheckpointStorage
    from det_jupyter.config import load_config
    from det_jupyter.engine.runs import trial_spec

    cfg = load_config(config, warn=False)
    trial = trial or TrialRecord(3, 1, {"lr": 0.1})
    run = RunRecord(trial, 0, "key-3-0")
    storage = CheckpointStorage("memory://det-jupyter-test-specs")
    return trial_spec(cfg, run, experiment_id=1, seed=0, storage=storage, topic="t", **kwargs)  # type: ignore[arg-type]


def test_a_config_without_a_length_gives_the_trial_none_and_the_rules_no_bound() -> None:
    spec = _spec_of({"searcher": {"name": "random", "metric": "loss", "max_trials": 2}})
    assert spec.max_time is None  # type: ignore[attr-defined]
    rules = _rules(max_time=None)
    assert math.isinf(rules.max_time)


def test_per_device_environment_variables_follow_the_trials_slots() -> None:
    config = {
        "searcher": {"name": "single", "metric": "loss"},
        "environment": {"environment_variables": {"cpu": ["WHERE=cpu"], "gpu": ["WHERE=gpu"]}},
    }
    assert _spec_of(config).env_vars == {"WHERE": "cpu"}  # type: ignore[attr-defined]
    assert _spec_of(config, device="cuda").env_vars == {"WHERE": "gpu"}  # type: ignore[attr-defined]
    flat = {
        "searcher": {"name": "single", "metric": "loss"},
        "environment": {"environment_variables": ["A=1"]},
    }
    assert _spec_of(flat, device="cuda").env_vars == {"A": "1"}  # type: ignore[attr-defined]


def test_a_warm_start_is_where_a_trial_without_checkpoints_starts() -> None:
    config = {"searcher": {"name": "single", "metric": "loss", "source_checkpoint_uuid": "abc"}}
    spec = _spec_of(config, warm_start="abc")
    assert (spec.latest_checkpoint, spec.latest_checkpoint_steps) == ("abc", 0)  # type: ignore[attr-defined]
    own = TrialRecord(3, 1, {})
    own.latest_checkpoint, own.latest_checkpoint_steps = "mine", 40
    spec = _spec_of(config, own, warm_start="abc")
    assert (spec.latest_checkpoint, spec.latest_checkpoint_steps) == ("mine", 40)  # type: ignore[attr-defined]


# --- the submission window ------------------------------------------------------------------------


def _finish(rules: Lifecycle, run: RunRecord) -> list[object]:
    """A run that started, exited completed and whose task finished; the decisions of the last step."""
    rules.on_event(RunEvent(run.trial.id, run.run_id, 1, Started("w")), now=0.0)
    return _end(rules, run)


def _submits(decisions: list[object]) -> list[RunRecord]:
    return [d.run for d in decisions if isinstance(d, Submit)]


def test_the_window_bounds_live_runs_and_admits_waiting_trials_in_batches_in_order() -> None:
    rules = _rules(window=4)
    out: list[object] = []
    for i in range(1, 11):
        out += rules.add_trial(TrialRecord(i, i, {}))
    live = _submits(out)
    assert [r.trial.id for r in live] == [1, 2, 3, 4] and rules.waiting == 6
    # one run ends: 3 live > half the window, nobody is admitted yet
    assert _submits(_finish(rules, live.pop(0))) == []
    # a second ends: 2 live = half the window, the window is filled in one batch, FIFO
    batch = _submits(_finish(rules, live.pop(0)))
    assert [r.trial.id for r in batch] == [5, 6]
    live += batch
    while live:
        live += _submits(_finish(rules, live.pop(0)))
        assert len(rules.runs) <= 4
    assert rules.most_live == 4 and rules.waiting == 0
    rules.searcher_shutdown(False)
    final = rules.finish()
    assert final is not None and final.state == ExperimentState.COMPLETED and not rules.trials


def test_a_restart_goes_to_the_head_of_the_waiting_trials_and_shows_queued() -> None:
    rules = _rules(window=2)
    out: list[object] = []
    for i in range(1, 5):
        out += rules.add_trial(TrialRecord(i, i, {}))
    first, second = _submits(out)
    rules.on_event(RunEvent(1, 0, 1, Started("w")), now=0.0)
    failed = _end(rules, first, RunStatus.ERROR)
    (rerun,) = _submits(failed)  # 1 live = half the window: admitted at once, ahead of trials 3 and 4
    assert (rerun.trial.id, rerun.run_id) == (1, 1)
    rules.on_event(RunEvent(1, 1, 1, Started("w")), now=0.0)
    # with the window full, a restart waits at the head and its row says QUEUED meanwhile
    rules.window = 1
    failed = _end(rules, rerun, RunStatus.ERROR)  # restarts 2 > max_restarts 1: trial 1 ends ERROR
    assert any(isinstance(d, EndTrial) and d.state == TrialState.ERROR for d in failed)
    rules.on_event(RunEvent(2, 0, 1, Started("w")), now=0.0)
    rules.window = 0  # an empty cluster: still one run at a time, never none
    out = _end(rules, second, RunStatus.ERROR)
    assert [(r.trial.id, r.run_id) for r in _submits(out)] == [(2, 1)]
    assert list(rules._waiting) == [3, 4]


def test_waiting_trials_follow_pause_activate_kill_and_searcher_stops() -> None:
    rules = _rules(window=2)
    out: list[object] = []
    for i in range(1, 6):
        out += rules.add_trial(TrialRecord(i, i, {}))
    assert len(_submits(out)) == 2 and rules.waiting == 3
    # a searcher stop of a waiting trial ends it STOPPED at once (it never ran)
    (end,) = rules.searcher_stop(3, now=0.0)
    assert isinstance(end, EndTrial) and end.state == TrialState.STOPPED and rules.waiting == 2
    # pause: waiting trials become PAUSED and leave the queue; nothing is admitted while paused
    paused = rules.on_request(ControlAction.PAUSE, now=0.0)
    assert {d.trial_id for d in paused if isinstance(d, UpdateTrial)} == {4, 5} and rules.waiting == 0
    for run in list(rules.runs.values()):
        out = _end(rules, run)  # the paused runs wind down: PAUSED, not resubmitted
        assert _submits(out) == []
    # activate: every trial without a run wants one again, within the window, the rest shown QUEUED
    active = rules.on_request(ControlAction.ACTIVATE, now=0.0)
    assert [r.trial.id for r in _submits(active)] == [1, 2]
    queued = {
        d.trial_id for d in active if isinstance(d, UpdateTrial) and d.values == {"state": TrialState.QUEUED}
    }
    assert queued == {4, 5}
    # kill: waiting trials end CANCELED without a run, running ones are stopped
    killed = rules.on_request(ControlAction.KILL, now=0.0)
    assert {d.trial.id for d in killed if isinstance(d, EndTrial)} == {4, 5}
    assert {d.run.trial.id for d in killed if isinstance(d, RequestStop)} == {1, 2}
    assert rules.waiting == 0


def test_tick_looks_at_no_more_runs_than_the_window_holds() -> None:
    """The per-pass work of the controller's deadline check is bounded by the window, not the search."""
    rules = _rules(window=8)
    out: list[object] = []
    for i in range(1, 1001):
        out += rules.add_trial(TrialRecord(i, i, {}))
    live, passes = _submits(out), 0
    while live:
        live += _submits(_finish(rules, live.pop(0)))
        live += _submits(rules.tick(now=0.0))
        passes += 1
    assert passes == 1000 and rules.most_live == 8
    assert rules.tick_visits <= 8 * passes
    assert not rules.trials
