"""Every REST route is authenticated, XSRF-protected for writes, and serves no file.

The routes come from :func:`det_jupyter.server.handlers.route_table` (checked against what the
running server registered), and the HTTP methods from the handler classes themselves, so a route or a
verb added later is covered without editing this file. A route whose path has a parameter after a
segment this file has no sample value for fails loudly (add the sample to ``_sample_values``).

Requests here are sent with ``http_server_client`` directly (not ``jp_fetch``, which always adds the
token and escapes ``%``), so the tests choose exactly which credentials and which raw path go out.
"""

from __future__ import annotations

import ast
import inspect
import json
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado.httpclient import HTTPResponse
from tornado.web import RequestHandler, StaticFileHandler

from det_jupyter.server import handlers as handlers_module
from det_jupyter.server import serializers as serializers_module
from det_jupyter.server import service as service_module
from det_jupyter.server.handlers import API_PREFIX, route_table
from det_jupyter.states import ExperimentState
from det_jupyter.store import CheckpointRow, LogRow, Store

from .helpers import fill_store

IDENT = r"([^/]+)"
ROUTES = [(pattern.removeprefix("/" + API_PREFIX), handler) for pattern, handler in route_table("/")]
ALL_METHODS = RequestHandler.SUPPORTED_METHODS  # GET HEAD POST DELETE PATCH PUT OPTIONS
WITH_BODY = {"POST", "PUT", "PATCH"}


def own_methods(handler: type[RequestHandler]) -> list[str]:
    """The HTTP methods a handler implements itself (not the 405 / CORS defaults of its bases)."""
    return [m for m in ALL_METHODS if getattr(handler, m.lower()) is not getattr(APIHandler, m.lower(), None)]


ROUTE_METHODS = [
    pytest.param(pattern, handler, method, id=f"{method} {pattern or '/'}")
    for pattern, handler in ROUTES
    for method in own_methods(handler)
]
WRITE_ROUTE_METHODS = [p for p in ROUTE_METHODS if p.values[2] not in ("GET", "HEAD")]
OTHER_METHODS = [
    pytest.param(pattern, handler, method, id=f"{method} {pattern or '/'}")
    for pattern, handler in ROUTES
    for method in ALL_METHODS
    if method not in own_methods(handler)
]


def _sample_values(ids: dict[str, int], method: str) -> dict[str, str]:
    """A value for a path parameter, by the segment before it, that makes the request succeed."""
    return {
        # DELETE needs a terminal experiment; actions (pause) an active one
        "experiments": str(ids["done"] if method == "DELETE" else ids["running"]),
        "trials": str(ids["trial"]),
        "actions": "pause",
    }


def concrete(pattern: str, values: dict[str, str]) -> str:
    """``/experiments/([^/]+)/trials/?`` → ``experiments/3/trials``."""
    path = pattern.removesuffix("/?").replace(IDENT, "{}").strip("/")
    segments = path.split("/") if path else []
    out = []
    for i, segment in enumerate(segments):
        if segment == "{}":
            before = segments[i - 1] if i else "<start>"
            assert before in values, f"no sample value for a parameter after {before!r}: add one"
            out.append(values[before])
        else:
            assert "(" not in segment, f"unexpected pattern segment {segment!r}: teach concrete()"
            out.append(segment)
    return "/".join(out)


async def send(
    http_server_client: Any, base_url: str, path: str, method: str, headers: dict[str, str]
) -> HTTPResponse:
    """One request to ``<base_url>det-jupyter/api/<path>``, the path sent exactly as given."""
    url = url_path_join(base_url, API_PREFIX, path) if path else url_path_join(base_url, API_PREFIX) + "/"
    body = b"" if method in WITH_BODY else None
    response: HTTPResponse = await http_server_client.fetch(
        url,
        method=method,
        headers=headers,
        body=body,
        raise_error=False,
        follow_redirects=False,
        allow_nonstandard_methods=True,
    )
    return response


def refused(response: HTTPResponse) -> bool:
    """401 / 403, or a redirect to the login page."""
    if response.code in (401, 403):
        return True
    return response.code in (301, 302, 303, 307) and "/login" in response.headers.get("Location", "")


def assert_untouched(store: Store, ids: dict[str, int]) -> None:
    assert store.get_experiment(ids["done"]).state == ExperimentState.COMPLETED  # not deleted
    assert store.get_experiment(ids["running"]).state == ExperimentState.ACTIVE
    assert store.pending_requests(ids["running"]) == []  # no control request written


def _rules(router: Any) -> list[Any]:
    """Every (nested) rule of a tornado router: add_handlers(host, ...) nests one router per host."""
    out = []
    for rule in getattr(router, "rules", []):
        out.append(rule)
        out += _rules(rule.target)
    return out


