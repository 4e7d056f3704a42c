"""Fault injection (issue 9): real worker processes SIGKILLed at chosen points, a hung trial, a killed
controller process; each finding of the issue is a test here.

One grid experiment on the session's LocalCluster runs a trial per fault (``fault`` hyperparameter);
each trial kills its own worker process with ``os.kill(os.getpid(), SIGKILL)`` once (a marker file),
at the point the finding names. The tests then read what the store, the storage and every reader say.
The no-progress timeout is tested on the real loop with the FakeLauncher harness (no sleeps: a fake
clock), and the controller-kill loop in subprocesses with a random delay per seed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import det_jupyter
from det_jupyter import ExperimentState, TrialState
from det_jupyter.store import Store
from det_jupyter.worker.events import Log, LogLine

from .test_controller_rules import Harness, _config, harness_factory, wait_for  # noqa: F401

FAULTS = ["after_checkpoint_plus_4", "after_commit", "print_then_die", "mid_write"]


def faulty_trial(ctx: Any) -> None:
    """10 steps; validation + checkpoint every 5; dies once (SIGKILL of its own worker) as ``fault`` says."""
    import os as _os
    import signal as _signal
    import time as _time
    from pathlib import Path as _Path

    fault = ctx.hparams["fault"]
    marker = _Path(ctx.hparams["marker_dir"]) / f"died-{ctx.trial_id}"

    def die() -> None:
        marker.write_text("died")
        _os.kill(_os.getpid(), _signal.SIGKILL)

    start = 0
    with ctx.checkpoint.restore() as path:
        if path is not None:
            start = int((path / "step").read_text())
    print(f"run {ctx.run_id} starts at step {start}")
    for step in range(start + 1, 11):
        first_run = not marker.exists()
        _time.sleep(0.05)
        ctx.report_training_metrics(step, {"loss": step + 100.0 * ctx.run_id})
        if fault == "after_checkpoint_plus_4" and step == 9 and first_run:
            ctx.report_validation_metrics(step, {"val_loss": 9.0})  # sent at once: a row to supersede
            _time.sleep(0.5)
            die()
        if fault == "print_then_die" and step == 3 and first_run:
            print("a lonely line")
            _time.sleep(0.6)  # the line must be out within ~0.2 s, with no further print
            die()
        if step % 5 == 0:
            ctx.report_validation_metrics(step, {"val_loss": 1.0 / step})
            with ctx.checkpoint.save(step) as out:
                (out / "step").write_text(str(step))
                if fault == "mid_write" and step == 10 and first_run:
                    (out / "weights").write_bytes(b"half")
                    die()  # a checkpoint half written when its worker died
            if fault == "after_commit" and step == 5 and first_run:
                die()  # right after the commit: its events are still in the worker's send buffer


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory: pytest.TempPathFactory, dask_client: Any) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("faults")
    saved = os.environ.get("DET_JUPYTER_HOME")
    os.environ["DET_JUPYTER_HOME"] = str(home / "det_home")
    markers = home / "markers"
    markers.mkdir()
    cfg = {
        "name": "faults",
        "searcher": {
            "name": "grid",
            "metric": "val_loss",
            "max_time": 10,
            "time_metric": "batches",
            "max_concurrent_trials": 2,
        },
        "hyperparameters": {
            "fault": {"type": "categorical", "vals": FAULTS},
            "marker_dir": str(markers),
        },
        "max_restarts": 2,
        "checkpoint_storage": {"save_trial_latest": 5, "save_trial_best": 5},
    }
    try:
        exp = det_jupyter.create_experiment(cfg, faulty_trial, cluster=dask_client)
        assert exp.wait(timeout=240) == ExperimentState.COMPLETED
        yield {"exp": exp, "home": home / "det_home", "markers": markers}
    finally:
        if saved is None:
            os.environ.pop("DET_JUPYTER_HOME", None)
        else:
            os.environ["DET_JUPYTER_HOME"] = saved


def _trial(run: dict[str, Any], fault: str) -> Any:
    (trial,) = [t for t in run["exp"].trials() if t.hparams["fault"] == fault]
    assert trial.state == TrialState.COMPLETED and (run["markers"] / f"died-{trial.id}").exists()
    return trial


def _resumed_at(trial: Any, steps: int) -> bool:
    """A later run (a worker lost while restarting may cost one more) started from ``steps``."""
    return any(
        line.endswith(f"starts at step {steps}") and not line.startswith("run 0 ") for line in trial.logs()
    )


@pytest.mark.slow
def test_a_rerun_supersedes_the_lost_runs_reports_in_every_reader(fault_run: dict[str, Any]) -> None:
    from det_jupyter.notebook.widget.model import WidgetModel
    from det_jupyter.server.service import ExperimentService

    exp = fault_run["exp"]
    trial = _trial(fault_run, "after_checkpoint_plus_4")
    db = fault_run["home"] / "det_jupyter.db"
    with sqlite3.connect(db) as raw:  # the fault happened: run 0's reports past step 5 are kept, superseded
        hidden = raw.execute(
            "SELECT kind, steps FROM metrics WHERE trial_id = ? AND superseded = 1 ORDER BY kind, steps",
            (trial.id,),
        ).fetchall()
    assert ("validation", 9) in hidden and all(steps > 5 for _, steps in hidden)
    frame = exp.metrics()
    keys = list(zip(frame["trial_id"], frame["kind"], frame["steps"], strict=True))
    assert len(keys) == len(set(keys)), [k for k, n in Counter(keys).items() if n > 1]
    mine = frame[frame.trial_id == trial.id]
    assert list(mine[mine.kind == "training"]["steps"]) == list(range(1, 11))
    assert list(mine[mine.kind == "validation"]["steps"]) == [5, 10]
    assert 0 not in set(mine[mine.steps > 5]["run_id"])
    # the widget's model (incremental reads) and the REST API say the same
    model = WidgetModel(Store(db), exp.id)
    model.refresh()
    steps, values = model.trial_series("training", trial.id)
    assert steps == list(range(1, 11)) and all(v > 100.0 for v in values[5:])  # the rerun's values
    assert model.trial_series("validation", trial.id)[0] == [5, 10]
    service = ExperimentService(store_path=str(db))
    series = {s["kind"]: s for s in service.trial_metrics(trial.id, kind=None, max_points=None)}
    assert series["training"]["steps"] == list(range(1, 11))
    assert series["validation"]["steps"] == [5, 10]


@pytest.mark.slow
def test_a_checkpoint_committed_before_its_worker_died_is_registered_with_its_validation(
    fault_run: dict[str, Any],
) -> None:
    trial = _trial(fault_run, "after_commit")
    assert list(trial.metrics("validation")["steps"]) == [5, 10]  # the step-5 validation is not lost
    ckpts = trial.checkpoints()
    assert sorted(c.steps for c in ckpts) == [5, 10]
    assert _resumed_at(trial, 5)
    step5 = next(c for c in ckpts if c.steps == 5)
    assert step5.metric == pytest.approx(0.2)  # scored, so GC ranks it
    # nothing in storage the store does not know of (GC can reach every checkpoint)
    root = fault_run["home"] / "checkpoints"
    store = Store(fault_run["home"] / "det_jupyter.db")
    known = {c.uuid for c in store.checkpoints(experiment_id=fault_run["exp"].id)}
    on_disk = {p.name for p in root.iterdir() if p.name != "latest" and not p.name.startswith(".tmp-")}
    assert on_disk <= known


@pytest.mark.slow
def test_a_print_is_sent_within_the_flush_interval_even_if_the_worker_then_dies(
    fault_run: dict[str, Any],
) -> None:
    trial = _trial(fault_run, "print_then_die")
    logs = trial.logs()
    assert "a lonely line" in logs
    assert logs.index("a lonely line") < max(i for i, line in enumerate(logs) if line.startswith("run "))


@pytest.mark.slow
def test_a_checkpoint_half_written_when_its_worker_died_is_never_registered_or_restored(
    fault_run: dict[str, Any],
) -> None:
    trial = _trial(fault_run, "mid_write")
    assert _resumed_at(trial, 5)  # restored from the last complete checkpoint
    assert [c.steps for c in trial.checkpoints()] == [5, 10]
    rows = Store(fault_run["home"] / "det_jupyter.db").checkpoints(trial_id=trial.id, include_deleted=True)
    assert 0 not in {c.run_id for c in rows if c.steps == 10}  # run 0's half never registered
    root = fault_run["home"] / "checkpoints"
    assert [p.name for p in root.iterdir() if p.name.startswith(".tmp-")] == []  # removed at the rerun


# --- a hung trial (the real loop, a fake launcher and clock) ---------------------------------------


@pytest.mark.parametrize("policy", ["restart", "error"])
def test_a_run_silent_past_max_no_progress_is_cut_off(
    harness_factory: Callable[..., Harness],  # noqa: F811 (the imported fixture)
    policy: str,
) -> None:
    h = harness_factory(_config(max_restarts=1, max_no_progress=30, no_progress_policy=policy))
    first = h.run(1, 0)
    h.launcher.start(first)
    h.launcher.validate(first, 5, 0.5)
    h.settle()
    h.clock.advance(29)  # within the limit: nothing happens
    h.launcher.send(first, Log((LogLine(0.0, "still thinking"),)))  # a log line is not progress
    h.settle()
    assert not h.launcher.cancels
    h.clock.advance(2)
    wait_for(lambda: h.launcher.cancels == [first.run_key], what="the silent run cut off")
    assert h.launcher.restarted == ["tcp://w1"]
    if policy == "restart":
        second = h.run(1, 1)
        h.launcher.complete(second)
        h.ends(ExperimentState.COMPLETED)
        assert h.trial(1).restarts == 1
    else:
        h.ends(ExperimentState.ERROR)
        assert h.trial(1).state == TrialState.ERROR
    line = next(r.line for r in h.store.logs(1) if "made no progress" in r.line)
    assert "30s (max_no_progress)" in line and f"no_progress_policy: {policy}" in line
    assert "made no progress" in (h.trial(1).error or "")


def test_a_stopping_or_queued_run_is_never_cut_off_for_no_progress(
    harness_factory: Callable[..., Harness],  # noqa: F811 (the imported fixture)
) -> None:
    h = harness_factory(_config(max_trials=2, concurrent=2, max_no_progress=30))
    queued = h.run(2, 0)  # never started: waiting for a slot is not a hang
    first = h.run(1, 0)
    h.launcher.start(first)
    h.clock.advance(1000)
    h.settle()
    assert h.launcher.cancels == []
    h.launcher.complete(first)
    h.launcher.complete(queued)
    h.ends(ExperimentState.COMPLETED)


# --- durability: the controlling process killed at random points -------------------------------------

_CONTROLLER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import det_jupyter

    def train(ctx):
        start = 0
        with ctx.checkpoint.restore() as path:
            if path is not None:
                start = int((path / "step").read_text())
        for step in range(start + 1, 9):
            time.sleep(0.05)
            ctx.report_training_metrics(step, {"loss": 1.0 / step})
            if step % 3 == 0 or step == 8:
                ctx.report_validation_metrics(step, {"val_loss": ctx.hparams["x"] ** 2 + 1.0 / step})
                with ctx.checkpoint.save(step) as out:
                    (out / "step").write_text(str(step))

    config = {
        "name": "kill-me",
        "searcher": {"name": "random", "metric": "val_loss", "max_trials": 3, "max_time": 8,
                     "time_metric": "batches", "max_concurrent_trials": 2},
        "hyperparameters": {"x": {"type": "double", "minval": -1, "maxval": 1}},
        "reproducibility": {"experiment_seed": int(sys.argv[2])},
    }
    exp = det_jupyter.create_experiment(config, train, cluster=sys.argv[1])
    print("created", exp.id, flush=True)
    exp.wait(timeout=300)
    print("ended", exp.state.value, flush=True)
    """
)

