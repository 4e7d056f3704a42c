"""Real ``dask scheduler`` / ``dask worker`` processes for tests, ended (and waited for) whatever happens.

Reuses the helpers of ``tests/engine_tests/test_external_cluster.py`` (the ``dask`` executable and
``_free_port``). Waits are on conditions with timeouts (``Client.wait_for_workers``, a worker's
address appearing in the scheduler), never fixed sleeps.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine_tests.test_external_cluster import DASK, _free_port

__all__ = ["DASK", "DaskProcesses", "free_port"]

free_port = _free_port


class DaskProcesses:
    """One scheduler and any number of workers as OS processes; :meth:`close` ends them all.

    ``wrap`` prefixes a command (e.g. ``["ip", "netns", "exec", "ns1"]``) to run it elsewhere.
    """

    def __init__(self, log_dir: Path, host: str = "127.0.0.1") -> None:
        self.log_dir = log_dir
        self.host = host
        self.port = _free_port()
        self.address = f"tcp://{host}:{self.port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._client: Any = None

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None, wrap: Sequence[str]) -> None:
        full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
        log = (self.log_dir / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [*wrap, *argv], env=full_env, stdout=log, stderr=subprocess.STDOUT
        )

    def start_scheduler(self, env: dict[str, str] | None = None) -> str:
        argv = [DASK, "scheduler", "--host", self.host, "--port", str(self.port), "--no-dashboard"]
        self._spawn("scheduler", argv, env, ())
        return self.address

    @property
    def client(self) -> Any:
        """A client of the scheduler (made on first use, closed by :meth:`close`)."""
        from distributed import Client

        if self._client is None:
            self._client = Client(self.address, timeout="60s", set_as_default=False)
        return self._client

    def start_worker(
        self,
        name: str,
        *args: str,
        env: dict[str, str] | None = None,
        wrap: Sequence[str] = (),
        host: str | None = None,
        wait: bool = True,
    ) -> None:
        """Start ``dask worker`` named ``name`` (``args``: more flags); wait until it joined."""
        argv = [
            DASK,
            "worker",
            self.address,
            "--name",
            name,
            "--no-dashboard",
            "--host",
            host or self.host,
            *args,
        ]
        self._spawn(name, argv, env, wrap)
        if wait:
            self.wait_for(lambda: name in self.worker_names(), 90, f"worker {name} to join")

    def worker_names(self) -> dict[str, str]:
        """Worker name -> address, as the scheduler knows them now."""
        workers = self.client.scheduler_info(n_workers=-1)["workers"]
        return {str(w.get("name")): addr for addr, w in workers.items()}

    def stop(self, name: str, *, kill: bool = False) -> None:
        """End one process (SIGTERM: a worker leaving; SIGKILL with ``kill``) and wait for it."""
        proc = self.procs.pop(name)
        proc.kill() if kill else proc.terminate()
        _wait(proc)

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def exited(self, name: str) -> int | None:
        return self.procs[name].poll()

    @staticmethod
    def wait_for(condition: Callable[[], object], timeout: float, what: str) -> object:
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.05)

    def close(self) -> None:
        from det_jupyter.engine.cluster import disconnect

        disconnect(self.address)  # the submitting process's cached client of this cluster
        if self._client is not None:
            self._client.close()
            self._client = None
        for name in [n for n in self.procs if n != "scheduler"] + [n for n in self.procs if n == "scheduler"]:
            proc = self.procs.pop(name)
            if proc.poll() is None:
                proc.terminate()
            _wait(proc)


def _wait(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
