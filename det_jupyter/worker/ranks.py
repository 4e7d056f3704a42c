"""The ranks of a multi-slot trial on their workers: rendezvous, the rank's context, its log relay.

A multi-slot trial's run is N Dask tasks, one per rank (``engine/gang.py`` places them all at once);
each runs :func:`det_jupyter.worker.runtime.run_trial` with a :class:`GangRank`. Here:

- :func:`rendezvous`: the chief (rank 0) opens its log relay, picks free ports for the collectives of
  ``ctx.distributed`` and for ``torch.distributed`` and publishes them with its address in a Dask
  ``Variable`` named after the run; the other ranks read it (giving up when their stop flag is set).
- :func:`rank_environment`: what the rank's code sees: ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``,
  ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``GROUP_RANK`` (torchrun's names), the
  collectives' port and key, and :data:`CONTAINER_ADDRS_ENV` / :data:`CONTAINER_RANK_ENV` for
  ``det.get_cluster_info()``. *Local* is the worker process (Determined's container: a worker is
  pinned to its GPU), so ``LOCAL_RANK`` is 0 and ``cuda:0`` is the rank's GPU.
- :class:`RankContext`: the trial context of a rank, whose ``should_stop()`` is the chief's flag
  broadcast, so every rank leaves its loop at the same step (call it on every rank at the same points).
- :class:`LogRelay` / :class:`RelaySink`: only the chief sends events to the controller (one run, one
  event sequence); the other ranks' printed lines travel to the chief, which logs them as
  ``[rank=R] line``.

Example:
    >>> gang = GangRank(rank=1, size=2, workers=("tcp://a:1", "tcp://b:1"), hosts=("a", "b"),
    ...                 authkey="00", rendezvous="det-rdzv-x")
    >>> env = rank_environment(gang, Rendezvous("10.0.0.1", 1234, 1235, 1236))
    >>> env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["MASTER_ADDR"], env["MASTER_PORT"]
    ('1', '2', '0', '10.0.0.1', '1235')
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

from det_jupyter.worker.context import StopFlag, TrialContext
from det_jupyter.worker.distributed import AUTHKEY_ENV, PORT_ENV
from det_jupyter.worker.events import Log, LogLine

__all__ = [
    "CONTAINER_ADDRS_ENV",
    "CONTAINER_RANK_ENV",
    "RENDEZVOUS_TIMEOUT",
    "GangRank",
    "LogRelay",
    "RankContext",
    "RankFailed",
    "RelaySink",
    "Rendezvous",
    "free_port",
    "is_peer_gone",
    "rank_environment",
    "rendezvous",
]

CONTAINER_ADDRS_ENV = "DET_JUPYTER_CONTAINER_ADDRS"
"""Comma-separated host of each rank's worker, in rank order (``ClusterInfo.container_addrs``)."""
CONTAINER_RANK_ENV = "DET_JUPYTER_CONTAINER_RANK"
"""This rank's index in :data:`CONTAINER_ADDRS_ENV` (``ClusterInfo.container_rank``)."""
RENDEZVOUS_TIMEOUT = 300.0
"""Seconds a rank waits for the chief's address, and the ranks for each other, before failing."""


class RankFailed(RuntimeError):
    """A non-chief rank's code raised (the message carries its traceback); fails the trial's run.

    ``secondary`` is true when the error only says that a peer went away (the chief or another rank
    failed first): the launcher then reports the first failure, not this one.
    """

    def __init__(self, message: str, secondary: bool = False) -> None:
        super().__init__(message, secondary)
        self.message = message
        self.secondary = secondary

    def __str__(self) -> str:
        return self.message


_PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "peer")


def is_peer_gone(exc: BaseException) -> bool:
    """Whether an error only says that another rank went away (its connection closed or reset).

    Example:
        >>> is_peer_gone(EOFError()), is_peer_gone(ValueError("bad lr"))
        (True, False)
    """
    if isinstance(exc, (EOFError, ConnectionError)):
        return True
    text = str(exc)
    return type(exc).__name__ in ("DistBackendError", "DistNetworkError") or any(
        marker in text for marker in _PEER_GONE[:3]
    )


@dataclass(frozen=True)
class GangRank:
    """Where one rank of a multi-slot trial runs and who its peers are (the rank task's argument).

    Attributes:
        rank, size: this rank and the number of ranks.
        workers: each rank's worker address, in rank order.
        hosts: each rank's host, in rank order (``det.get_cluster_info().container_addrs``).
        authkey: hex HMAC key the ranks' connections share.
        rendezvous: name of the Dask ``Variable`` where the chief publishes its address and ports.
    """

    rank: int
    size: int
    workers: tuple[str, ...]
    hosts: tuple[str, ...]
    authkey: str
    rendezvous: str

    @property
    def is_chief(self) -> bool:
        """True on rank 0."""
        return self.rank == 0


@dataclass(frozen=True)
class Rendezvous:
    """What the chief publishes: its address and the ports of the collectives, torch and the log relay."""

    chief_ip: str
    dist_port: int
    torch_port: int
    log_port: int


