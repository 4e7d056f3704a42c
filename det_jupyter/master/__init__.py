"""The local master: a long-lived process, one per ``$DET_JUPYTER_HOME``, that runs experiments.

Controllers and the embedded Dask cluster live in the master, not in the kernel, so a kernel restart
does not touch running trials. ``create_experiment`` writes the experiment to the store and pokes the
master (starting it on demand with :func:`ensure_master`); the master runs it. ``det-jupyter master
status|stop`` and ``%det cluster`` show it; it writes ``$DET_JUPYTER_HOME/master.log``.

- :mod:`~det_jupyter.master.files`: ``master.lock`` / ``master.json`` / ``master.sock`` / ``master.log``;
- :mod:`~det_jupyter.master.process`: the :class:`~det_jupyter.master.process.Master` loop.

A master that died (SIGKILL, reboot) leaves its experiments ACTIVE with a dead owner; the next submit,
``%det attach`` or ``Experiment.resume()`` starts a new one, and so do the CLI's experiment commands and
the Jupyter server extension, through :func:`revive_if_orphaned`.

Example:
    >>> info = ensure_master()                     # doctest: +SKIP
    >>> info.pid, info.dashboard_link, info.slots  # doctest: +SKIP
    (4242, 'http://127.0.0.1:38111/status', {'GPU': 0.0, 'CPU': 2.0})
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from det_jupyter.master.files import (
    MasterError,
    MasterInfo,
    MasterPaths,
    pid_alive,
    poke,
    read_info,
    running_master,
)

if TYPE_CHECKING:
    from det_jupyter.store import Store

__all__ = [
    "MasterError",
    "MasterInfo",
    "MasterPaths",
    "default_idle_timeout",
    "ensure_master",
    "main",
    "orphaned_experiments",
    "poke",
    "read_info",
    "revive_if_orphaned",
    "running_master",
    "serves_store",
    "stop_master",
]

log = logging.getLogger("det_jupyter.master")

IDLE_ENV = "DET_JUPYTER_MASTER_IDLE"
WORKERS_ENV = "DET_JUPYTER_MASTER_WORKERS"
_children: list[subprocess.Popen[bytes]] = []


def default_idle_timeout() -> float:
    """``$DET_JUPYTER_MASTER_IDLE`` seconds, else 600.

    Example:
        >>> default_idle_timeout() > 0
        True
    """
    try:
        return float(os.environ.get(IDLE_ENV) or 600.0)
    except ValueError:
        return 600.0


def ensure_master(
    home: str | os.PathLike[str] | None = None,
    *,
    timeout: float = 120.0,
    idle_timeout: float | None = None,
) -> MasterInfo:
    """The running master of ``home``; starts one (detached) if none runs, and waits until it serves.

    The master is started as ``python -m det_jupyter.master`` in its own session, with its output in
    ``master.log``: a kernel restart, or the kernel's process group being killed, does not touch it.

    Raises:
        MasterError: it did not come up within ``timeout`` seconds (the message quotes ``master.log``).

    Example:
        >>> ensure_master().pid                        # doctest: +SKIP
        4242
    """
    paths = MasterPaths.of(home)
    info = running_master(paths.home)
    if info is not None:
        return info
    paths.home.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "det_jupyter.master", "--home", str(paths.home)]
    if idle_timeout is not None:
        cmd += ["--idle-timeout", str(idle_timeout)]
    env = {**os.environ, "DET_JUPYTER_HOME": str(paths.home)}
    with open(paths.log, "ab") as logf:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            start_new_session=True, env=env, cwd=str(paths.home), close_fds=True,
        )  # fmt: skip
    _children.append(proc)
    threading.Thread(target=proc.wait, name="det-jupyter-master-reaper", daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = running_master(paths.home)
        if info is not None:
            return info
        if proc.poll() is not None and proc.returncode != 3:  # 3: another master won the race
            break
        time.sleep(0.05)
    raise MasterError(
        f"the det-jupyter master for {paths.home} did not start (see {paths.log}):\n{_tail(paths.log)}"
    )


def stop_master(home: str | os.PathLike[str] | None = None, *, timeout: float = 60.0) -> MasterInfo | None:
    """Ask the running master to exit (SIGTERM) and wait until it has; returns what it was, or ``None``.

    Its controllers stop without ending their experiments: the next master resumes them.

    Example:
        >>> stop_master("/nonexistent") is None
        True
    """
    info = running_master(home)
    if info is None:
        return None
    try:
        os.kill(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        return info
    deadline = time.monotonic() + timeout
    while pid_alive(info.pid, info.create_time):
        if time.monotonic() > deadline:
            raise MasterError(f"master pid {info.pid} did not exit within {timeout:g}s of SIGTERM")
        time.sleep(0.05)
    return info


def serves_store(store_path: str | os.PathLike[str], home: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``store_path`` is the store the master of ``home`` serves (``$DET_JUPYTER_HOME/det_jupyter.db``).

    Example:
        >>> serves_store("/tmp/h/det_jupyter.db", "/tmp/h"), serves_store("/tmp/other.db", "/tmp/h")
        (True, False)
    """
    mine = MasterPaths.of(home).home / "det_jupyter.db"
    return Path(store_path).expanduser().resolve() == mine.expanduser().resolve()


