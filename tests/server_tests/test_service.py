"""ExperimentService on its own: where its store is, and what it answers without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from det_jupyter.errors import NotFoundError
from det_jupyter.server.service import ActionConflictError, ExperimentService
from det_jupyter.states import ControlAction

from .helpers import fill_store


@pytest.fixture(autouse=True)
def _close_service() -> None:
    """Overrides the directory's server-bound fixture: these tests start no Jupyter server."""


def test_the_default_store_is_under_the_servers_det_jupyter_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DET_JUPYTER_HOME", str(tmp_path / "home"))
    service = ExperimentService()
    try:
        assert service.path == tmp_path / "home" / "det_jupyter.db"
    finally:
        service.close()


def test_store_path_trait_wins(tmp_path: Path) -> None:
    service = ExperimentService(store_path=str(tmp_path / "elsewhere.db"))
    try:
        ids = fill_store(service.store)
        assert service.path == tmp_path / "elsewhere.db"
        assert service.list_experiments(limit=10, offset=0)["total"] == 2
        with pytest.raises(NotFoundError):
            service.trial(12345, max_points=None, logs_tail=10)
        with pytest.raises(ActionConflictError, match="COMPLETED"):
            service.act(ids["done"], ControlAction.PAUSE)
    finally:
        service.close()
