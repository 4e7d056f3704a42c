"""Fixtures for the server extension: pytest_jupyter's server fixtures, scoped to this directory.

``pytest_jupyter``'s plugins are imported here (not enabled with ``-p`` for the whole suite) so their
autouse event-loop and server-cleanup fixtures and their coroutine-test hooks touch only these tests;
the Dask tests elsewhere keep their own loops. Async tests here run on the loop pytest_jupyter makes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_jupyter.jupyter_core import *  # noqa: F403
from pytest_jupyter.jupyter_server import *  # noqa: F403
from pytest_jupyter.pytest_tornasync import *  # noqa: F403
from traitlets.config import Config

from det_jupyter.server.service import SETTINGS_KEY
from det_jupyter.store import Store


@pytest.fixture
def det_store(tmp_path: Path) -> Store:
    """An empty store in a temp dir."""
    return Store(tmp_path / "store" / "det_jupyter.db")


@pytest.fixture
def service_config() -> dict[str, Any]:
    """Extra ``c.ExperimentService`` settings a test wants (override in a test module)."""
    return {}


@pytest.fixture
def jp_server_config(det_store: Store, service_config: dict[str, Any]) -> Config:
    """A Jupyter server with only our extension enabled, over ``det_store``."""
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"det_jupyter.server": True, "jupyter_server_terminals": False}
            },
            "ExperimentService": {"store_path": str(det_store.path), **service_config},
        }
    )


@pytest.fixture(autouse=True)
def _close_service(jp_serverapp: Any) -> Iterator[None]:
    """Disconnect the extension's Dask clients when a test's server goes away."""
    yield
    service = jp_serverapp.web_app.settings.get(SETTINGS_KEY)
    if service is not None:
        service.close()
