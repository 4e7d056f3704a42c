"""The pure rule: a trial interrupted because its master or kernel died never spends max_restarts."""

from __future__ import annotations

from det_jupyter.engine.lifecycle import Lifecycle
from det_jupyter.engine.runs import AppendLog, Submit, TrialRecord, UpdateTrial
from det_jupyter.states import ExperimentState, TrialState


def test_an_interrupted_trial_resumes_from_its_checkpoint_without_a_restart() -> None:
    rules = Lifecycle(experiment_id=1, nonce="n", max_restarts=0, max_time=10)
    trial = TrialRecord(id=7, request_id=1, hparams={}, restarts=0, run_id=1)
    trial.latest_checkpoint, trial.latest_checkpoint_steps = "ck", 4
    log, submit = rules.resume_trial(trial)
    assert isinstance(log, AppendLog) and "step 4" in log.text and "not counted as a restart" in log.text
    assert isinstance(submit, Submit)
    assert submit.run.run_id == 2 and submit.run.trial.restarts == 0  # max_restarts=0 is not spent
    assert submit.run.trial.latest_checkpoint == "ck"


def test_a_trial_that_never_ran_is_just_submitted() -> None:
    rules = Lifecycle(experiment_id=1, nonce="n", max_restarts=0, max_time=10)
    (submit,) = rules.resume_trial(TrialRecord(id=3, request_id=2, hparams={}))
    assert isinstance(submit, Submit) and submit.run.run_id == 0


def test_a_paused_experiment_keeps_its_interrupted_trial_paused() -> None:
    rules = Lifecycle(experiment_id=1, nonce="n", max_restarts=1, max_time=10, state=ExperimentState.PAUSED)
    trial = TrialRecord(id=7, request_id=1, hparams={}, restarts=1, run_id=3)
    out = rules.resume_trial(trial)
    assert out[-1] == UpdateTrial(7, {"state": TrialState.PAUSED}) and trial.restarts == 1
