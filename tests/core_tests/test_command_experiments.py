"""Model directories on a real Dask cluster: a Determined Core API script (`import det_jupyter as det`) as
a command entrypoint, and `module:Attr` from the directory, end to end through create_experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import det_jupyter as det
from det_jupyter.states import ExperimentState, TrialState

MODEL_DIR = Path(__file__).parents[1] / "fixtures" / "core_api_dir"

pytestmark = pytest.mark.slow


def _config(entrypoint: str, **searcher: Any) -> dict[str, Any]:
    return {
        "name": "core-api",
        "entrypoint": entrypoint,
        "hyperparameters": {"lr": {"type": "categorical", "vals": [0.05, 0.1]}},
        "searcher": {
            "name": "grid",
            "metric": "val_loss",
            "time_metric": "batches",
            "max_time": 10,
            **searcher,
        },
        "max_restarts": 1,
    }


def test_core_api_script_reports_checkpoints_and_resumes_after_a_crash(
    dask_client: Any, tmp_path: Path
) -> None:
    exp = det.create_experiment(
        _config("python3 train.py --steps 10 --crash-at 7"),
        context=MODEL_DIR,
        cluster=dask_client,
        store=tmp_path / "det.db",
    )
    assert exp.wait(timeout=240) == ExperimentState.COMPLETED, exp.error
    trials = exp.trials()
    assert len(trials) == 2
    for trial in trials:
        assert trial.state == TrialState.COMPLETED and trial.restarts == 1  # crashed once at step 7
        logs = trial.logs()
        assert "crashing on purpose" in logs and "restored at 5" in logs  # stderr kept; resumed from step 5
        training = trial.metrics("training")
        assert sorted(set(training["steps"])) == list(range(1, 11))  # steps 6..7 of run 0 are reported again
        assert trial.best_validation is not None
    lr_of = {t.hparams["lr"]: t.best_validation for t in trials}
    assert lr_of[0.1] < lr_of[0.05]  # the larger step size learns faster: the metrics are the script's
    best = exp.best_checkpoint()
    path = best.download(tmp_path / "best")
    assert (path / "state.json").is_file()


def test_a_failing_command_shows_its_stderr_and_the_experiment_goes_on(
    dask_client: Any, tmp_path: Path
) -> None:
    cfg = _config("python3 -c \"import sys; print('no GPU here', file=sys.stderr); sys.exit(2)\"")
    cfg["max_restarts"] = 0
    exp = det.create_experiment(cfg, context=MODEL_DIR, cluster=dask_client, store=tmp_path / "det.db")
    exp.wait(timeout=240)
    for trial in exp.trials():
        assert trial.state == TrialState.ERROR
        assert "exited with status 2" in (trial.error or "") and "no GPU here" in (trial.error or "")


def test_a_killed_experiment_preempts_the_command(dask_client: Any, tmp_path: Path, wait_for: Any) -> None:
    cfg = _config("python3 train.py --steps 100000000")
    exp = det.create_experiment(cfg, context=MODEL_DIR, cluster=dask_client, store=tmp_path / "det.db")
    wait_for(lambda: len(exp.metrics("training")) > 0, timeout=120, what="a training report")
    exp.kill()
    assert exp.wait(timeout=120) == ExperimentState.CANCELED
    logs = [line for t in exp.trials() for line in t.logs()]
    assert any(line.startswith("preempted at") for line in logs)  # exited through should_preempt()


def test_module_attr_from_the_directory_and_checkpoint_load(dask_client: Any, tmp_path: Path) -> None:
    exp = det.create_experiment(
        _config("model_def:LinearTrial"), context=MODEL_DIR, cluster=dask_client, store=tmp_path / "det.db"
    )
    assert exp.wait(timeout=240) == ExperimentState.COMPLETED, exp.error
    best = exp.best_trial()
    assert best is not None and best.hparams["lr"] == 0.1
    assert exp.best_checkpoint().load() == pytest.approx(0.5)  # LinearTrial.load_checkpoint from the dir


def test_a_paused_experiment_waits_for_activate(dask_client: Any, tmp_path: Path, wait_for: Any) -> None:
    exp = det.create_experiment(
        _config("model_def:LinearTrial"),
        context=MODEL_DIR,
        cluster=dask_client,
        store=tmp_path / "det.db",
        activate=False,
    )
    wait_for(lambda: len(exp.trials()) == 2, timeout=60, what="trials created")
    assert exp.state == ExperimentState.PAUSED
    assert {t.state for t in exp.trials()} == {TrialState.PAUSED}
    exp.activate()
    assert exp.wait(timeout=240) == ExperimentState.COMPLETED
