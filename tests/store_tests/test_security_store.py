"""The store holds configs in clear (storage credentials included): a new store is private to its owner.

A new store file is created 0600 and a new directory for it 0700 (SQLite's ``-wal`` / ``-shm`` files
take the database's mode); existing files and directories keep the modes their owner gave them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from det_jupyter.store import Store


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_store_and_its_new_directory_are_private(tmp_path: Path) -> None:
    home = tmp_path / "home" / "det"
    store = Store(home / "det_jupyter.db")
    store.create_experiment(name="e", config={"searcher": {}}, entrypoint=b"", seed=1)  # WAL files appear
    assert mode(home) == 0o700
    assert mode(store.path) == 0o600
    for sidecar in home.glob("det_jupyter.db-*"):  # -wal, -shm
        assert mode(sidecar) & 0o077 == 0, sidecar


def test_the_default_home_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DET_JUPYTER_HOME", str(tmp_path / "det_home"))
    store = Store()
    assert mode(store.path.parent) == 0o700 and mode(store.path) == 0o600


def test_existing_files_and_directories_keep_their_modes(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o750)  # e.g. a group-shared team store, set up on purpose
    db = shared / "det_jupyter.db"
    db.touch()
    os.chmod(db, 0o640)
    Store(db).list_experiments()
    assert mode(shared) == 0o750 and mode(db) == 0o640