KILL_SEEDS = 5


@pytest.mark.slow
def test_killing_the_controlling_process_at_random_points_leaves_a_sound_resumable_store(
    det_home: Path, tmp_path: Path, dask_client: Any
) -> None:
    script = tmp_path / "controller.py"
    script.write_text(_CONTROLLER_SCRIPT)
    address = dask_client.scheduler.address
    figures = {"kills": 0, "integrity_ok": 0, "resumed_completed": 0, "already_ended": 0}
    for seed in range(KILL_SEEDS):
        delay = random.Random(seed).uniform(0.0, 1.5)
        proc = subprocess.Popen(  # the controller is the script's own thread: that is what gets killed
            [sys.executable, str(script), address, str(seed)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "DET_JUPYTER_MASTER": "inprocess"},
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().split()
            assert line[:1] == ["created"], line
            exp_id = int(line[1])
            time.sleep(delay)  # the random kill point (the thing under test, not a wait for a condition)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        figures["kills"] += 1
        with sqlite3.connect(det_home / "det_jupyter.db") as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        figures["integrity_ok"] += 1
        exp = det_jupyter.get_experiment(exp_id)
        if exp.state.is_terminal:
            figures["already_ended"] += 1
        else:
            exp = exp.resume(cluster=dask_client)
        assert exp.wait(timeout=180) == ExperimentState.COMPLETED
        trials = exp.trials()
        assert len(trials) == 3 and {t.state for t in trials} == {TrialState.COMPLETED}
        frame = exp.metrics()
        keys = list(zip(frame["trial_id"], frame["kind"], frame["steps"], strict=True))
        assert len(keys) == len(set(keys))
        figures["resumed_completed"] += 1
    print("controller kills:", json.dumps(figures))
    assert figures["resumed_completed"] == KILL_SEEDS


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Sending large graph:UserWarning")  # Dask's note on the 50 MB task
def test_a_50_mb_global_stays_out_of_the_db_and_the_experiment_still_runs_and_loads(
    det_home: Path, dask_client: Any
) -> None:
    big = os.urandom(50 * 2**20)

    def make_train(blob: bytes) -> Callable[[Any], None]:
        def train(ctx: Any) -> None:
            ctx.report_validation_metrics(1, {"val_loss": len(blob) / 2**20})
            with ctx.checkpoint.save(1) as out:
                (out / "n").write_text(str(len(blob)))

        return train

    cfg = {
        "name": "big-global",
        "searcher": {"name": "single", "metric": "val_loss", "max_length": {"batches": 1}},
        "hyperparameters": {},
    }
    from det_jupyter.engine.presubmit import LargeGlobalWarning

    with pytest.warns(LargeGlobalWarning, match="50 MB"):  # still warned; stored out of the db now
        exp = det_jupyter.create_experiment(cfg, make_train(big), cluster=dask_client)
    assert exp.wait(timeout=180) == ExperimentState.COMPLETED, (exp.error, exp.trials()[0].error)
    assert exp.trials()[0].best_validation == 50.0
    db = det_home / "det_jupyter.db"
    size = sum(p.stat().st_size for p in det_home.glob("det_jupyter.db*"))
    print(f"db + wal + shm with a 50 MB global: {size / 2**20:.2f} MiB")
    assert size < 5 * 2**20
    (blob_file,) = (det_home / "blobs").iterdir()
    assert blob_file.stat().st_size > 50 * 2**20
    store = Store(db)  # a fresh reader loads the definition back, and the best checkpoint with it
    entrypoint, _ = store.get_entrypoint(exp.id)
    assert len(entrypoint) > 50 * 2**20
    assert (exp.best_checkpoint().download(det_home / "dl") / "n").read_text() == str(len(big))
