"""An existing cluster started by hand (`dask scheduler` + `dask worker` processes), and a controller
whose process dies mid-experiment being resumed from the store by another process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import det_jupyter
from det_jupyter import ExperimentState, TrialState

pytestmark = pytest.mark.slow

DASK = str(Path(sys.executable).parent / "dask")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def external_address() -> Iterator[str]:
    """A scheduler and two workers as separate OS processes: one with CPU slots, one declaring nothing."""
    from distributed import Client

    address = f"tcp://127.0.0.1:{_free_port()}"
    port = address.rsplit(":", 1)[1]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"], env=env
        )
    ]
    procs.append(subprocess.Popen([DASK, "worker", address, "--nthreads", "1", "--resources", "CPU=1",
                                   "--no-dashboard", "--name", "slot-worker"], env=env))  # fmt: skip
    try:
        with Client(address, timeout="60s", set_as_default=False) as client:
            client.wait_for_workers(1, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def quick_trial(ctx: Any) -> None:
    for step in range(1, ctx.searcher.max_time + 1):
        ctx.report_training_metrics(step, {"loss": 1.0 / step})
    ctx.report_validation_metrics(ctx.searcher.max_time, {"val_loss": ctx.hparams["x"] ** 2})


def test_experiment_runs_on_an_external_cluster_by_address(det_home: Path, external_address: str) -> None:
    cfg = {
        "searcher": {
            "name": "random",
            "metric": "val_loss",
            "max_trials": 3,
            "max_time": 5,
            "time_metric": "batches",
        },
        "hyperparameters": {"x": {"type": "double", "minval": -1, "maxval": 1}},
    }
    exp = det_jupyter.create_experiment(cfg, quick_trial, cluster=external_address)
    assert exp.wait(timeout=120) == ExperimentState.COMPLETED
    trials = exp.trials()
    assert [t.state for t in trials] == [TrialState.COMPLETED] * 3
    workers = {det_jupyter.get_experiment(exp.id).store.get_trial(t.id).worker for t in trials}
    assert len(workers) == 1 and next(iter(workers)).startswith("tcp://127.0.0.1:")
    assert exp.store.get_experiment(exp.id).cluster_address == external_address


def test_unreachable_address_is_a_clear_error(det_home: Path) -> None:
    with pytest.raises(det_jupyter.ClusterError, match="cannot reach a Dask scheduler"):
        det_jupyter.cluster(f"tcp://127.0.0.1:{_free_port()}")


_DRIVER = textwrap.dedent(
    """
    import sys, time, det_jupyter

    def slow_trial(ctx):
        start = 0
        with ctx.checkpoint.restore() as path:
            if path is not None:
                start = int((path / "step").read_text())
        print(f"run {ctx.run_id} starts at step {start}")
        for step in range(start + 1, ctx.searcher.max_time + 1):
            time.sleep(0.05)
            ctx.report_training_metrics(step, {"loss": 1.0 / step})
            if step % 5 == 0:
                ctx.report_validation_metrics(step, {"val_loss": ctx.hparams["x"] ** 2 + 1.0 / step})
                with ctx.checkpoint.save(step) as out:
                    (out / "step").write_text(str(step))

    cfg = {"searcher": {"name": "random", "metric": "val_loss", "max_trials": 3, "max_time": 40,
                        "time_metric": "batches", "max_concurrent_trials": 1},
           "hyperparameters": {"x": {"type": "double", "minval": -1, "maxval": 1}},
           "reproducibility": {"experiment_seed": 7}}
    exp = det_jupyter.create_experiment(cfg, slow_trial, cluster=sys.argv[1])
    print(exp.id, flush=True)
    exp.wait()
    """
)


def test_experiment_resumes_after_its_controller_process_dies(
    det_home: Path, tmp_path: Path, dask_client: Any, wait_for: Any
) -> None:
    script = tmp_path / "driver.py"
    script.write_text(_DRIVER)
    address = dask_client.scheduler.address
    driver = subprocess.Popen(  # its controller is the driver's own thread: that is what dies
        [sys.executable, str(script), address],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "DET_JUPYTER_MASTER": "inprocess"},
    )
    assert driver.stdout is not None
    exp = det_jupyter.get_experiment(int(driver.stdout.readline()))
    wait_for(
        lambda: any(c.steps >= 10 for c in exp.checkpoints()), timeout=90, what="a checkpoint at step 10+"
    )
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    assert exp.state == ExperimentState.ACTIVE  # nobody runs it now

    exp.resume(cluster=dask_client)
    assert exp.wait(timeout=180) == ExperimentState.COMPLETED
    trials = exp.trials()
    assert len(trials) == 3  # the searcher resumed exactly: no trial created twice
    assert all(t.state == TrialState.COMPLETED for t in trials)
    first = trials[0]
    resumed_from = [line for line in first.logs() if line.startswith("run 1 starts at step ")]
    assert resumed_from and int(resumed_from[0].rsplit(" ", 1)[1]) >= 10