def orphaned_experiments(store: Store, *, now: float | None = None) -> list[int]:
    """Ids of the experiments that need a master and have none, oldest first.

    That is every experiment that is not terminal and whose lease is free
    (:func:`~det_jupyter.store.lease.lease_is_free`: no owner, an owner process on this host that is
    gone, or a stale heartbeat), except a PAUSED one with no pending request: it needs nobody until
    someone activates (or kills) it.

    Example:
        >>> from det_jupyter.store import Store
        >>> store = Store(":memory:")
        >>> exp_id = store.create_experiment(name="e", config={}, entrypoint=b"", seed=0)
        >>> orphaned_experiments(store) == [exp_id]
        True
    """
    from det_jupyter.states import ExperimentState
    from det_jupyter.store.lease import lease_is_free

    orphans = []
    for row in store.list_experiments():
        if row.state.is_terminal or not lease_is_free(row.owner, row.heartbeat, now=now):
            continue
        if row.state == ExperimentState.PAUSED and not store.pending_requests(row.id):
            continue
        orphans.append(row.id)
    return sorted(orphans)


def revive_if_orphaned(
    home: str | os.PathLike[str] | None = None, *, logger: logging.Logger | None = None
) -> MasterInfo | None:
    """Start the master of ``home`` when its store holds :func:`orphaned_experiments` and none runs.

    A master that died (SIGKILL, a reboot) leaves its experiments ACTIVE with nobody to run them; the
    CLI's experiment commands and the Jupyter server extension call this so the next master resumes
    them without the user submitting again. Returns the master it started (after it serves, as
    :func:`ensure_master` does), or ``None`` when it started none: nothing to revive, a master already
    runs (it picks orphans up by itself), the home has no store yet, or ``$DET_JUPYTER_MASTER`` is
    ``inprocess`` (no master wanted). Only the home's own store counts: the master serves no other.

    Raises:
        MasterError: a master was needed but did not start (the message quotes ``master.log``).

    Example:
        >>> revive_if_orphaned("/nonexistent") is None
        True
        >>> info = revive_if_orphaned()                 # doctest: +SKIP
    """
    from det_jupyter.store import Store

    logger = logger or log
    paths = MasterPaths.of(home)
    db = paths.home / "det_jupyter.db"
    if os.environ.get("DET_JUPYTER_MASTER") == "inprocess" or not db.is_file():
        return None
    if running_master(paths.home) is not None:
        return None
    store = Store(db)
    try:
        orphans = orphaned_experiments(store)
    finally:
        store.close()
    if not orphans:
        logger.debug("det_jupyter: no experiment of %s needs a master", paths.home)
        return None
    ids = ", ".join(map(str, orphans))
    logger.info("det_jupyter: experiment(s) %s of %s have no live master; starting one", ids, paths.home)
    info = ensure_master(paths.home)
    poke(paths.home)
    logger.info(
        "det_jupyter: master pid %s runs for %s and resumes experiment(s) %s (log %s)",
        info.pid, paths.home, ids, paths.log,
    )  # fmt: skip
    return info


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m det_jupyter.master [--home H] [--idle-timeout S] [--workers N] [--cpu]``."""
    from det_jupyter.master.process import serve
    from det_jupyter.store import default_home

    parser = argparse.ArgumentParser(prog="python -m det_jupyter.master")
    parser.add_argument("--home", default=None, help="DET_JUPYTER_HOME to serve")
    parser.add_argument(
        "--idle-timeout", type=float, default=None, help=f"seconds (default ${IDLE_ENV} or 600)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help=f"CPU workers (default ${WORKERS_ENV} or cores)"
    )
    parser.add_argument("--cpu", action="store_true", help="CPU slots even where GPUs exist")
    args = parser.parse_args(argv)
    home = Path(args.home) if args.home else default_home()
    os.environ["DET_JUPYTER_HOME"] = str(home)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    workers = args.workers if args.workers is not None else int(os.environ.get(WORKERS_ENV) or 0) or None
    idle = args.idle_timeout if args.idle_timeout is not None else default_idle_timeout()
    return serve(home, idle_timeout=idle, n_workers=workers, gpus=[] if args.cpu else None)
