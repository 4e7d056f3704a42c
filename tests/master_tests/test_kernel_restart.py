"""A kernel restart costs nothing in master mode: a real kernel (nbclient) runs ``%%det_experiment``,
is restarted mid-run, and the new kernel re-attaches; the experiment COMPLETES with every trial and no
restart spent, without any user action."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import nbformat
import pytest
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from det_jupyter.master import read_info, stop_master
from det_jupyter.master.files import pid_alive
from det_jupyter.master.process import kill_orphans
from det_jupyter.states import ExperimentState, TrialState
from det_jupyter.store import Store
from tests.conftest import wait_for

pytestmark = pytest.mark.slow

SETUP = """\
%load_ext det_jupyter
import time

def train(ctx):
    start = 0
    with ctx.checkpoint.restore() as path:
        if path is not None:
            start = int((path / "step").read_text())
    for step in range(start + 1, ctx.searcher.max_time + 1):
        time.sleep(0.4)
        ctx.report_training_metrics(step, {"loss": 1.0 / step})
        if step % 2 == 0:
            ctx.report_validation_metrics(step, {"val_loss": abs(ctx.hparams["x"]) + 1.0 / step})
            with ctx.checkpoint.save(step) as out:
                (out / "step").write_text(str(step))
"""

EXPERIMENT = """\
%%det_experiment train -o exp
name: survives-restart
hyperparameters:
  x: {type: double, minval: -1, maxval: 1}
searcher: {name: random, metric: val_loss, max_trials: 2, max_concurrent_trials: 2, time_metric: batches, max_time: 30}
max_restarts: 0
"""

ATTACH = """\
%load_ext det_jupyter
%det attach 1
import det_jupyter
print("final:", det_jupyter.get_experiment(1).wait(timeout=240).value)
"""


def test_a_kernel_restart_mid_run_costs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("DET_JUPYTER_HOME", str(home))  # the kernel inherits the environment
    monkeypatch.setenv("DET_JUPYTER_MASTER", "process")
    monkeypatch.setenv("DET_JUPYTER_MASTER_WORKERS", "2")
    monkeypatch.delenv("DET_JUPYTER_CLUSTER", raising=False)
    nb = new_notebook(cells=[new_code_cell(SETUP), new_code_cell(EXPERIMENT), new_code_cell(ATTACH)])
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    try:
        with client.setup_kernel():
            client.execute_cell(nb.cells[0], 0)
            client.execute_cell(nb.cells[1], 1)
            store = Store(home / "det_jupyter.db")

            def running_with_checkpoints() -> bool:
                trials = store.list_trials(1)
                return len(trials) == 2 and all(store.checkpoints(trial_id=t.id) for t in trials)

            # trials of 30 steps x 0.4 s: still far from done when the restart (seconds on a loaded
            # machine) is over, so "still running in the master" below is no race
            wait_for(running_with_checkpoints, 120, what="both trials checkpointed")
            assert not store.get_experiment(1).state.is_terminal
            kernel_pid = client.km.provisioner.process.pid  # type: ignore[union-attr]
            run_sync(client.km.restart_kernel)(now=True)
            run_sync(client.kc.wait_for_ready)(timeout=60)
            assert not pid_alive(kernel_pid)
            assert not store.get_experiment(1).state.is_terminal  # still running in the master
            client.execute_cell(nb.cells[2], 2)
        text = "".join(o.get("text", "") for o in nb.cells[2].outputs)
        assert "final: COMPLETED" in text, nbformat.writes(nb)
        assert store.get_experiment(1).state == ExperimentState.COMPLETED
        trials = store.list_trials(1)
        assert len(trials) == 2 and {t.state for t in trials} == {TrialState.COMPLETED}
        assert [t.restarts for t in trials] == [0, 0]
        for t in trials:
            validated = sorted({m.steps for m in store.metrics(trial_id=t.id, kind="validation")})
            assert validated == list(range(2, 31, 2))
    finally:
        info = read_info(home)
        try:
            stop_master(home, timeout=30)
        finally:
            if info is not None:
                if pid_alive(info.pid, info.create_time):
                    os.kill(info.pid, signal.SIGKILL)
                kill_orphans(info)
