"""The master process: owns the embedded Dask cluster and runs a controller for every orphan experiment.

:class:`Master` is what ``det-jupyter master start`` / ``python -m det_jupyter.master`` runs:

1. take ``master.lock`` (exclusive ``flock``, held for life), or exit naming the master that runs;
2. kill the worker processes a dead previous master left behind (their pids are in its ``master.json``);
3. start the embedded cluster, bind ``master.sock`` and publish ``master.json``;
4. loop: wait for a poke on the socket (at most ``poll_interval``), then look in the store for
   experiments that are not terminal and have no live owner (a new one, or one whose master or kernel
   died) and run a :class:`~det_jupyter.engine.controller.Controller` thread for each. The controller
   claims the experiment's lease; resuming resubmits interrupted trials from their latest checkpoints
   without counting a restart;
5. exit after ``idle_timeout`` seconds with nothing to run, or on SIGTERM / SIGINT: controllers stop
   without ending their experiments (the next master resumes them), the cluster closes.

Example:
    >>> Master("/tmp/home", idle_timeout=5).run()        # doctest: +SKIP
    0
"""

from __future__ import annotations

import fcntl
import logging
import os
import select
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from det_jupyter.engine.launcher import DaskLauncher
from det_jupyter.master.files import (
    MasterError,
    MasterInfo,
    MasterPaths,
    pid_alive,
    process_create_time,
    read_info,
    write_info,
)
from det_jupyter.store.lease import LEASE_STALE, lease_is_free

__all__ = ["LEASE_STALE", "Master", "MasterRunningError", "kill_orphans"]

log = logging.getLogger("det_jupyter.master")

RETRY_AFTER = 30.0
"""Seconds before retrying an experiment whose cluster could not be reached."""


class MasterRunningError(MasterError):
    """Another master holds the home's lock."""


def kill_orphans(previous: MasterInfo | None, *, timeout: float = 10.0) -> list[int]:
    """Kill the worker processes of a dead master (those still alive with their recorded start time).

    Returns the pids killed. Does nothing while that master still runs.

    Example:
        >>> kill_orphans(None)
        []
    """
    if previous is None or previous.alive:
        return []
    killed = []
    for w in previous.workers:
        pid, created = w.get("pid"), w.get("create_time")
        if isinstance(pid, int) and pid_alive(pid, created):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError:
                pass
    deadline = time.monotonic() + timeout
    while any(pid_alive(p) for p in killed) and time.monotonic() < deadline:
        time.sleep(0.02)
    return killed


