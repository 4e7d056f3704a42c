"""A real multi-process Dask cluster on loopback: `dask scheduler` and three `dask worker` processes.

Each worker offers one CPU slot (``--nthreads 1 --resources CPU=1``), as the embedded cluster's
workers do; tests start experiments on it through a ``distributed.Client`` (the controller then runs
in the test process). Everything waits on conditions with deadlines; the processes are ended in the
fixture's teardown, by their own pids.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DASK = str(Path(sys.executable).with_name("dask"))


def _wait(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g}s for {what}")
        time.sleep(0.05)


@dataclass
class ExternalCluster:
    """A scheduler and its workers, started as separate processes."""

    address: str
    scheduler: subprocess.Popen[bytes]
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    log_dir: Path = Path()

    def add_worker(self, name: str) -> None:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        self.workers[name] = subprocess.Popen(
            [
                DASK,
                "worker",
                self.address,
                "--name",
                name,
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--resources",
                "CPU=1",
                "--host",
                "127.0.0.1",
                "--no-dashboard",
                "--memory-limit",
                "0",
            ],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        procs = [*self.workers.values(), self.scheduler]
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def external_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExternalCluster]:
    """`dask scheduler --host 127.0.0.1 --port 0` and 3 single-slot `dask worker` processes."""
    base = tmp_path_factory.mktemp("external")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
        "OMP_NUM_THREADS": "1",
    }
    file = base / "scheduler.json"
    log = open(base / "scheduler.log", "wb")  # noqa: SIM115
    scheduler = subprocess.Popen(
        [
            DASK,
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(file),
        ],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    cluster = ExternalCluster("", scheduler, env=env, log_dir=base)
    try:
        _wait(lambda: file.exists() and file.stat().st_size > 0, 60, "the scheduler file")
        cluster.address = json.loads(file.read_text())["address"]
        for i in range(3):
            cluster.add_worker(f"w{i}")
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def client(external_cluster: ExternalCluster) -> Iterator[Any]:
    """A client of the external cluster, once its 3 workers have joined."""
    from distributed import Client

    client = Client(external_cluster.address, set_as_default=False, timeout="30s")
    _wait(lambda: len(client.scheduler_info(n_workers=-1)["workers"]) == 3, 120, "3 workers")
    yield client
    client.close()
