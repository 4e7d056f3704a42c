"""The local master as real processes: one per home, runs experiments without the kernel, status/stop,
idle exit, SIGKILL → the next master reclaims (no restart spent, no trial lost, orphans killed).

Every test has its own DET_JUPYTER_HOME; the ``home`` fixture stops its master (or kills it and its
workers) at the end, even on failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import det_jupyter
from det_jupyter import ExperimentState, TrialState
from det_jupyter.cli import main as cli
from det_jupyter.master import ensure_master, running_master
from det_jupyter.master.files import pid_alive
from tests.conftest import wait_for
from tests.master_tests.helpers import master_mode_home, stepping


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh home in master mode (2 CPU workers); its masters are stopped (or killed) afterwards."""
    with master_mode_home(tmp_path / "h", monkeypatch) as path:
        yield path


def config(max_trials: int = 2, max_time: int = 6, **hp: Any) -> dict[str, Any]:
    return {
        "name": "master-test",
        "searcher": {"name": "random", "metric": "val_loss", "max_trials": max_trials, "max_time": max_time,
                     "time_metric": "batches", "max_concurrent_trials": 2},
        "hyperparameters": {"x": {"type": "double", "minval": -1, "maxval": 1}, **hp},
        "max_restarts": 0,
    }  # fmt: skip


def test_one_master_per_home(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = ensure_master()
    assert ensure_master().pid == info.pid  # already running: the same one
    second = subprocess.run(
        [sys.executable, "-m", "det_jupyter.master", "--home", str(home)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert second.returncode == 3
    assert f"pid {info.pid}" in second.stdout and "already runs" in second.stdout
    assert (home / "master.sock").stat().st_mode & 0o777 == 0o600
    assert cli(["master", "start"]) == 0
    assert f"pid {info.pid}" in capsys.readouterr().out
    assert running_master() is not None and running_master().pid == info.pid  # type: ignore[union-attr]


def test_submit_runs_in_the_master_then_status_and_stop(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from det_jupyter.engine import cluster as cluster_module

    exp = det_jupyter.create_experiment(config(), stepping)
    info = running_master()
    assert info is not None
    owners = set()

    def done() -> bool:
        owners.add(exp.store.get_experiment(exp.id).owner)
        return exp.state.is_terminal

    wait_for(done, 120, what="experiment ends")
    assert exp.state == ExperimentState.COMPLETED
    assert {t.state for t in exp.trials()} == {TrialState.COMPLETED} and len(exp.trials()) == 2
    assert any(o and f":{info.pid}:" in o for o in owners)  # the master's controller ran it
    assert cluster_module._embedded.client is None  # this process never started a cluster
    assert exp.dashboard_link == info.dashboard_link
    assert cli(["master", "status"]) == 0
    out = capsys.readouterr().out
    assert f"master pid {info.pid}" in out and "dashboard" in out
    assert cli(["master", "stop"]) == 0
    assert not pid_alive(info.pid) and not (home / "master.json").exists()
    assert cli(["master", "status"]) == 1


def test_idle_exit(home: Path) -> None:
    info = ensure_master(idle_timeout=1.0)
    wait_for(lambda: not pid_alive(info.pid, info.create_time), 60, what="idle master exits")
    assert not (home / "master.json").exists()
    assert all(not pid_alive(w["pid"], w["create_time"]) for w in info.workers)  # its cluster closed


@pytest.mark.slow
def test_sigkilled_master_is_replaced_and_the_experiment_completes(home: Path) -> None:
    exp = det_jupyter.create_experiment(config(max_time=12, step_seconds=0.4), stepping)
    old = running_master()
    assert old is not None and len(old.workers) == 2

    def checkpointed() -> bool:
        trials = exp.trials()
        return len(trials) == 2 and all(t.checkpoints() for t in trials)

    wait_for(checkpointed, 120, what="both trials checkpointed")
    os.kill(old.pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(old.pid), 10, what="master dead")
    assert not exp.state.is_terminal
    orphans = [w["pid"] for w in old.workers if pid_alive(w["pid"], w["create_time"])]
    new = ensure_master()
    assert new.pid != old.pid
    assert all(not pid_alive(p) for p in orphans)  # killed before the new cluster started
    assert exp.wait(timeout=180) == ExperimentState.COMPLETED
    trials = exp.trials()
    assert len(trials) == 2 and {t.state for t in trials} == {TrialState.COMPLETED}
    assert [t.restarts for t in trials] == [0, 0]
    for t in trials:
        steps = sorted(set(t.metrics("validation")["steps"]))
        assert steps == [2, 4, 6, 8, 10, 12]
        assert any("not counted as a restart" in line for line in t.logs())


def test_waiting_on_an_experiment_of_a_dead_master_starts_the_next_one(home: Path) -> None:
    exp = det_jupyter.create_experiment(config(max_time=8, step_seconds=0.3), stepping)
    old = running_master()
    assert old is not None
    wait_for(lambda: any(t.checkpoints() for t in exp.trials()), 120, what="a checkpoint")
    os.kill(old.pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(old.pid), 10, what="master dead")
    assert running_master() is None
    # no submit, no %det attach: exp.wait() itself notices that nobody runs the experiment
    assert exp.wait(timeout=180) == ExperimentState.COMPLETED
    new = running_master()
    assert new is not None and new.pid != old.pid
    assert [t.restarts for t in exp.trials()] == [0, 0]