def test_route_table_is_what_the_extension_registers(jp_web_app: Any, jp_base_url: str) -> None:
    registered = {
        (rule.matcher.regex.pattern.removesuffix("$"), rule.target)
        for rule in _rules(jp_web_app.default_router)
        if isinstance(rule.target, type) and rule.target.__module__ == handlers_module.__name__
    }
    assert registered == set(route_table(jp_base_url))
    assert len(ROUTE_METHODS) >= len(ROUTES)  # every route has at least one verb


@pytest.mark.parametrize(("pattern", "handler", "method"), ROUTE_METHODS)
async def test_route_refuses_requests_without_a_token(
    http_server_client: Any, jp_base_url: str, det_store: Store, pattern: str, handler: type, method: str
) -> None:
    ids = fill_store(det_store)
    path = concrete(pattern, _sample_values(ids, method))
    response = await send(http_server_client, jp_base_url, path, method, headers={})
    assert refused(response), (response.code, response.body)
    assert b"done" not in (response.body or b"")  # nothing of the store leaks into the error
    bad_token = await send(http_server_client, jp_base_url, path, method, {"Authorization": "token nope"})
    assert refused(bad_token), (bad_token.code, bad_token.body)
    assert_untouched(det_store, ids)


@pytest.mark.parametrize(("pattern", "handler", "method"), ROUTE_METHODS)
async def test_route_works_with_the_token(
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
    det_store: Store,
    pattern: str,
    handler: type,
    method: str,
) -> None:
    ids = fill_store(det_store)
    path = concrete(pattern, _sample_values(ids, method))
    response = await send(http_server_client, jp_base_url, path, method, headers=dict(jp_auth_header))
    assert 200 <= response.code < 300, (response.code, response.body)


@pytest.mark.parametrize(("pattern", "handler", "method"), OTHER_METHODS)
async def test_methods_a_route_does_not_implement_expose_nothing(
    http_server_client: Any, jp_base_url: str, det_store: Store, pattern: str, handler: type, method: str
) -> None:
    """Unimplemented verbs answer 403/405 without a token; OPTIONS is Jupyter's empty CORS preflight."""
    ids = fill_store(det_store)
    path = concrete(pattern, _sample_values(ids, method))
    response = await send(http_server_client, jp_base_url, path, method, headers={})
    if method == "OPTIONS":
        assert response.code in (200, 204) and not response.body
    else:
        assert refused(response) or response.code == 405, (response.code, response.body)
    assert_untouched(det_store, ids)


async def _login_cookie(http_server_client: Any, jp_base_url: str, jp_auth_header: dict[str, str]) -> str:
    """The login cookie a browser gets: Jupyter sets it on a token-authenticated request."""
    response = await send(http_server_client, jp_base_url, "", "GET", headers=dict(jp_auth_header))
    assert response.code == 200
    cookies: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("Set-Cookie"):
        cookies.load(header)
    login = [m for name, m in cookies.items() if name.startswith("username-")]
    assert login, response.headers.get_list("Set-Cookie")
    return f"{login[0].key}={login[0].value}"


@pytest.mark.parametrize(("pattern", "handler", "method"), WRITE_ROUTE_METHODS)
async def test_cookie_authenticated_writes_need_the_xsrf_token(
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
    det_store: Store,
    pattern: str,
    handler: type,
    method: str,
) -> None:
    ids = fill_store(det_store)
    path = concrete(pattern, _sample_values(ids, method))
    login = await _login_cookie(http_server_client, jp_base_url, jp_auth_header)

    forged = await send(http_server_client, jp_base_url, path, method, {"Cookie": login})
    assert forged.code == 403, (forged.code, forged.body)
    assert "xsrf" in json.loads(forged.body)["message"].lower()
    mismatched = {"Cookie": f"{login}; _xsrf=abc", "X-XSRFToken": "xyz"}
    assert (await send(http_server_client, jp_base_url, path, method, mismatched)).code == 403
    assert_untouched(det_store, ids)

    # what JupyterLab's ServerConnection does: the _xsrf cookie echoed in the X-XSRFToken header
    browser = {"Cookie": f"{login}; _xsrf=abc", "X-XSRFToken": "abc"}
    response = await send(http_server_client, jp_base_url, path, method, browser)
    assert 200 <= response.code < 300, (response.code, response.body)


async def test_cookie_authenticated_reads_need_no_xsrf_token(
    http_server_client: Any, jp_base_url: str, jp_auth_header: dict[str, str], det_store: Store
) -> None:
    fill_store(det_store)
    login = await _login_cookie(http_server_client, jp_base_url, jp_auth_header)
    response = await send(http_server_client, jp_base_url, "experiments", "GET", {"Cookie": login})
    assert response.code == 200
    assert json.loads(response.body)["total"] == 2


# --- no route serves a file --------------------------------------------------------------------------

