"""``ctx.distributed``: rank, size and the small collectives of a trial's processes (Determined's shape).

:class:`DistributedContext` takes Determined's keyword arguments (``rank``, ``size``, ``local_rank``,
``local_size``, ``cross_rank``, ``cross_size``, ``chief_ip``, ``pub_port``, ``port_offset``) and offers
its collectives for small Python objects: :meth:`~DistributedContext.allgather`,
:meth:`~DistributedContext.gather`, :meth:`~DistributedContext.broadcast` and their ``_local`` forms.
Tensors go through ``torch.distributed``; these are for metrics, flags and file lists.

With one process (``size == 1``, every notebook trial today) the collectives are local and free. With
more, the ranks form a star around the chief: it listens on ``chief_ip:pub_port + port_offset`` and
the others connect (``multiprocessing.connection``, HMAC-authenticated with the key in
``$DET_JUPYTER_DIST_AUTHKEY``, which the launcher sets; without it, a key derived from the address
and size, which only keeps unrelated jobs apart). The connection opens on the first collective.

Example:
    >>> dist = DistributedContext()
    >>> dist.rank, dist.size, dist.is_chief
    (0, 1, True)
    >>> dist.allgather({"loss": 0.5}), dist.gather(3), dist.broadcast("go")
    ([{'loss': 0.5}], [3], 'go')
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

__all__ = ["AUTHKEY_ENV", "PORT_ENV", "DistributedContext", "init_torch_distributed"]

AUTHKEY_ENV = "DET_JUPYTER_DIST_AUTHKEY"
"""Environment variable holding the hex HMAC key the ranks of one trial share."""
PORT_ENV = "DET_JUPYTER_DIST_PORT"
"""Environment variable holding the chief's port for these collectives (a multi-slot trial's ranks
get a free port from their rendezvous; the default ``pub_port`` is then this one, not 12360)."""

CONNECT_TIMEOUT = 120.0
"""Seconds a rank waits for the chief (or the chief for the others) before giving up."""


class DistributedContext:
    """Where this process sits among a trial's processes, and collectives over them.

    Args:
        rank, size: this process's rank and the number of processes (global).
        local_rank, local_size: the same among the processes of this machine.
        cross_rank, cross_size: which machine this is, and how many machines.
        chief_ip: the chief's address (needed when ``size > 1``).
        pub_port, port_offset: the chief listens on ``pub_port + port_offset`` (default
            ``$DET_JUPYTER_DIST_PORT``, which a multi-slot trial's ranks have, else 12360).
        pull_port, force_tcp: accepted for Determined compatibility; unused.

    Example:
        >>> DistributedContext(rank=1, size=2, local_rank=1, local_size=2, chief_ip="127.0.0.1").is_chief
        False
    """

    def __init__(
        self,
        *,
        rank: int = 0,
        size: int = 1,
        local_rank: int | None = None,
        local_size: int | None = None,
        cross_rank: int | None = None,
        cross_size: int | None = None,
        chief_ip: str | None = None,
        pub_port: int | None = None,
        pull_port: int = 12376,
        port_offset: int = 0,
        force_tcp: bool = False,
    ) -> None:
        if not 0 <= rank < size:
            raise ValueError(f"DistributedContext(rank={rank}, size={size}): need 0 <= rank < size")
        self.rank = rank
        self.size = size
        self.local_rank = rank if local_rank is None else local_rank
        self.local_size = size if local_size is None else local_size
        self.cross_rank = 0 if cross_rank is None else cross_rank
        self.cross_size = 1 if cross_size is None else cross_size
        if size > 1 and not chief_ip:
            raise ValueError(f"DistributedContext(size={size}) needs chief_ip, the chief's address")
        self.chief_ip = chief_ip
        if pub_port is None:
            pub_port = int(os.environ.get(PORT_ENV) or 12360)
        self.port = pub_port + port_offset
        self._pull_port, self._force_tcp = pull_port, force_tcp
        self._peers: dict[int, Connection] = {}  # chief: rank -> connection; others: {0: chief}
        self._listener: Listener | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"DistributedContext(rank={self.rank}, size={self.size}, local_rank={self.local_rank}, "
            f"local_size={self.local_size}, cross_rank={self.cross_rank}, cross_size={self.cross_size})"
        )

    @classmethod
    def from_torch_distributed(cls, chief_ip: str | None = None) -> DistributedContext:
        """From the variables ``torchrun`` sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ...).

        Example:
            >>> from unittest import mock
            >>> env = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
            ...        "MASTER_ADDR": "127.0.0.1"}
            >>> with mock.patch.dict(os.environ, env):
            ...     DistributedContext.from_torch_distributed()
            DistributedContext(rank=1, size=4, local_rank=1, local_size=2, cross_rank=0, cross_size=2)
        """
        env = os.environ
        size, local_size = int(env["WORLD_SIZE"]), int(env["LOCAL_WORLD_SIZE"])
        rank = int(env["RANK"])
        cross_rank = int(env.get("GROUP_RANK", rank // max(local_size, 1)))
        return cls(
            rank=rank,
            size=size,
            local_rank=int(env["LOCAL_RANK"]),
            local_size=local_size,
            cross_rank=cross_rank,
            cross_size=max(size // max(local_size, 1), 1),
            chief_ip=chief_ip or env.get("MASTER_ADDR"),
        )

    # --- Determined's getters --------------------------------------------------------------------

    @property
    def is_chief(self) -> bool:
        """True on rank 0, the process that reports and checkpoints."""
        return self.rank == 0

    @property
    def is_local_chief(self) -> bool:
        """True on local rank 0 of each machine."""
        return self.local_rank == 0

    def get_rank(self) -> int:
        return self.rank

    def get_size(self) -> int:
        return self.size

    def get_local_rank(self) -> int:
        return self.local_rank

    def get_local_size(self) -> int:
        return self.local_size

    def get_cross_rank(self) -> int:
        return self.cross_rank

    def get_cross_size(self) -> int:
        return self.cross_size

    # --- collectives -----------------------------------------------------------------------------

    def gather(self, stuff: Any) -> list[Any] | None:
        """Every rank's ``stuff`` on the chief (in rank order); ``None`` on the other ranks."""
        if self.size == 1:
            return [stuff]
        self._connect()
        with self._lock:
            if not self.is_chief:
                self._peers[0].send(stuff)
                return None
            return [stuff] + [self._peers[r].recv() for r in range(1, self.size)]

    def allgather(self, stuff: Any) -> list[Any]:
        """Every rank's ``stuff``, in rank order, on every rank."""
        gathered = self.gather(stuff)
        return self.broadcast(gathered)  # type: ignore[no-any-return]

    def broadcast(self, stuff: Any) -> Any:
        """The chief's ``stuff`` on every rank (the others' argument is ignored)."""
        if self.size == 1:
            return stuff
        self._connect()
        with self._lock:
            if self.is_chief:
                for r in range(1, self.size):
                    self._peers[r].send(stuff)
                return stuff
            return self._peers[0].recv()

    def allgather_local(self, stuff: Any) -> list[Any]:
        """``stuff`` of the ranks on this machine, in local-rank order."""
        pairs = self.allgather((self.cross_rank, self.local_rank, stuff))
        return [s for cross, _, s in sorted(pairs, key=lambda p: p[1]) if cross == self.cross_rank]

    def gather_local(self, stuff: Any) -> list[Any] | None:
        """``stuff`` of this machine's ranks on its local chief; ``None`` elsewhere."""
        local = self.allgather_local(stuff)
        return local if self.is_local_chief else None

    def broadcast_local(self, stuff: Any = None) -> Any:
        """The local chief's ``stuff`` on every rank of this machine."""
        return self.allgather_local(stuff)[0]

    def close(self) -> None:
        """Close the connections (a finished trial's runtime calls it)."""
        with self._lock:
            for conn in self._peers.values():
                conn.close()
            self._peers.clear()
            if self._listener is not None:
                self._listener.close()
                self._listener = None

    def _authkey(self) -> bytes:
        key = os.environ.get(AUTHKEY_ENV)
        if key:
            return bytes.fromhex(key)
        return hashlib.sha256(f"det-jupyter:{self.chief_ip}:{self.port}:{self.size}".encode()).digest()

    def connect(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """Open the connections now (a barrier: returns once every rank is connected).

        Collectives connect on first use; a multi-slot trial's runtime calls this before user code,
        so a rank that never comes makes every rank fail within ``timeout`` instead of hanging.

        Raises:
            TimeoutError: a rank (or the chief) did not come within ``timeout`` seconds.
        """
        if self.size > 1:
            self._connect(timeout)

    def _connect(self, timeout: float = CONNECT_TIMEOUT) -> None:
        with self._lock:
            if self._peers:
                return
            address = (str(self.chief_ip), self.port)
            deadline = time.monotonic() + timeout
            if self.is_chief:
                self._listener = Listener(address, authkey=self._authkey())
                raw = getattr(getattr(self._listener, "_listener", None), "_socket", None)
                while len(self._peers) < self.size - 1:
                    left = deadline - time.monotonic()
                    if raw is not None:
                        raw.settimeout(max(left, 0.001))
                    try:
                        conn = self._listener.accept()
                    except TimeoutError:
                        missing = sorted(set(range(1, self.size)) - set(self._peers))
                        raise TimeoutError(
                            f"the chief waited {timeout:g}s on {address[0]}:{address[1]} for rank(s) "
                            f"{missing}, which never connected"
                        ) from None
                    self._peers[int(conn.recv())] = conn
                return
            while True:
                try:
                    conn = Client(address, authkey=self._authkey())
                    break
                except (ConnectionRefusedError, FileNotFoundError):
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"rank {self.rank} could not reach the chief at {address[0]}:{address[1]} "
                            f"within {timeout:g}s"
                        ) from None
                    time.sleep(0.05)  # the chief is not listening yet: retry until the deadline
            conn.send(self.rank)
            self._peers[0] = conn


def init_torch_distributed(backend: str | None = None, *, timeout: float = 300.0) -> Any:
    """Initialise ``torch.distributed`` for this rank of a multi-slot trial; the device to train on.

    Call it at the top of a trial function (``TorchTrial`` does it for you). It reads what the
    runtime set for the rank's code (``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``), picks NCCL when the worker has a GPU and gloo otherwise (``backend`` overrides),
    and sets this process's CUDA device (a worker is pinned to its GPU: ``cuda:LOCAL_RANK`` of its
    visible devices). With one rank (no ``WORLD_SIZE`` or ``WORLD_SIZE=1``) it initialises nothing and
    returns the device. Idempotent; the runtime destroys the group when the trial ends.

    Args:
        backend: ``"nccl"``, ``"gloo"`` or ``None`` (choose).
        timeout: seconds a collective may wait for the other ranks before failing.

    Example:
        >>> init_torch_distributed()      # a single process: nothing to join
        device(type='cpu')
    """
    import datetime

    import torch

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend or ("nccl" if cuda else "gloo"),
            init_method="env://",
            timeout=datetime.timedelta(seconds=timeout),
        )
    return device
