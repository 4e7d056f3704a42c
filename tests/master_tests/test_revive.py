"""A master that died leaves its experiments ACTIVE; the CLI and the Jupyter server bring one back.

``det-jupyter experiment list`` (a real subprocess) and the server extension (pytest_jupyter's
``jp_serverapp`` / ``jp_fetch``, as ``tests/server_tests`` use them) call ``revive_if_orphaned``: an
experiment left by a SIGKILLed master completes with no other action. Nothing starts when nothing
needs it, and ``c.ExperimentService.revive_master = False`` turns the server's part off. Every test has
its own DET_JUPYTER_HOME; the ``home`` fixture stops every master started there, even on failure.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_jupyter.jupyter_core import *  # noqa: F403
from pytest_jupyter.jupyter_server import *  # noqa: F403
from pytest_jupyter.pytest_tornasync import *  # noqa: F403
from traitlets.config import Config

import det_jupyter
from det_jupyter import Experiment, ExperimentState
from det_jupyter.master import (
    orphaned_experiments,
    read_info,
    revive_if_orphaned,
    running_master,
    serves_store,
)
from det_jupyter.master.files import pid_alive
from det_jupyter.master.process import kill_orphans
from det_jupyter.server.service import SETTINGS_KEY, ExperimentService
from det_jupyter.states import ControlAction
from det_jupyter.store import Store
from tests.conftest import wait_for
from tests.master_tests.helpers import master_mode_home, masters_of, stepping


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh home in master mode (1 CPU worker); every master started there is stopped afterwards."""
    with master_mode_home(tmp_path / "h", monkeypatch, workers=1) as path:
        yield path


def config(max_time: int = 6, step_seconds: float = 0.0) -> dict[str, Any]:
    return {
        "name": "revive-test",
        "searcher": {"name": "random", "metric": "val_loss", "max_trials": 1, "max_time": max_time,
                     "time_metric": "batches"},
        "hyperparameters": {"x": {"type": "double", "minval": -1, "maxval": 1}, "step_seconds": step_seconds},
        "max_restarts": 0,
    }  # fmt: skip


def orphan_by_sigkill(home: Path, *, checkpointed: bool) -> Experiment:
    """Submit, let the master claim the experiment (and checkpoint, if asked), then SIGKILL the master."""
    exp = det_jupyter.create_experiment(config(max_time=10, step_seconds=0.3), stepping)
    master = running_master()
    assert master is not None

    def far_enough() -> bool:
        trials = exp.trials()
        owned = bool(exp.store.get_experiment(exp.id).owner) and bool(trials)
        return owned and (not checkpointed or bool(trials[0].checkpoints()))

    wait_for(far_enough, 120, what="the master runs (and checkpoints) the experiment")
    os.kill(master.pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(master.pid), 10, what="master dead")
    kill_orphans(master)  # its worker would keep reporting; the next master kills it anyway
    assert running_master() is None and not masters_of(home)
    assert exp.state == ExperimentState.ACTIVE
    assert orphaned_experiments(exp.store) == [exp.id]
    return exp


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "det_jupyter.cli", *args], capture_output=True, text=True, timeout=180,
        env=dict(os.environ),
    )  # fmt: skip


def _rows(home: Path) -> Store:
    """The home's store with an experiment in every state that needs no master.

    COMPLETED; PAUSED with no pending request; ACTIVE owned by this live process with a fresh heartbeat.
    """
    store = Store(home / "det_jupyter.db")
    done = store.create_experiment(name="done", config={}, entrypoint=b"", seed=0)
    store.update_experiment(done, state=ExperimentState.COMPLETED, ended_at=time.time())
    paused = store.create_experiment(name="paused", config={}, entrypoint=b"", seed=0)
    store.update_experiment(paused, state=ExperimentState.PAUSED)
    live = store.create_experiment(name="live", config={}, entrypoint=b"", seed=0)
    store.update_experiment(live, owner=f"{socket.gethostname()}:{os.getpid()}:test", heartbeat=time.time())
    assert orphaned_experiments(store) == []
    return store


# --- the rule --------------------------------------------------------------------------------------


