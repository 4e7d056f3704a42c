"""The files through which a master and its clients meet, under ``$DET_JUPYTER_HOME``.

- ``master.lock``: an exclusive ``fcntl.flock`` held by the running master for its whole life, so
  exactly one master runs per home;
- ``master.json``: what the master publishes (pid, scheduler, dashboard, the cluster's slots, the
  worker pids, the experiments it runs, a heartbeat), replaced atomically (temp file + ``os.replace``);
- ``master.sock``: a Unix datagram socket (mode 0600); any datagram wakes the master at once;
- ``master.log``: the master's stdout and stderr.

Example:
    >>> paths = MasterPaths.of("/tmp/home")
    >>> paths.info.name, paths.socket.name
    ('master.json', 'master.sock')
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from det_jupyter.errors import ClusterError

__all__ = ["MasterError", "MasterInfo", "MasterPaths", "pid_alive", "poke", "read_info", "running_master"]


class MasterError(ClusterError):
    """The master could not be started or reached (the message points at ``master.log``)."""


@dataclass(frozen=True)
class MasterPaths:
    """Where a home's master files live."""

    home: Path
    lock: Path
    info: Path
    socket: Path
    log: Path

    @classmethod
    def of(cls, home: str | os.PathLike[str] | None = None) -> MasterPaths:
        """The paths under ``home`` (default: ``$DET_JUPYTER_HOME``)."""
        from det_jupyter.store import default_home

        root = Path(home) if home is not None else default_home()
        return cls(
            root, root / "master.lock", root / "master.json", root / "master.sock", root / "master.log"
        )


@dataclass(frozen=True)
class MasterInfo:
    """What ``master.json`` says.

    Attributes:
        pid, create_time: the master process (``create_time`` guards against a reused pid).
        started_at, heartbeat: wall-clock times (the heartbeat is rewritten every second).
        scheduler, dashboard_link: the embedded Dask cluster.
        workers: one dict per embedded worker: ``name``, ``resources`` (its slots), ``pid``, ``create_time``.
        experiments: ids of the experiments it runs now.
        idle_timeout: seconds it stays up with nothing to run.

    Example:
        >>> info = MasterInfo(pid=1, create_time=0.0, started_at=0.0, heartbeat=0.0)
        >>> info.slots
        {'GPU': 0.0, 'CPU': 0.0}
    """

    pid: int
    create_time: float
    started_at: float
    heartbeat: float
    scheduler: str | None = None
    dashboard_link: str | None = None
    workers: list[dict[str, Any]] = field(default_factory=list)
    experiments: list[int] = field(default_factory=list)
    idle_timeout: float = 600.0

    @property
    def slots(self) -> dict[str, float]:
        """Total slots by kind (``GPU``, ``CPU``)."""
        return {
            kind: sum((float((w.get("resources") or {}).get(kind, 0)) for w in self.workers), 0.0)
            for kind in ("GPU", "CPU")
        }

    @property
    def alive(self) -> bool:
        """True while the master process runs (same pid and start time, not a zombie)."""
        return pid_alive(self.pid, self.create_time)

    @property
    def uptime(self) -> float:
        """Seconds since it started."""
        return max(0.0, time.time() - self.started_at)

    def to_json(self) -> str:
        """The ``master.json`` text."""
        return json.dumps(asdict(self), indent=1)


def pid_alive(pid: int, create_time: float | None = None) -> bool:
    """Whether ``pid`` runs (a zombie does not), and, when given, started at ``create_time``.

    Example:
        >>> pid_alive(os.getpid())
        True
    """
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(proc.create_time() - create_time) < 0.01
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return False


def process_create_time(pid: int) -> float:
    """The start time of a process as psutil reports it (0.0 when it is gone)."""
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0


def read_info(home: str | os.PathLike[str] | None = None) -> MasterInfo | None:
    """``master.json`` of ``home``, or ``None`` when there is none (or it is unreadable)."""
    try:
        data = json.loads(MasterPaths.of(home).info.read_text())
        known = set(MasterInfo.__dataclass_fields__)
        return MasterInfo(**{k: v for k, v in data.items() if k in known})
    except (OSError, ValueError, TypeError):
        return None


def write_info(path: Path, info: MasterInfo) -> None:
    """Replace ``master.json`` atomically (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(info.to_json())
    os.replace(tmp, path)


def running_master(home: str | os.PathLike[str] | None = None) -> MasterInfo | None:
    """The live master of ``home``, or ``None``.

    Example:
        >>> running_master("/nonexistent") is None
        True
    """
    info = read_info(home)
    return info if info is not None and info.alive else None


def poke(home: str | os.PathLike[str] | None = None) -> bool:
    """Wake the master at once (it also polls the store every 50 ms); False when nobody listens."""
    path = MasterPaths.of(home).socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            s.sendto(b"wake", str(path))
        return True
    except OSError:
        return False
