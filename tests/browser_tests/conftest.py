"""Browser-test fixtures: a real ``jupyter lab`` subprocess with the extension as installed in the venv,
and Debian's Chromium driven by Playwright, one of each per test module.

Each module gets its own ``DET_JUPYTER_HOME`` (``lab_home``), which the server and its kernels use,
and its own artifacts in ``test-artifacts/`` (``<module>-jupyter-lab.log``, ``<module>-last.png``).
Test modules skip themselves when Chromium or Playwright is missing (see ``require_browser``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from det_jupyter.store import Store

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
UI_TIMEOUT_MS = 60_000
VIEWPORT = {"width": 1400, "height": 900}
"""The screen of issue #13's checks: a laptop-sized window."""


def require_browser() -> Any:
    """Skip the calling test module unless Chromium and Playwright are here; returns ``playwright.sync_api``."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):  # CI installs Chromium (.ci/setup): a missing browser there is a failure
            pytest.fail(f"{CHROMIUM} missing in CI: .ci/setup should have installed it", pytrace=False)
        pytest.skip(
            f"{CHROMIUM} missing (apt-get install chromium; .ci/setup does it as root)",
            allow_module_level=True,
        )
    return pytest.importorskip("playwright.sync_api")


def shot(page: Any, name: str) -> Path:
    """Screenshot the whole page into ``test-artifacts/<name>.png``."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def _module_name(request: pytest.FixtureRequest) -> str:
    """``test_sidebar`` -> ``sidebar``: the prefix of a module's artifacts."""
    return request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _poll(condition: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    # module-scoped fixtures cannot use the function-scoped ``wait_for`` fixture; tests use that one
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def _write_settings(settings_dir: Path) -> None:
    """No news popup, no update check, no rename dialog; refresh the sidebar every second."""
    files = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
        "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"renameUntitledFileOnSave": False},
        "det-jupyter/plugin.jupyterlab-settings": {"refreshInterval": 1000},
    }
    for rel, data in files.items():
        path = settings_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def lab_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The DET_JUPYTER_HOME shared by the test (writer) and the jupyter server and its kernels."""
    return tmp_path_factory.mktemp("lab_det_home")


@pytest.fixture(scope="module")
def store(lab_home: Path) -> Store:
    return Store(lab_home / "det_jupyter.db")


@pytest.fixture(scope="module")
def lab(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, lab_home: Path
) -> Iterator[dict[str, Any]]:
    """A real ``jupyter lab`` on loopback with the extension as the venv has it installed.

    Yields ``url``, ``token``, ``root`` (the server's root dir: write notebooks there) and ``log``.
    """
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    root.mkdir()
    _write_settings(base / "settings")
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "DET_JUPYTER_HOME": str(lab_home),
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(base / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
    }
    log = (base / "lab.log").open("w")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "jupyter"),
            "lab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            "--allow-root",
            f"--ServerApp.root_dir={root}",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def api_up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"jupyter lab exited: {(base / 'lab.log').read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/det-jupyter/api/?token={token}", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    try:
        _poll(api_up, 90, "jupyter lab's det-jupyter API", interval=0.2)
        yield {"url": url, "token": token, "root": root, "log": base / "lab.log"}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(base / "lab.log", ARTIFACTS / f"{_module_name(request)}-jupyter-lab.log")


@pytest.fixture(scope="module")
def page(request: pytest.FixtureRequest, lab: dict[str, Any]) -> Iterator[Any]:
    """One Chromium page with JupyterLab loaded (the shell visible)."""
    sync_api = require_browser()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=VIEWPORT)
        pg = context.new_page()
        pg.set_default_timeout(UI_TIMEOUT_MS)
        pg.goto(f"{lab['url']}/lab?token={lab['token']}")
        pg.wait_for_selector("#jp-main-dock-panel", state="visible")
        pg.wait_for_selector(".jp-Launcher", state="visible")
        try:
            yield pg
        finally:
            shot(pg, f"{_module_name(request)}-last")
            context.close()
            browser.close()