FILE_ACCESS = {
    "open",
    "read_text",
    "read_bytes",
    "send_file",
    "listdir",
    "scandir",
    "iterdir",
    "glob",
    "fsspec",
    "url_to_fs",
    "CheckpointStorage",
    "StaticFileHandler",
    "FileFindHandler",
    "AuthenticatedFileHandler",
}


def test_no_route_reads_files() -> None:
    """The API reports rows of the store (checkpoint uuids, resource names, log lines), never file contents.

    No handler is a file handler, and the server modules call nothing that reads files or lists
    directories (the store itself is SQLite, opened by ``det_jupyter.store``). If a download route is
    ever added, this test fails: give that route a containment check (resolve the path, refuse
    anything outside the storage root, symlinks included) and traversal tests like the ones below.
    """
    for _, handler in ROUTES:
        assert not issubclass(handler, StaticFileHandler), handler
    for module in (handlers_module, service_module, serializers_module):
        tree = ast.parse(inspect.getsource(module))
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        names |= {
            a.name.split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, ast.Import | ast.ImportFrom)
            for a in n.names
        }
        assert not names & FILE_ACCESS, f"{module.__name__} uses {sorted(names & FILE_ACCESS)}"


SENTINEL = "det-jupyter-sentinel-outside-the-storage-root"


@pytest.fixture
def outside_file(tmp_path: Path, det_store: Store) -> Path:
    """A file outside the store's directory, and symlinks to it (and to its folder) inside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text(SENTINEL)
    root = det_store.path.parent
    (root / "1").symlink_to(secret)
    (root / "checkpoints").symlink_to(outside, target_is_directory=True)
    return secret


def _traversal_values(secret: Path) -> list[str]:
    absolute = str(secret)
    return [
        "..",
        "../../../../etc/passwd".replace("/", "%2F"),
        "%2e%2e",
        "%2e%2e%2f%2e%2e%2fsecret.txt",
        "%252e%252e%252fsecret.txt",  # double-encoded
        "..%5c..%5csecret.txt",  # backslashes
        absolute.replace("/", "%2F"),  # an absolute path as one segment
        "1",  # the symlink's name in the store directory (an id here: reads the row, not the link)
        "checkpoints%2Fsecret.txt",
    ]


@pytest.mark.parametrize(("pattern", "handler", "method"), [p for p in ROUTE_METHODS if IDENT in p.values[0]])
async def test_path_parameters_never_reach_a_file(
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
    det_store: Store,
    outside_file: Path,
    pattern: str,
    handler: type,
    method: str,
) -> None:
    fill_store(det_store)
    for value in _traversal_values(outside_file):
        path = concrete(pattern, {"experiments": value, "trials": value, "actions": value})
        response = await send(http_server_client, jp_base_url, path, method, dict(jp_auth_header))
        assert SENTINEL not in response.body.decode(errors="replace"), path
        if value != "1":
            assert response.code in (400, 404), (path, response.code, response.body)


async def test_raw_dot_segments_and_query_values_never_reach_a_file(
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
    det_store: Store,
    outside_file: Path,
) -> None:
    ids = fill_store(det_store)
    paths = [
        "../../../../../etc/passwd",
        f"trials/{ids['trial']}/../../../../outside/secret.txt",
        f"trials/{ids['trial']}?logs_tail=..%2F..%2Fsecret.txt",
        f"trials/{ids['trial']}/metrics?kind=%2e%2e%2fsecret.txt",
        f"experiments?limit={str(outside_file).replace('/', '%2F')}",
    ]
    for path in paths:
        response = await send(http_server_client, jp_base_url, path, "GET", dict(jp_auth_header))
        assert response.code in (400, 404), (path, response.code)
        assert SENTINEL not in response.body.decode(errors="replace")


async def test_hostile_names_in_the_store_are_reported_not_opened(
    http_server_client: Any,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
    det_store: Store,
    outside_file: Path,
) -> None:
    """A checkpoint whose uuid and resources point outside, and a log line naming the file: data only."""
    ids = fill_store(det_store)
    det_store.add_checkpoint(
        CheckpointRow.committed(
            uuid="../../outside/secret.txt",
            trial_id=ids["trial"],
            experiment_id=ids["done"],
            run_id=0,
            steps=30,
            metadata={"path": str(outside_file)},
            resources={str(outside_file): 1, "../secret.txt": 1},
            metric=0.1,
        )
    )
    det_store.add_logs([LogRow(ids["trial"], 0, 1.0, str(outside_file))])
    response = await send(
        http_server_client, jp_base_url, f"trials/{ids['trial']}", "GET", dict(jp_auth_header)
    )
    assert response.code == 200
    body = json.loads(response.body)
    assert "../../outside/secret.txt" in [c["uuid"] for c in body["checkpoints"]]
    assert SENTINEL not in response.body.decode()
