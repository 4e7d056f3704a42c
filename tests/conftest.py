"""Shared fixtures: one real Dask LocalCluster (worker processes) per test session, a fresh store per test."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import pytest


@pytest.fixture(scope="session")
def dask_client() -> Iterator[object]:
    """A real cluster of 2 single-thread worker processes with CPU slots, as the embedded default makes."""
    from distributed import Client

    from det_jupyter.engine.cluster import local_cluster

    cluster = local_cluster(n_workers=2, gpus=[], dashboard=False)
    client = Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="session", autouse=True)
def _no_master_outlives_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A safety net: ``det_jupyter.master`` processes serving this session's tmp homes are stopped at its end.

    Masters are detached on purpose (a kernel restart must not touch them), so a test that fails
    before stopping its master would leave it running until its idle timeout; tests stop their own.
    Only masters whose ``--home`` lies under this session's base temp dir are touched (another pytest
    session on the machine keeps its own).
    """
    import psutil

    base = str(tmp_path_factory.getbasetemp().resolve())
    yield
    leftovers = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if "det_jupyter.master" in cmdline and "--home" in cmdline:
            home = cmdline[cmdline.index("--home") + 1] if cmdline.index("--home") + 1 < len(cmdline) else ""
            if str(Path(home).resolve()).startswith(base + os.sep):
                leftovers.append(proc)
                proc.terminate()
    _gone, alive = psutil.wait_procs(leftovers, timeout=30)
    for proc in alive:
        proc.kill()


@pytest.fixture
def det_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh DET_JUPYTER_HOME (store file and default checkpoint root) for one test; a master that a
    submission there started is stopped when the test ends (masters are detached on purpose and would
    otherwise idle for minutes, taking CPU from the tests that follow)."""
    home = tmp_path / "det_home"
    monkeypatch.setenv("DET_JUPYTER_HOME", str(home))
    yield home
    if (home / "master.json").exists():
        from tests.master_tests.helpers import stop_all_masters

        stop_all_masters(home)


def wait_for(
    condition: Callable[[], object], timeout: float = 60.0, interval: float = 0.05, what: str = ""
) -> object:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., object]:
    """The :func:`wait_for` poller, as a fixture."""
    return wait_for
