"""Exact rung decisions end to end: with instant epochs, a trial ASHA stops at rung k never reports a
step past rung k's length (before, the stop travelled asynchronously and fast trials ran past it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import det_jupyter
from det_jupyter.states import ExperimentState, TrialState


def instant_trial(ctx: Any) -> None:
    """Epochs that take no time: validation every step, the stop checked right after."""
    x = ctx.hparams["x"]
    for step in range(1, ctx.searcher.max_time + 1):
        ctx.report_training_metrics(step, {"loss": x + 1.0 / step})
        ctx.report_validation_metrics(step, {"val_loss": x + 1.0 / step})
        if ctx.should_stop():
            return


@pytest.mark.slow
def test_stopped_trials_end_exactly_at_their_rung(dask_client: Any, tmp_path: Path) -> None:
    config = {
        "name": "exact-rungs",
        "hyperparameters": {"x": {"type": "double", "minval": 0.0, "maxval": 1.0}},
        "searcher": {
            "name": "async_halving",
            "metric": "val_loss",
            "num_rungs": 3,
            "divisor": 4,
            "max_trials": 12,
            "max_concurrent_trials": 2,
            "time_metric": "batches",
            "max_time": 16,
        },
        "reproducibility": {"experiment_seed": 7},
    }
    exp = det_jupyter.create_experiment(config, instant_trial, cluster=dask_client, store=tmp_path / "det.db")
    assert exp.wait(timeout=300) == ExperimentState.COMPLETED, exp.error
    rungs = {1, 4, 16}  # rung_lengths(3, 4, 16)
    last_steps = {}
    for trial in exp.trials():
        steps = trial.metrics("validation")["steps"]
        last_steps[trial.id] = int(steps.max())
        assert last_steps[trial.id] in rungs, (trial.id, trial.state, sorted(steps))
        if trial.state == TrialState.STOPPED:
            assert last_steps[trial.id] < 16
            assert any("searcher decision at batches" in line and ": stop" in line for line in trial.logs())
    stopped = [t for t in exp.trials() if t.state == TrialState.STOPPED]
    assert len(stopped) >= 6, last_steps  # ASHA keeps a quarter per rung: most trials stop early
