"""End to end on a real LocalCluster: searches, failures and restarts, pause/activate, kill, readers.

User code here is plain Core-API functions; the model-framework adapters have their own e2e tests.
Functions are shipped by value (this test module is not installed), exactly as notebook code is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import det_jupyter
from det_jupyter import ExperimentState, TrialState

pytestmark = pytest.mark.slow


def _config(**searcher: Any) -> dict[str, Any]:
    base = {
        "name": "random",
        "metric": "val_loss",
        "max_trials": 4,
        "max_time": 10,
        "time_metric": "batches",
        "max_concurrent_trials": 2,
    }
    return {
        "name": "engine-test",
        "searcher": {**base, **searcher},
        "hyperparameters": {"x": {"type": "double", "minval": -1, "maxval": 1}, "marker_dir": "."},
        "max_restarts": 2,
    }


def counting_trial(ctx: Any) -> None:
    """Trains 1..max_time; validates and checkpoints every 5 steps; resumes from its checkpoint.

    Behaviour switches from hparams: ``fail_once_at`` raises once at that step (a marker file makes it
    once per trial), ``die_once_at`` kills the worker process, ``always_fail`` raises every time,
    ``step_seconds`` makes steps slow enough to pause or kill mid-run.
    """
    hp = ctx.hparams
    marker = Path(hp["marker_dir"]) / f"trial-{ctx.trial_id}"
    start = 0
    with ctx.checkpoint.restore() as path:
        if path is not None:
            start = int((path / "step").read_text())
    print(f"run {ctx.run_id} starts at step {start}")
    for step in range(start + 1, ctx.searcher.max_time + 1):
        if hp.get("always_fail"):
            raise RuntimeError("this trial always fails")
        if step == hp.get("fail_once_at") and not marker.exists():
            marker.write_text("failed")
            raise ValueError(f"planned failure at step {step}")
        if step == hp.get("die_once_at") and not marker.exists():
            marker.write_text("died")
            os._exit(3)
        time.sleep(hp.get("step_seconds", 0.0))
        ctx.report_training_metrics(step, {"loss": 1.0 / step})
        if step % 5 == 0:
            ctx.report_validation_metrics(step, {"val_loss": abs(hp["x"]) + 1.0 / step})
            with ctx.checkpoint.save(step) as out:
                (out / "step").write_text(str(step))
        if ctx.should_stop():
            with ctx.checkpoint.save(step) as out:
                (out / "step").write_text(str(step))
            return


def _hp(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"x": {"type": "double", "minval": -1, "maxval": 1}, "marker_dir": str(tmp_path), **extra}


def test_random_search_records_everything(det_home: Path, dask_client: Any) -> None:
    exp = det_jupyter.create_experiment(_config(), counting_trial, cluster=dask_client)
    assert exp.wait(timeout=120) == ExperimentState.COMPLETED
    trials = exp.trials()
    assert len(trials) == 4
    assert {t.state for t in trials} == {TrialState.COMPLETED}
    for t in trials:
        val = t.metrics("validation")
        assert list(val["steps"]) == [5, 10]
        assert list(t.metrics("training")["steps"]) == list(range(1, 11))
        assert t.best_validation == pytest.approx(abs(t.hparams["x"]) + 0.1)
        assert t.logs() == ["run 0 starts at step 0"]
    best = exp.best_trial()
    assert best is not None
    assert best.best_validation == min(t.best_validation for t in trials)
    ckpt = exp.best_checkpoint()
    assert ckpt.trial_id == best.id and ckpt.steps == 10
    assert (ckpt.download(det_home / "dl") / "step").read_text() == "10"
    frame = exp.metrics()
    assert set(frame["trial_id"]) == {t.id for t in trials}
    assert exp.progress == 1.0
    # GC policy (save_trial_best=1, save_trial_latest=1): the step-5 checkpoints were deleted
    assert all(len(t.checkpoints()) == 1 for t in trials)
    assert sorted(p.name for p in (det_home / "checkpoints").iterdir() if p.name != "latest") == sorted(
        c.uuid for c in exp.checkpoints()
    )


def test_trial_that_raises_once_restarts_from_its_checkpoint(
    det_home: Path, tmp_path: Path, dask_client: Any
) -> None:
    cfg = _config(max_trials=1)
    cfg["hyperparameters"] = _hp(tmp_path, fail_once_at=8)
    exp = det_jupyter.create_experiment(cfg, counting_trial, cluster=dask_client)
    assert exp.wait(timeout=120) == ExperimentState.COMPLETED
    (trial,) = exp.trials()
    assert trial.state == TrialState.COMPLETED
    assert trial.restarts == 1
    assert "planned failure at step 8" in (trial.error or "")
    logs = trial.logs()
    assert "run 0 starts at step 0" in logs and "run 1 starts at step 5" in logs
    assert any("ValueError: planned failure at step 8" in line for line in logs)
    training = trial.metrics("training")
    # run 1 resumed after the step-5 checkpoint: it re-did steps 6..10 only (losing < one checkpoint period)
    assert list(training[training.run_id == 1]["steps"]) == [6, 7, 8, 9, 10]


def test_worker_death_costs_at_most_one_checkpoint_period(
    det_home: Path, tmp_path: Path, dask_client: Any
) -> None:
    cfg = _config(max_trials=1)
    cfg["hyperparameters"] = _hp(tmp_path, die_once_at=7)
    exp = det_jupyter.create_experiment(cfg, counting_trial, cluster=dask_client)
    assert exp.wait(timeout=180) == ExperimentState.COMPLETED
    (trial,) = exp.trials()
    assert trial.state == TrialState.COMPLETED and trial.restarts == 1
    assert "died" in (trial.error or "")
    training = trial.metrics("training")
    assert list(training[training.run_id == 1]["steps"]) == [6, 7, 8, 9, 10]


def test_trial_that_always_fails_errors_and_the_search_goes_on(det_home: Path, dask_client: Any) -> None:
    def sometimes_broken(ctx: Any) -> None:
        if ctx.hparams["broken"]:
            raise RuntimeError("broken by design")
        ctx.report_validation_metrics(1, {"val_loss": 1.0})

    cfg = _config(name="grid", max_trials=None, max_time=1)
    cfg["hyperparameters"] = {"broken": {"type": "categorical", "vals": [True, False]}}
    cfg["max_restarts"] = 1
    exp = det_jupyter.create_experiment(cfg, sometimes_broken, cluster=dask_client)
    assert exp.wait(timeout=120) == ExperimentState.COMPLETED
    states = {t.hparams["broken"]: t for t in exp.trials()}
    assert states[True].state == TrialState.ERROR
    assert states[True].restarts == 2  # first run + max_restarts=1 restart, both failed
    assert "RuntimeError: broken by design" in (states[True].error or "")
    assert states[False].state == TrialState.COMPLETED


def test_every_trial_failing_ends_the_experiment_in_error(det_home: Path, dask_client: Any) -> None:
    def broken(ctx: Any) -> None:
        raise KeyError("missing column")

    cfg = _config(max_trials=2)
    cfg["max_restarts"] = 0
    exp = det_jupyter.create_experiment(cfg, broken, cluster=dask_client)
    assert exp.wait(timeout=120) == ExperimentState.ERROR
    assert "every trial failed" in (exp.error or "")
    assert all("KeyError: 'missing column'" in (t.error or "") for t in exp.trials())


def test_pause_then_activate_resumes_from_checkpoints(
    det_home: Path, tmp_path: Path, dask_client: Any, wait_for: Any
) -> None:
    cfg = _config(max_trials=2, max_time=40)
    cfg["hyperparameters"] = _hp(tmp_path, step_seconds=0.05)
    exp = det_jupyter.create_experiment(cfg, counting_trial, cluster=dask_client)
    wait_for(lambda: len(exp.checkpoints()) >= 2, timeout=60, what="both trials to checkpoint")
    exp.pause()
    wait_for(
        lambda: (
            exp.state == ExperimentState.PAUSED and all(t.state == TrialState.PAUSED for t in exp.trials())
        ),
        timeout=60,
        what="trials to pause",
    )
    paused_at = {t.id: t.checkpoints()[-1].steps for t in exp.trials()}
    assert all(0 < s < 40 for s in paused_at.values())
    exp.activate()
    assert exp.wait(timeout=120) == ExperimentState.COMPLETED
    for t in exp.trials():
        assert t.state == TrialState.COMPLETED and t.restarts == 0
        assert f"run 1 starts at step {paused_at[t.id]}" in t.logs()
        training = t.metrics("training")
        assert list(training["steps"]) == list(range(1, 41))  # nothing lost, nothing repeated


def test_kill_cancels_running_and_queued_trials(
    det_home: Path, tmp_path: Path, dask_client: Any, wait_for: Any
) -> None:
    cfg = _config(max_trials=6, max_time=1000, max_concurrent_trials=4)
    cfg["hyperparameters"] = _hp(tmp_path, step_seconds=0.02)
    exp = det_jupyter.create_experiment(cfg, counting_trial, cluster=dask_client)
    wait_for(lambda: sum(t.state == TrialState.ACTIVE for t in exp.trials()) == 2, what="two running trials")
    exp.kill()
    assert exp.wait(timeout=60) == ExperimentState.CANCELED
    trials = exp.trials()
    assert len(trials) == 4  # 2 running on the 2 slots + 2 queued; no replacements after the kill
    assert {t.state for t in trials} == {TrialState.CANCELED}
    assert all(t.metrics("training")["steps"].max() < 1000 for t in trials if not t.metrics("training").empty)


def test_second_process_reads_the_same_store(det_home: Path, dask_client: Any) -> None:
    exp = det_jupyter.create_experiment(_config(max_trials=2), counting_trial, cluster=dask_client)
    exp.wait(timeout=120)
    code = (
        "import json, det_jupyter;"
        f"e = det_jupyter.get_experiment({exp.id});"
        "print(json.dumps({'state': e.state.value, 'trials': [t.best_validation for t in e.trials()],"
        "'best': e.best_trial().id}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DET_JUPYTER_HOME": str(det_home)},
        check=True,
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {
        "state": "COMPLETED",
        "trials": [t.best_validation for t in exp.trials()],
        "best": exp.best_trial().id,
    }


def test_bad_input_is_refused_before_anything_runs(det_home: Path, dask_client: Any) -> None:
    with pytest.raises(det_jupyter.ConfigError, match="max_trails"):
        det_jupyter.create_experiment(
            {**_config(), "searcher": {**_config()["searcher"], "max_trails": 3}},
            counting_trial,
            cluster=dask_client,
        )
    with pytest.raises(det_jupyter.ConfigError, match="not defined in the notebook"):
        det_jupyter.create_experiment(
            {**_config(), "entrypoint": "no_such_function"}, cluster=dask_client, namespace={}
        )
    with pytest.raises(det_jupyter.ClusterError, match="slots_per_trial=3 needs 3 CPU slots"):
        det_jupyter.create_experiment(
            {**_config(), "resources": {"slots_per_trial": 3}}, counting_trial, cluster=dask_client
        )
    assert det_jupyter.list_experiments() == []  # nothing half-created


def test_stop_requests_never_leak_into_another_experiment_with_the_same_ids(
    tmp_path: Path, dask_client: Any, wait_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # store A: experiment 1, killed while two of its runs are queued -> stop flags broadcast to workers
    monkeypatch.setenv("DET_JUPYTER_HOME", str(tmp_path / "a"))
    cfg = _config(max_trials=4, max_time=1000, max_concurrent_trials=4)
    cfg["hyperparameters"] = _hp(tmp_path, step_seconds=0.02)
    killed = det_jupyter.create_experiment(cfg, counting_trial, cluster=dask_client)
    wait_for(
        lambda: sum(t.state == TrialState.ACTIVE for t in killed.trials()) == 2, what="two running trials"
    )
    killed.kill()
    assert killed.wait(timeout=60) == ExperimentState.CANCELED
    # store B: experiment 1 again, same trial ids and run ids; its trials must train to the end
    monkeypatch.setenv("DET_JUPYTER_HOME", str(tmp_path / "b"))
    fresh = det_jupyter.create_experiment(_config(max_trials=4, max_concurrent_trials=4), counting_trial,
                                          cluster=dask_client)  # fmt: skip
    assert fresh.id == killed.id
    assert fresh.wait(timeout=120) == ExperimentState.COMPLETED
    assert [t.metrics("training")["steps"].max() for t in fresh.trials()] == [10, 10, 10, 10]


def test_core_api_load_hook_and_unknown_format(det_home: Path, dask_client: Any) -> None:
    def train(ctx: Any) -> None:
        ctx.report_validation_metrics(1, {"val_loss": ctx.hparams["x"] ** 2})
        with ctx.checkpoint.save(1) as path:
            (path / "weights.json").write_text(json.dumps({"x": ctx.hparams["x"]}))

    def load(path: Path) -> dict[str, float]:
        return dict(json.loads((path / "weights.json").read_text()))

    cfg = _config(max_trials=3, max_time=1)
    with_hook = det_jupyter.create_experiment(cfg, train, cluster=dask_client, load=load)
    assert with_hook.wait(timeout=120) == ExperimentState.COMPLETED
    best = with_hook.best_trial()
    assert with_hook.best_checkpoint().load() == {"x": best.hparams["x"]}

    without = det_jupyter.create_experiment(cfg, train, cluster=dask_client)
    assert without.wait(timeout=120) == ExperimentState.COMPLETED
    with pytest.raises(det_jupyter.CheckpointError, match="no known format"):
        without.best_checkpoint().load()


def reporting_trial(ctx: Any) -> None:
    for step in range(1, 4):
        ctx.report_validation_metrics(step, {"val_loss": abs(ctx.hparams["x"]) + 1.0 / step})


def test_a_search_larger_than_its_window_submits_in_batches_and_runs_every_trial(
    det_home: Path, dask_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """60 trials created at once on 2 slots: at most 4 x 2 = 8 runs are in Dask at a time (MIN_WINDOW
    lowered), handed over in batches of one graph each, and every trial runs once with all its reports."""
    import det_jupyter.engine.controller as controller_module

    monkeypatch.setattr(controller_module, "MIN_WINDOW", 1)
    exp = det_jupyter.create_experiment(
        _config(max_trials=60, max_time=3, max_concurrent_trials=0), reporting_trial, cluster=dask_client
    )
    assert exp.wait(timeout=180) == ExperimentState.COMPLETED, exp.error
    controller = exp._controller
    assert controller is not None and controller.rules is not None and controller.launcher is not None
    assert controller.launcher.capacity() == 2 and controller.rules.window == 8
    assert controller.rules.most_live == 8
    batches = controller.launcher.batches  # type: ignore[attr-defined]
    assert 60 / 8 <= batches < 60
    trials = exp.trials()
    assert len(trials) == 60 and {t.state for t in trials} == {TrialState.COMPLETED}
    assert all(t.restarts == 0 for t in trials)
    assert len(exp.metrics()) == 60 * 3