def test_the_rule_without_any_master(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert revive_if_orphaned(home) is None  # no store yet: nothing to look at, nothing created
    assert not (home / "det_jupyter.db").exists()
    store = _rows(home)
    paused = next(r.id for r in store.list_experiments() if r.name == "paused")
    store.add_request(paused, ControlAction.ACTIVATE)  # being activated: now it needs a master
    assert orphaned_experiments(store) == [paused]
    store.update_experiment(
        next(r.id for r in store.list_experiments() if r.name == "live"), heartbeat=time.time() - 3600
    )  # a live pid but a stale heartbeat (a hung owner): free too
    assert len(orphaned_experiments(store)) == 2
    monkeypatch.setenv("DET_JUPYTER_MASTER", "inprocess")  # no master wanted
    assert revive_if_orphaned(home) is None and not masters_of(home)
    assert serves_store(home / "det_jupyter.db") and not serves_store(home / "other.db")


def test_nothing_to_revive_starts_nothing_from_the_cli(home: Path) -> None:
    _rows(home)
    for args in (["experiment", "list"], ["experiment", "describe", "1"], ["e", "logs", "2"]):
        done = _cli(*args)
        assert done.returncode == 0, done.stderr
        assert "started the master" not in done.stderr
    assert "done" in _cli("experiment", "list").stdout
    assert not masters_of(home) and read_info(home) is None


def test_a_store_elsewhere_revives_nothing(home: Path, tmp_path: Path) -> None:
    other = Store(tmp_path / "elsewhere.db")
    other.create_experiment(name="orphan", config={}, entrypoint=b"", seed=0)
    done = _cli("--store", str(other.path), "experiment", "list")
    assert done.returncode == 0 and "orphan" in done.stdout
    assert not masters_of(home) and read_info(home) is None


# --- the CLI ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_experiment_list_brings_back_a_sigkilled_masters_experiment(home: Path) -> None:
    exp = orphan_by_sigkill(home, checkpointed=True)
    done = _cli("experiment", "list")
    assert done.returncode == 0, done.stderr
    assert f"{exp.id:>4}  ACTIVE" in done.stdout
    new = running_master()
    assert new is not None and f"started the master (pid {new.pid})" in done.stderr
    assert exp.wait(timeout=120) == ExperimentState.COMPLETED  # no other action
    (trial,) = exp.trials()
    assert trial.restarts == 0  # a lost master is not a trial failure
    assert "COMPLETED" in _cli("experiment", "list").stdout


# --- the server extension --------------------------------------------------------------------------


@pytest.fixture
def service_config() -> dict[str, Any]:
    """``c.ExperimentService`` settings (parametrized by tests that change them)."""
    return {}


@pytest.fixture
def jp_server_config(home: Path, service_config: dict[str, Any]) -> Config:
    """A Jupyter server with only our extension, over the home's own store (no store_path)."""
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"det_jupyter.server": True, "jupyter_server_terminals": False}
            },
            "ExperimentService": dict(service_config),
        }
    )


def _service(server_app: Any) -> ExperimentService:
    service = server_app.web_app.settings[SETTINGS_KEY]
    assert isinstance(service, ExperimentService)
    return service


def _settle(service: ExperimentService) -> None:
    """Wait until the service's background look (if any) has finished."""
    thread = service._revive_thread
    if thread is not None:
        thread.join(180)
        assert not thread.is_alive()


def _fetch_list(loop: Any, jp_fetch: Any) -> dict[str, Any]:
    import json

    response = loop.run_until_complete(jp_fetch("det-jupyter", "api", "experiments", method="GET"))
    return dict(json.loads(response.body))


@pytest.fixture
def orphan(home: Path) -> Experiment:
    """An experiment a SIGKILLed master left ACTIVE, made before the server starts (argument order)."""
    return orphan_by_sigkill(home, checkpointed=False)


@pytest.mark.slow
def test_the_server_extension_brings_it_back_when_it_loads(
    orphan: Experiment, home: Path, jp_serverapp: Any, jp_fetch: Any, jp_asyncio_loop: Any
) -> None:
    service = _service(jp_serverapp)
    assert service.path == home / "det_jupyter.db"
    _settle(service)  # the load hook's look ran on its own thread
    new = running_master()
    assert new is not None
    assert orphan.wait(timeout=120) == ExperimentState.COMPLETED
    listed = _fetch_list(jp_asyncio_loop, jp_fetch)["experiments"]
    assert [(e["id"], e["state"]) for e in listed] == [(orphan.id, "COMPLETED")]


def test_the_server_starts_nothing_when_nothing_needs_it(
    home: Path, jp_serverapp: Any, jp_fetch: Any, jp_asyncio_loop: Any
) -> None:
    _rows(home)
    service = _service(jp_serverapp)
    _settle(service)
    service._revive_at = float("-inf")  # let the listing look again at once
    assert _fetch_list(jp_asyncio_loop, jp_fetch)["total"] == 3
    _settle(service)
    assert service.maybe_revive() is None  # within REVIVE_INTERVAL of the last look: not again
    assert not masters_of(home) and read_info(home) is None


@pytest.mark.parametrize("service_config", [{"revive_master": False}])
def test_the_setting_turns_it_off(home: Path, jp_serverapp: Any, jp_fetch: Any, jp_asyncio_loop: Any) -> None:
    store = Store(home / "det_jupyter.db")
    orphan = store.create_experiment(name="orphan", config={}, entrypoint=b"", seed=0)
    assert orphaned_experiments(store) == [orphan]  # it would be revived...
    service = _service(jp_serverapp)
    assert service.revive_master is False
    assert service._revive_thread is None  # ...but nothing looked at load
    assert _fetch_list(jp_asyncio_loop, jp_fetch)["total"] == 1
    assert service.maybe_revive(force=True) is None
    assert not any(t.name == "det-jupyter-revive" and t.is_alive() for t in threading.enumerate())
    assert not masters_of(home) and read_info(home) is None
