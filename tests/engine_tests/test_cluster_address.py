"""A bad cluster address is a ClusterError within the connect timeout, never a hang (loopback only)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from det_jupyter.engine import cluster as cluster_module
from det_jupyter.errors import ClusterError

Handler = Callable[[socket.socket], None]


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], str]]:
    """Start a loopback TCP server running ``handler`` on each connection; yields its tcp:// address."""
    servers: list[socket.socket] = []
    conns: list[socket.socket] = []
    done = threading.Event()

    def start(handler: Handler) -> str:
        server = socket.create_server(("127.0.0.1", 0))
        server.settimeout(0.1)
        servers.append(server)

        def loop() -> None:
            while not done.is_set():
                try:
                    conn, _ = server.accept()
                except OSError:
                    continue
                conns.append(conn)
                handler(conn)

        threading.Thread(target=loop, daemon=True).start()
        return f"tcp://127.0.0.1:{server.getsockname()[1]}"

    yield start
    done.set()
    for s in [*conns, *servers]:
        s.close()


def _silent(conn: socket.socket) -> None:
    pass  # accept and never answer


def _http_after_request(conn: socket.socket) -> None:
    conn.settimeout(5)
    try:
        conn.recv(1024)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    except OSError:
        pass


def _http_at_once(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def _timed(address: str) -> tuple[ClusterError, float]:
    start = time.monotonic()
    with pytest.raises(ClusterError) as info:
        cluster_module.cluster(address)
    return info.value, time.monotonic() - start


@pytest.fixture(autouse=True)
def short_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT", 1.5)


def test_a_peer_that_accepts_and_stays_silent_is_an_error_not_a_hang(serve: Callable[[Handler], str]) -> None:
    address = serve(_silent)
    error, took = _timed(address)
    assert took < 5
    assert f"{address!r} accepted the connection but did not answer like a Dask scheduler within 1.5s" in str(
        error
    )
    assert "tcp://HOST:8786" in str(error) and "cluster=None" in str(error)


@pytest.mark.parametrize("handler", [_http_after_request, _http_at_once])
def test_a_dashboard_port_given_by_mistake_is_named(
    serve: Callable[[Handler], str], handler: Handler
) -> None:
    address = serve(handler)
    error, took = _timed(address)
    assert took < 5
    assert f"{address!r} is an HTTP server (a Dask dashboard?), not a Dask scheduler" in str(error)
    assert "8787 is the dashboard" in str(error)


def test_garbage_that_is_not_dask_is_named(serve: Callable[[Handler], str]) -> None:
    address = serve(lambda conn: conn.sendall(b"\xff" * 16))
    error, _ = _timed(address)
    assert "does not speak Dask's protocol" in str(error)


def test_a_refused_connection_is_named() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    error, took = _timed(f"tcp://127.0.0.1:{port}")
    assert took < 5 and f"cannot reach a Dask scheduler at 'tcp://127.0.0.1:{port}'" in str(error)
