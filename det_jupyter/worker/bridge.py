"""The bridge between a trial's worker and the command process it runs (``entrypoint: python3 train.py``).

A command trial runs as a child process of the Dask worker. The worker's side, :class:`BridgeServer`,
listens on a Unix socket only the worker's user can reach, authenticated with a per-run key; the
child's side, :func:`connect`, is what ``det.core.init()`` calls inside the command: it builds the *same*
:class:`~det_jupyter.worker.context.TrialContext` a notebook trial gets, from the run's
:class:`~det_jupyter.worker.context.TrialSpec`, whose events travel over the socket and which the
worker renumbers into its own run (:meth:`TrialContext._relay`). Stop requests (searcher, pause, kill)
travel the other way. Checkpoints are written by the child straight to the checkpoint storage.

Three environment variables tell the child where its trial is: :data:`BRIDGE_ENV`,
:data:`AUTHKEY_ENV` and :data:`SPEC_ENV` (a pickled spec, read by ``det.get_cluster_info()`` too).

Example (the command process's side is exercised in tests/core_tests/test_core_api.py):
    >>> from det_jupyter.worker.context import local_context
    >>> with BridgeServer(local_context({"lr": 0.1})) as bridge:
    ...     sorted(bridge.env())
    ['DET_JUPYTER_TRIAL_BRIDGE', 'DET_JUPYTER_TRIAL_KEY', 'DET_JUPYTER_TRIAL_SPEC']
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import pickle
import secrets
import shutil
import socket
import tempfile
import threading
from collections.abc import Mapping
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

from det_jupyter.worker.context import StopFlag, TrialContext, TrialSpec

__all__ = ["AUTHKEY_ENV", "BRIDGE_ENV", "SPEC_ENV", "BridgeServer", "BridgeSink", "connect", "read_spec"]

BRIDGE_ENV = "DET_JUPYTER_TRIAL_BRIDGE"
"""Path of the worker's Unix socket for this run."""
AUTHKEY_ENV = "DET_JUPYTER_TRIAL_KEY"
"""Hex HMAC key of this run's bridge."""
SPEC_ENV = "DET_JUPYTER_TRIAL_SPEC"
"""Path of this run's pickled :class:`TrialSpec`."""


class BridgeServer:
    """The worker's side: relays the child's events into ``ctx`` and ``ctx``'s stop requests to it.

    Use it as a context manager around the child process; several processes may connect (one per
    rank of a launcher), each gets the stop request.
    """

    def __init__(self, ctx: TrialContext) -> None:
        self._ctx = ctx
        self._key = secrets.token_bytes(32)
        self._dir = Path(tempfile.mkdtemp(prefix="det-bridge-"))
        os.chmod(self._dir, 0o700)
        self.address = str(self._dir / "trial.sock")
        self.spec_path = self._dir / "trial.pkl"
        self.spec_path.write_bytes(pickle.dumps(ctx.spec))
        self._listener = Listener(self.address, family="AF_UNIX", authkey=self._key)
        self._closing = False
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept, name="det-jupyter-bridge", daemon=True)
        self._acceptor.start()

    def env(self) -> dict[str, str]:
        """The variables the child needs to find its trial."""
        return {BRIDGE_ENV: self.address, AUTHKEY_ENV: self._key.hex(), SPEC_ENV: str(self.spec_path)}

    def __enter__(self) -> BridgeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, timeout: float = 10.0) -> None:
        """Wait (up to ``timeout``) for the children's last events, then stop listening and clean up."""
        self._closing = True
        with contextlib.suppress(OSError, EOFError):  # wake the acceptor
            Client(self.address, family="AF_UNIX", authkey=self._key).close()
        self._acceptor.join(timeout)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)
        self._listener.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _accept(self) -> None:
        # Every connection is served until its end, even while closing: a child that connected just
        # before it exited still has its last events in the socket. close() connects last, so the
        # acceptor stops after it.
        while True:
            try:
                conn = self._listener.accept()
            except (OSError, EOFError):  # a failed handshake (wrong key) or the listener closed
                if self._closing:
                    return
                continue
            thread = threading.Thread(
                target=self._serve, args=(conn,), name="det-jupyter-bridge-conn", daemon=True
            )
            with self._lock:
                self._threads.append(thread)
            thread.start()
            if self._closing:
                return

    def _serve(self, conn: Connection) -> None:
        stop_sent, allowed = False, -math.inf
        flag = self._ctx._stop
        try:
            while True:
                if not stop_sent and flag.is_set():
                    conn.send(("stop",))
                    stop_sent = True
                if flag.decided > allowed:  # the searcher's "continue" after a rung validation
                    allowed = flag.decided
                    conn.send(("allow", allowed))
                if not conn.poll(0.05):
                    continue
                kind, *payload = conn.recv()
                if kind == "event":
                    self._ctx._relay(payload[0])
        except (EOFError, OSError):  # the child exited (or closed its context): done
            pass
        finally:
            conn.close()


class BridgeSink:
    """The child's :class:`~det_jupyter.worker.sinks.EventSink`: events go over the socket."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.closed = False

    def emit(self, event: dict[str, Any]) -> None:
        """Send one encoded event to the worker."""
        with self._lock:
            if not self.closed:
                self._conn.send(("event", event))

    def close(self) -> None:
        """Close the connection (after the context's last flush).

        The socket is shut down first: that wakes the receiver thread blocked reading it (a plain
        close would not) and tells the worker at once that this process is done.
        """
        with self._lock:
            if not self.closed:
                self.closed = True
                with contextlib.suppress(OSError):
                    socket.socket(fileno=os.dup(self._conn.fileno())).shutdown(socket.SHUT_RDWR)
                self._conn.close()


def read_spec(env: Mapping[str, str] | None = None) -> TrialSpec | None:
    """The run's spec, when this process was started as a command trial (else ``None``)."""
    path = (os.environ if env is None else env).get(SPEC_ENV)
    if not path:
        return None
    spec = pickle.loads(Path(path).read_bytes())
    assert isinstance(spec, TrialSpec)
    return spec


def connect(env: Mapping[str, str] | None = None) -> TrialContext:
    """The child's side: a trial context whose events reach the worker that started this process.

    A receiver thread sets the stop flag when the worker asks, and ends the process when the worker
    is gone (its socket closed under us): nothing would record this trial's work any more.
    """
    env = os.environ if env is None else env
    spec = read_spec(env)
    if spec is None or BRIDGE_ENV not in env:
        raise RuntimeError("this process was not started as a det_jupyter command trial")
    conn = Client(env[BRIDGE_ENV], family="AF_UNIX", authkey=bytes.fromhex(env[AUTHKEY_ENV]))
    sink = BridgeSink(conn)
    stop = StopFlag()
    ctx = TrialContext(spec, sink, stop)

    def receive() -> None:
        try:
            while True:
                kind, *args = conn.recv()
                if kind == "stop":
                    stop.set()
                elif kind == "allow":
                    stop.allow(args[0])
        except (EOFError, OSError):
            if not sink.closed:  # the worker died: this run's events have nowhere to go
                os._exit(75)

    threading.Thread(target=receive, name="det-jupyter-bridge-recv", daemon=True).start()

    def close() -> None:
        ctx._close()
        sink.close()

    atexit.register(close)
    return ctx
