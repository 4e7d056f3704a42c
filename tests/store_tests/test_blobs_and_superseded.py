"""Store durability: large definitions live in content-addressed files, superseded reports stay hidden."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from det_jupyter.errors import StoreError
from det_jupyter.store import MetricRow, Store
from det_jupyter.store.blobs import INLINE_LIMIT


def test_a_large_definition_lives_beside_the_db_and_loads_back(tmp_path: Path) -> None:
    store = Store(tmp_path / "det_jupyter.db")
    big, hook = os.urandom(3 * INLINE_LIMIT), os.urandom(INLINE_LIMIT)
    exp = store.create_experiment(name="big", config={}, entrypoint=big, seed=0, load_hook=hook)
    assert store.get_entrypoint(exp) == (big, hook)
    files = sorted(p.name for p in (tmp_path / "blobs").iterdir())
    assert len(files) == 2 and all(len(name) == 64 for name in files)
    assert (tmp_path / "det_jupyter.db").stat().st_size < INLINE_LIMIT
    # written once: a second experiment with the same definition shares the file
    again = store.create_experiment(name="again", config={}, entrypoint=big, seed=0)
    assert store.get_entrypoint(again) == (big, None)
    assert len(list((tmp_path / "blobs").iterdir())) == 2
    # a reader in another process sees the same
    assert Store(tmp_path / "det_jupyter.db").get_entrypoint(exp)[0] == big


def test_small_definitions_stay_inline_and_damaged_blobs_are_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "det_jupyter.db")
    small = store.create_experiment(name="s", config={}, entrypoint=b"tiny", seed=0)
    assert store.get_entrypoint(small) == (b"tiny", None)
    assert not (tmp_path / "blobs").exists()
    big = store.create_experiment(name="b", config={}, entrypoint=b"x" * INLINE_LIMIT, seed=0)
    (blob,) = (tmp_path / "blobs").iterdir()
    blob.write_bytes(b"y" * INLINE_LIMIT)
    with pytest.raises(StoreError, match="damaged"):
        store.get_entrypoint(big)
    blob.unlink()
    with pytest.raises(StoreError, match="missing"):
        store.get_entrypoint(big)


def test_rows_written_inline_by_an_older_schema_keep_loading(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = Store(path)
    exp = store.create_experiment(name="old", config={}, entrypoint=b"x", seed=0)
    with sqlite3.connect(path) as raw:  # as schema 1 wrote it: a large inline BLOB, no digest
        raw.execute("UPDATE experiments SET entrypoint = ? WHERE id = ?", (b"z" * 2 * INLINE_LIMIT, exp))
    assert Store(path).get_entrypoint(exp) == (b"z" * 2 * INLINE_LIMIT, None)


def test_superseded_reports_are_hidden_from_every_reader(tmp_path: Path) -> None:
    store = Store(tmp_path / "det_jupyter.db")
    exp = store.create_experiment(name="e", config={}, entrypoint=b"", seed=0)
    trial = store.create_trial(exp, 0, {})
    store.add_metrics(
        [MetricRow(trial, 0, "training", s, {"loss": 1.0}, 0.0) for s in range(1, 10)]
        + [MetricRow(trial, 0, "validation", 5, {"val_loss": 0.5}, 0.0)]
    )
    last, _ = store.metrics_since(experiment_id=exp)
    assert store.supersede_metrics(trial, run_id=1, after_steps=5) == 4
    store.add_metrics([MetricRow(trial, 1, "training", s, {"loss": 2.0}, 0.0) for s in range(6, 11)])
    rows = store.metrics(experiment_id=exp)
    keys = [(m.trial_id, m.kind, m.steps) for m in rows]
    assert len(keys) == len(set(keys)) == 11
    assert [m.run_id for m in rows if m.steps > 5] == [1] * 5
    _, new = store.metrics_since(experiment_id=exp, after_id=last)
    assert [(m.run_id, m.steps) for m in new] == [(1, s) for s in range(6, 11)]
    # a later restart from the same checkpoint supersedes run 1's reports too, never run 2's
    assert store.supersede_metrics(trial, run_id=2, after_steps=5) == 5
    assert store.supersede_metrics(trial, run_id=2, after_steps=5) == 0
