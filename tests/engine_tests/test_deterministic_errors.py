"""The deterministic-error rule: the same user error twice, with no progress between, is not retried.

Pure rules (``engine/lifecycle.py``), in the style of ``test_runs.py``: decisions in, no Dask, no store.
"""

from __future__ import annotations

from det_jupyter.engine.finalize import failure_signature
from det_jupyter.engine.lifecycle import Lifecycle
from det_jupyter.engine.runs import AppendLog, EndTrial, RunRecord, Submit, TaskEnd, TrialRecord, UpdateTrial
from det_jupyter.searcher import ExitReason
from det_jupyter.states import ControlAction, TrialState
from det_jupyter.worker.events import CheckpointSaved, Exited, RunEvent, RunStatus, Started


def _tb(message: str = "KeyError: 'lable'", line: int = 4) -> str:
    return (
        "Traceback (most recent call last):\n"
        '  File "/venv/det_jupyter/worker/runtime.py", line 160, in run_trial\n'
        "    call_entrypoint(entrypoint, ctx)\n"
        f'  File "<cell>", line {line}, in train\n'
        '    y = row["lable"]\n'
        "        ~~~^^^^^^^^^\n"
        f"{message}\n"
    )


def _rules(max_restarts: int = 5) -> Lifecycle:
    return Lifecycle(experiment_id=1, nonce="n", max_restarts=max_restarts, max_time=10)


def _start(rules: Lifecycle, trial_id: int = 7) -> RunRecord:
    (submit,) = rules.add_trial(TrialRecord(trial_id, trial_id, {}))
    assert isinstance(submit, Submit)
    rules.on_event(RunEvent(trial_id, submit.run.run_id, 1, Started("w")), now=0.0)
    return submit.run


def _fail(
    rules: Lifecycle, run: RunRecord, traceback: str, *, checkpoint_at: int | None = None
) -> list[object]:
    """The run (started, seq 1) optionally checkpoints, then raises ``traceback``; its task ends."""
    seq = run.events_seen + 1
    if checkpoint_at is not None:
        body = CheckpointSaved(f"ck-{checkpoint_at}", checkpoint_at, {}, {})
        rules.on_event(RunEvent(run.trial.id, run.run_id, seq, body), now=0.0)
        seq += 1
    exited = Exited(RunStatus.ERROR, traceback, events_sent=seq - 1)
    rules.on_event(RunEvent(run.trial.id, run.run_id, seq, exited), now=0.0)
    return list(rules.on_task_end(run.key, TaskEnd.FINISHED, None, now=0.0))


def _start_resubmitted(rules: Lifecycle, out: list[object]) -> RunRecord:
    submit = out[-1]
    assert isinstance(submit, Submit), out
    run = submit.run
    rules.on_event(RunEvent(run.trial.id, run.run_id, 1, Started("w")), now=0.0)
    return run


def test_the_same_failure_twice_without_progress_ends_the_trial_with_a_note() -> None:
    rules = _rules(max_restarts=5)
    run = _start(rules)
    first = _fail(rules, run, _tb())
    second = _fail(rules, _start_resubmitted(rules, first), _tb())
    assert second[-1] == EndTrial(run.trial, TrialState.ERROR, ExitReason.ERRORED)
    assert not any(isinstance(d, Submit) for d in second)
    (update,) = [d for d in second if isinstance(d, UpdateTrial)]
    assert update.values["restarts"] == 2
    error = update.values["error"]
    assert error.startswith("Traceback") and "KeyError: 'lable'" in error
    assert "failed twice the same way; not retrying" in error
    assert "max_restarts=5 would have restarted it 4 more times" in error
    notes = [d.text for d in second if isinstance(d, AppendLog)]
    assert any("failed twice the same way; not retrying" in n for n in notes)
    assert rules.trials == {}


def test_a_checkpoint_between_the_failures_is_progress_so_it_restarts() -> None:
    rules = _rules(max_restarts=5)
    run = _start(rules)
    first = _fail(rules, run, _tb())
    second = _fail(rules, _start_resubmitted(rules, first), _tb(), checkpoint_at=5)
    assert isinstance(second[-1], Submit) and second[-1].run.run_id == 2
    # ... and failing the same way again from that checkpoint is deterministic
    third = _fail(rules, _start_resubmitted(rules, second), _tb())
    assert isinstance(third[-1], EndTrial) and third[-1].state == TrialState.ERROR


def test_a_different_message_or_line_restarts() -> None:
    rules = _rules(max_restarts=5)
    run = _start(rules)
    out = _fail(rules, run, _tb("ValueError: batch 17 is corrupt"))
    out = _fail(rules, _start_resubmitted(rules, out), _tb("ValueError: batch 18 is corrupt"))
    assert isinstance(out[-1], Submit)
    out = _fail(rules, _start_resubmitted(rules, out), _tb("ValueError: batch 18 is corrupt", line=9))
    assert isinstance(out[-1], Submit)


def test_lost_workers_are_never_deterministic() -> None:
    rules = _rules(max_restarts=2)
    run = _start(rules)
    out = list(rules.on_task_end(run.key, TaskEnd.FAILED, "KilledWorker: x", now=0.0))
    run = _start_resubmitted(rules, out)
    out = list(rules.on_task_end(run.key, TaskEnd.FAILED, "KilledWorker: x", now=0.0))
    assert isinstance(out[-1], Submit)  # restart 2 of max_restarts=2


def test_max_restarts_still_bounds_and_its_message_is_unchanged() -> None:
    rules = _rules(max_restarts=1)
    run = _start(rules)
    out = _fail(rules, run, _tb())
    out = _fail(rules, _start_resubmitted(rules, out), _tb())
    (update,) = [d for d in out if isinstance(d, UpdateTrial)]
    assert "not retrying" not in update.values["error"]  # max_restarts ended it anyway
    assert isinstance(out[-1], EndTrial) and out[-1].state == TrialState.ERROR


def test_a_repeated_failure_while_paused_ends_the_trial_too() -> None:
    rules = _rules(max_restarts=5)
    run = _start(rules)
    out = _fail(rules, run, _tb())
    run = _start_resubmitted(rules, out)
    rules.on_request(ControlAction.PAUSE, now=1.0)
    out = _fail(rules, run, _tb())
    assert isinstance(out[-1], EndTrial) and out[-1].state == TrialState.ERROR


def test_failure_signature_is_the_innermost_frame_and_the_final_exception() -> None:
    chained = (
        _tb("KeyError: 'a'")
        + "\nThe above exception was the direct cause of the following exception:\n\n"
        + _tb("RuntimeError: wrapped\nwith a second line", line=12)
    )
    assert failure_signature(chained) == (
        '  File "<cell>", line 12, in train\nRuntimeError: wrapped\nwith a second line'
    )
    assert failure_signature(None) is None
    assert failure_signature("the trial's task was cancelled outside det_jupyter") is None