class Master:
    """One home's master. :meth:`run` blocks until it exits; returns the exit status.

    Args:
        home: the ``DET_JUPYTER_HOME`` it serves (store and checkpoints under it).
        idle_timeout: seconds to stay up with no experiment to run.
        poll_interval: longest wait between two looks at the store.
        n_workers: CPU workers of the embedded cluster when there is no GPU (default: one per core).
        gpus: GPU indices for the embedded cluster (``[]``: CPU slots; default: all).
    """

    def __init__(
        self,
        home: str | os.PathLike[str],
        *,
        idle_timeout: float = 600.0,
        poll_interval: float = 0.05,
        n_workers: int | None = None,
        gpus: list[int] | None = None,
    ) -> None:
        self.paths = MasterPaths.of(home)
        self.idle_timeout = idle_timeout
        self.poll_interval = poll_interval
        self.n_workers = n_workers
        self.gpus = gpus
        self.controllers: dict[int, Any] = {}  # experiment id -> Controller
        self._stop = threading.Event()
        self._retry_at: dict[int, float] = {}
        self._external: dict[str, Any] = {}  # address -> Client
        self._lock_fd: int | None = None
        self._sock: socket.socket | None = None
        self._info: MasterInfo | None = None

    def request_stop(self) -> None:
        """Ask the loop to exit (what SIGTERM does)."""
        self._stop.set()

    # --- start and stop ---------------------------------------------------------------------------

    def _lock(self) -> None:
        self.paths.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            info = read_info(self.paths.home)
            who = f"pid {info.pid}" if info is not None else "another process"
            raise MasterRunningError(
                f"a master already runs for {self.paths.home} ({who}); `det-jupyter master status` shows "
                "it, `det-jupyter master stop` stops it"
            ) from None
        self._lock_fd = fd

    def _bind(self) -> None:
        path = self.paths.socket
        try:
            path.unlink(missing_ok=True)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            old = os.umask(0o177)
            try:
                sock.bind(str(path))
            finally:
                os.umask(old)
            os.chmod(path, 0o600)
            sock.setblocking(False)
            self._sock = sock
        except OSError as exc:  # e.g. a path longer than sun_path: polling alone still works
            log.warning("no wake-up socket at %s (%s); polling the store only", path, exc)

    def run(self) -> int:
        """Lock, clean up, start the cluster, serve until idle or stopped; returns 0."""
        from distributed import Client

        from det_jupyter.engine.cluster import dashboard_link, local_cluster
        from det_jupyter.store import Store

        self._lock()
        try:
            killed = kill_orphans(read_info(self.paths.home))
            if killed:
                log.warning("killed %d worker process(es) left by a dead master: %s", len(killed), killed)
            self.store = Store(self.paths.home / "det_jupyter.db")
            self.cluster = local_cluster(self.n_workers, gpus=self.gpus)
            self.client = Client(self.cluster, set_as_default=False)
            self._bind()
            now = time.time()
            me = os.getpid()
            self._info = MasterInfo(
                pid=me,
                create_time=process_create_time(me),
                started_at=now,
                heartbeat=now,
                scheduler=str(self.cluster.scheduler_address),
                dashboard_link=dashboard_link(self.client),
                idle_timeout=self.idle_timeout,
            )
            self._publish()
            log.info("master %s serves %s; dashboard %s", me, self.paths.home, self._info.dashboard_link)
            self._loop()
        finally:
            self._shutdown()
        return 0

    def _shutdown(self) -> None:
        for exp_id, controller in list(self.controllers.items()):
            log.info("stopping the controller of experiment %s (it stays resumable)", exp_id)
            controller.stop(timeout=15.0)
        self.controllers.clear()
        for client in self._external.values():
            client.close()
        for name in ("client", "cluster"):
            obj = getattr(self, name, None)
            if obj is not None:
                try:
                    obj.close()
                except Exception as exc:  # closing a half-started cluster
                    log.warning("closing the %s: %s", name, exc)
        if self._sock is not None:
            self._sock.close()
            self.paths.socket.unlink(missing_ok=True)
        info = read_info(self.paths.home)
        if info is not None and info.pid == os.getpid():
            self.paths.info.unlink(missing_ok=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    # --- the loop ---------------------------------------------------------------------------------

    def _loop(self) -> None:
        last_busy = last_publish = time.monotonic()
        while not self._stop.is_set():
            self._wait_for_poke()
            self._scan()
            now = time.monotonic()
            for exp_id in [i for i, c in self.controllers.items() if c.finished]:
                del self.controllers[exp_id]
                log.info("experiment %s ended (%s)", exp_id, self.store.get_experiment(exp_id).state.value)
                self._publish()
            if self.controllers:
                last_busy = now
            elif now - last_busy >= self.idle_timeout:
                log.info("idle for %.0fs with nothing to run; exiting", self.idle_timeout)
                return
            if now - last_publish >= 1.0:
                last_publish = now
                self._publish()

    def _wait_for_poke(self) -> None:
        if self._sock is None:
            self._stop.wait(self.poll_interval)
            return
        try:
            ready, _, _ = select.select([self._sock], [], [], self.poll_interval)
        except (InterruptedError, ValueError):
            return
        while ready:
            try:
                self._sock.recv(64)
            except OSError:
                break

    def _scan(self) -> None:
        now, wall = time.monotonic(), time.time()
        for row in self.store.list_experiments():
            if row.state.is_terminal or row.id in self.controllers:
                continue
            if self._retry_at.get(row.id, 0.0) > now or not lease_is_free(
                row.owner, row.heartbeat, now=wall, stale_after=LEASE_STALE
            ):
                continue
            self._start(row.id, row.cluster_address, row.config)

    def _start(self, exp_id: int, address: str | None, stored_config: dict[str, Any]) -> None:
        from det_jupyter.config import ExperimentConfig
        from det_jupyter.engine.controller import Controller
        from det_jupyter.errors import ClusterError
        from det_jupyter.states import ExperimentState
        from det_jupyter.store import Store

        try:
            cfg = ExperimentConfig.from_stored(stored_config)
            client = self._client_for(address)
            launcher = _MasterLauncher(
                client, cfg.resources.slots_per_trial, cfg.resources.slot_type, embedded=address is None
            )
        except ClusterError as exc:
            if address is not None and "slots_per_trial" not in str(exc):  # unreachable: try again later
                log.warning("experiment %s: %s; retrying in %.0fs", exp_id, exc, RETRY_AFTER)
                self._retry_at[exp_id] = time.monotonic() + RETRY_AFTER
                return
            if self.store.claim_experiment(exp_id, _owner(), stale_after=LEASE_STALE):
                self.store.update_experiment(
                    exp_id, state=ExperimentState.ERROR, error=str(exc), ended_at=time.time(), owner=None
                )
            return
        except Exception as exc:  # a config this version cannot read: leave it, say why once
            log.error("experiment %s cannot be run by this master: %s", exp_id, exc)
            self._retry_at[exp_id] = float("inf")
            return
        controller = Controller(Store(self.store.path), exp_id, launcher, config=cfg)
        try:
            controller.start()
        except RuntimeError as exc:  # someone else claimed it first
            log.info("experiment %s: %s", exp_id, exc)
            return
        self.controllers[exp_id] = controller
        log.info("running experiment %s", exp_id)
        self._publish()

    def _client_for(self, address: str | None) -> Any:
        if address is None:
            return self.client
        client = self._external.get(address)
        if client is None or client.status in ("closed", "closing"):
            from det_jupyter.engine.cluster import cluster

            client = self._external[address] = cluster(address)
        return client

    def _publish(self) -> None:
        assert self._info is not None
        workers = []
        try:
            for name, spec_worker in list(self.cluster.workers.items()):
                pid = getattr(spec_worker, "pid", None)
                resources = self.cluster.worker_spec.get(name, {}).get("options", {}).get("resources", {})
                if isinstance(pid, int):
                    workers.append(
                        {
                            "name": name,
                            "resources": resources,
                            "pid": pid,
                            "create_time": process_create_time(pid),
                        }
                    )
        except Exception as exc:  # the cluster is closing
            log.debug("listing workers: %s", exc)
        info = MasterInfo(
            **{
                **self._info.__dict__,
                "heartbeat": time.time(),
                "workers": workers or self._info.workers,
                "experiments": sorted(self.controllers),
            }
        )
        self._info = info
        write_info(self.paths.info, info)


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:master"


class _MasterLauncher(DaskLauncher):
    """A DaskLauncher that records no scheduler address for the embedded cluster.

    The experiment row keeps ``cluster_address`` only for an external cluster, so the next master
    runs an embedded-cluster experiment on its own cluster instead of the dead one's address.
    """

    def __init__(self, client: Any, slots_per_trial: float, slot_type: Any, *, embedded: bool) -> None:
        super().__init__(client, slots_per_trial, slot_type)
        self._embedded = embedded

    def address(self) -> str | None:
        """``None`` for the embedded cluster, else the scheduler's address."""
        return None if self._embedded else super().address()


def serve(home: Path, *, idle_timeout: float, n_workers: int | None, gpus: list[int] | None) -> int:
    """Run a master in this process with SIGTERM / SIGINT stopping it cleanly; the exit status."""
    master = Master(home, idle_timeout=idle_timeout, n_workers=n_workers, gpus=gpus)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: master.request_stop())
    try:
        return master.run()
    except MasterRunningError as exc:
        print(f"det-jupyter master: {exc}", flush=True)
        return 3
