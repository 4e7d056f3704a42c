"""Dask dashboard links that work from the browser: through jupyter-server-proxy when it is installed.

A dashboard link as Dask names it (``http://127.0.0.1:8787/status``) only works in a browser on the
same machine. Behind JupyterHub or any remote Jupyter server, jupyter-server-proxy serves it at
``<base_url>proxy/<port>/status`` (``proxy/<host>:<port>/...`` for another host), as
dask-labextension links it; the sidebar uses that path when :func:`proxy_installed`, else the direct
link (rewritten by the sidebar to the host the browser reached Jupyter at when Dask names an
unspecified address such as ``0.0.0.0``).

Example:
    >>> dashboard_proxy_path("http://127.0.0.1:8787/status", "/user/ana/")
    '/user/ana/proxy/8787/status'
    >>> dashboard_proxy_path("http://10.0.0.5:8787/status", "/")
    '/proxy/10.0.0.5:8787/status'
    >>> direct_dashboard_link("tcp://127.0.0.1:8787")
    'http://127.0.0.1:8787/status'
"""

from __future__ import annotations

import importlib.util
import socket
from urllib.parse import urlsplit

from jupyter_server.utils import url_path_join

__all__ = ["LOCAL_HOSTS", "dashboard_proxy_path", "direct_dashboard_link", "proxy_installed"]

#: Hosts that jupyter-server-proxy reaches as ``proxy/<port>`` (the server's own machine).
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "0.0.0.0", "::", "::1", ""})


def proxy_installed() -> bool:
    """Whether jupyter-server-proxy is importable in the server's environment (it serves ``proxy/``)."""
    return importlib.util.find_spec("jupyter_server_proxy") is not None


def direct_dashboard_link(link: str | None) -> str | None:
    """``link`` as an ``http(s)`` URL with a path (Dask's ``/status`` page when it names none).

    >>> direct_dashboard_link("http://127.0.0.1:8787/status"), direct_dashboard_link(None)
    ('http://127.0.0.1:8787/status', None)
    """
    if not link:
        return None
    parts = urlsplit(link if "://" in link else f"http://{link}")
    scheme = parts.scheme if parts.scheme in ("http", "https") else "http"
    path = parts.path if parts.path not in ("", "/") else "/status"
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{parts.netloc}{path}{query}"


def dashboard_proxy_path(link: str | None, base_url: str) -> str | None:
    """The dashboard's path through jupyter-server-proxy on the Jupyter server at ``base_url``.

    ``None`` when ``link`` names no port. The caller decides whether the proxy is there
    (:func:`proxy_installed`).
    """
    direct = direct_dashboard_link(link)
    if direct is None:
        return None
    parts = urlsplit(direct)
    try:
        port = parts.port
    except ValueError:
        return None
    if port is None:
        return None
    host = parts.hostname or ""
    local = host in LOCAL_HOSTS or host.startswith("127.") or host == socket.gethostname()
    target = str(port) if local else f"{host}:{port}"
    path = url_path_join(base_url or "/", "proxy", target, parts.path.lstrip("/"))
    return path + (f"?{parts.query}" if parts.query else "")