def free_port(host: str) -> int:
    """A port free on ``host`` right now (bound once and released, as torchrun picks its port).

    Example:
        >>> 0 < free_port("127.0.0.1") < 65536
        True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def rendezvous(gang: GangRank, chief_ip: str, log_port: int, stop: StopFlag) -> Rendezvous:
    """Publish (chief) or read (other ranks) the run's :class:`Rendezvous` through a Dask ``Variable``.

    Raises:
        TimeoutError: no chief within :data:`RENDEZVOUS_TIMEOUT` s. RuntimeError: the run was asked
        to stop while waiting (its chief failed to start, the trial was killed).
    """
    from distributed import Variable, get_client

    variable = Variable(gang.rendezvous, client=get_client())
    if gang.is_chief:
        found = Rendezvous(chief_ip, free_port(chief_ip), free_port(chief_ip), log_port)
        variable.set(found.__dict__)
        return found
    deadline = time.monotonic() + RENDEZVOUS_TIMEOUT
    while True:
        try:
            return Rendezvous(**variable.get(timeout=0.5))
        except TimeoutError:
            if stop.is_set():
                raise RuntimeError(f"rank {gang.rank} was stopped while waiting for its chief") from None
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"rank {gang.rank} waited {RENDEZVOUS_TIMEOUT:g}s for the chief (rank 0 on "
                    f"{gang.workers[0]}) to publish its address"
                ) from None


def rank_environment(gang: GangRank, found: Rendezvous) -> dict[str, str]:
    """The environment variables of a rank's code (torchrun's names, the collectives', the cluster info's)."""
    return {
        "MASTER_ADDR": found.chief_ip,
        "MASTER_PORT": str(found.torch_port),
        "RANK": str(gang.rank),
        "WORLD_SIZE": str(gang.size),
        "LOCAL_RANK": "0",
        "LOCAL_WORLD_SIZE": "1",
        "GROUP_RANK": str(gang.rank),
        "NODE_RANK": str(gang.rank),
        AUTHKEY_ENV: gang.authkey,
        PORT_ENV: str(found.dist_port),
        CONTAINER_ADDRS_ENV: ",".join(gang.hosts),
        CONTAINER_RANK_ENV: str(gang.rank),
    }


class RankContext(TrialContext):
    """A rank's trial context: ``should_stop()`` is the chief's stop flag, broadcast to every rank.

    Each rank's worker gets the stop request, but not at the same instant; a rank leaving its loop a
    step before the others would leave them waiting in a collective. So the chief's answer is the
    answer (one small broadcast per call: call ``should_stop()`` on every rank at the same points, as
    Determined asks of ``should_preempt()``).
    """

    def should_stop(self) -> bool:
        """The chief's stop flag, on every rank (a collective when ``distributed.size > 1``)."""
        stop = self._stop_requested()  # the chief waits here for a pending searcher decision
        if self.distributed.size > 1:
            stop = bool(self.distributed.broadcast(stop))
        return stop


class RelaySink:
    """A non-chief rank's event sink: its log lines go to the chief's :class:`LogRelay`; other events
    (a non-chief reports nothing; the context refuses) are dropped. Lines before :meth:`connect` wait."""

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self._conn: Connection | None = None
        self._waiting: list[list[Any]] = []
        self._lock = threading.Lock()

    def connect(self, address: tuple[str, int], authkey: bytes) -> None:
        """Reach the chief's relay and send what waited."""
        conn = Client(address, authkey=authkey)
        conn.send(self.rank)
        with self._lock:
            self._conn, waiting, self._waiting = conn, self._waiting, []
            if waiting:
                conn.send(waiting)

    def emit(self, event: dict[str, Any]) -> None:
        """Forward a ``log`` event's lines; drop anything else."""
        if event.get("type") != "log":
            return
        lines = [list(line) for line in event.get("lines", [])]
        with self._lock:
            if self._conn is None:
                self._waiting += lines
                return
            with contextlib.suppress(OSError):
                self._conn.send(lines)

    def close(self) -> None:
        """Close the connection (the chief then stops waiting for this rank's lines)."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.close()
                self._conn = None


class LogRelay:
    """The chief's side of the other ranks' logs: lines arrive, go out as ``[rank=R] line`` log events."""

    def __init__(self, ctx: TrialContext, host: str, authkey: bytes) -> None:
        self._ctx = ctx
        self._authkey = authkey
        self._listener = Listener((host, 0), authkey=authkey)
        self.port = int(self._listener.address[1])
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._acceptor = threading.Thread(target=self._accept, name="det-jupyter-log-relay", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while True:
            try:
                conn = self._listener.accept()
            except (OSError, EOFError):  # a failed handshake, or the listener closed
                if self._closing:
                    return
                continue
            if self._closing:  # close()'s wake-up call
                conn.close()
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: Connection) -> None:
        try:
            rank = int(conn.recv())
            while True:
                lines = conn.recv()
                tag = f"[rank={rank}] "  # lines a launcher's wrap_rank already tagged keep their tag
                self._ctx._emit(
                    Log(
                        tuple(LogLine(float(ts), t if t.startswith("[rank=") else tag + t) for ts, t in lines)
                    )
                )
        except (EOFError, OSError):
            pass
        finally:
            conn.close()

    def close(self, timeout: float = 5.0) -> None:
        """Wait up to ``timeout`` s for the ranks' last lines (their connections closing), then stop."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(deadline - time.monotonic(), 0.0))
        self._closing = True
        with contextlib.suppress(OSError, EOFError):  # wake the acceptor
            Client(self._listener.address, authkey=self._authkey).close()
        self._acceptor.join(timeout)
        with contextlib.suppress(OSError):
            self._listener.close()
