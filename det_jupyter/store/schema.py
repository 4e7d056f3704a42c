"""The store's SQLite schema: migrations (``PRAGMA user_version``) and the columns each row type reads.

Never edit a released migration; append one. ``migrate`` brings any older file up to date and refuses
a file written by a newer det_jupyter.

Example:
    >>> import sqlite3
    >>> conn = sqlite3.connect(":memory:", isolation_level=None)
    >>> migrate(conn, ":memory:")
    >>> conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    True
"""

from __future__ import annotations

import sqlite3
from dataclasses import fields

from det_jupyter.errors import StoreError
from det_jupyter.store.rows import CheckpointRow, ExperimentRow, TrialRow

__all__ = [
    "CHECKPOINT_COLUMNS",
    "EXPERIMENT_COLUMNS",
    "EXPERIMENT_UPDATABLE",
    "SCHEMA_VERSION",
    "TRIAL_COLUMNS",
    "TRIAL_UPDATABLE",
    "migrate",
]

# Each entry migrates the schema from version i to i + 1. Never edit a released entry; append.
_MIGRATIONS: list[str] = [
    """
    CREATE TABLE experiments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL,
        config TEXT NOT NULL,
        entrypoint BLOB NOT NULL,
        entrypoint_name TEXT NOT NULL DEFAULT '',
        load_hook BLOB,
        seed INTEGER NOT NULL,
        searcher_state TEXT,
        progress REAL NOT NULL DEFAULT 0,
        owner TEXT,
        heartbeat REAL,
        cluster_address TEXT,
        dashboard_link TEXT,
        error TEXT,
        created_at REAL NOT NULL,
        ended_at REAL
    );
    CREATE TABLE trials (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
        request_id INTEGER NOT NULL,
        hparams TEXT NOT NULL,
        state TEXT NOT NULL,
        restarts INTEGER NOT NULL DEFAULT 0,
        run_id INTEGER NOT NULL DEFAULT 0,
        steps_completed INTEGER NOT NULL DEFAULT 0,
        best_validation REAL,
        latest_validation REAL,
        searcher_time REAL NOT NULL DEFAULT 0,
        error TEXT,
        worker TEXT,
        created_at REAL NOT NULL,
        started_at REAL,
        ended_at REAL,
        UNIQUE (experiment_id, request_id)
    );
    CREATE INDEX trials_by_experiment ON trials(experiment_id);
    CREATE TABLE metrics (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        trial_id INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,
        run_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        steps INTEGER NOT NULL,
        metrics TEXT NOT NULL,
        reported_at REAL NOT NULL
    );
    CREATE INDEX metrics_by_trial ON metrics(trial_id, kind, steps);
    CREATE TABLE checkpoints (
        uuid TEXT PRIMARY KEY,
        trial_id INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,
        experiment_id INTEGER NOT NULL,
        run_id INTEGER NOT NULL,
        steps INTEGER NOT NULL,
        state TEXT NOT NULL,
        metric REAL,
        metadata TEXT NOT NULL,
        resources TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX checkpoints_by_trial ON checkpoints(trial_id, steps);
    CREATE INDEX checkpoints_by_experiment ON checkpoints(experiment_id);
    CREATE TABLE logs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        trial_id INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,
        run_id INTEGER NOT NULL,
        ts REAL NOT NULL,
        line TEXT NOT NULL
    );
    CREATE INDEX logs_by_trial ON logs(trial_id, id);
    CREATE TABLE requests (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
        action TEXT NOT NULL,
        created_at REAL NOT NULL,
        handled_at REAL
    );
    CREATE INDEX pending_requests ON requests(experiment_id, handled_at);
    """,
    # 2: a restarted run supersedes the reports of earlier runs after the checkpoint it resumed from
    # (Determined "archives" them); readers see only rows with superseded = 0.
    """
    ALTER TABLE metrics ADD COLUMN superseded INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX metrics_live_by_trial ON metrics(trial_id, superseded, steps)
    """,
    # 3: large frozen definitions live in content-addressed files beside the db (store/blobs.py); the
    # row keeps their sha256 and an empty inline BLOB. Rows written before keep their inline BLOBs.
    """
    ALTER TABLE experiments ADD COLUMN entrypoint_digest TEXT;
    ALTER TABLE experiments ADD COLUMN load_hook_digest TEXT
    """,
]
SCHEMA_VERSION = len(_MIGRATIONS)


def migrate(conn: sqlite3.Connection, path: object) -> None:
    """Apply the missing migrations inside the caller's transaction (``path`` names the file in errors)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"store {path} has schema version {version}, newer than this det_jupyter knows "
            f"({SCHEMA_VERSION}); upgrade det_jupyter or point DET_JUPYTER_HOME elsewhere"
        )
    for i in range(version, SCHEMA_VERSION):
        for statement in _MIGRATIONS[i].split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {i + 1}")


EXPERIMENT_COLUMNS = ", ".join(f.name for f in fields(ExperimentRow))
TRIAL_COLUMNS = ", ".join(f.name for f in fields(TrialRow))
CHECKPOINT_COLUMNS = ", ".join(f.name for f in fields(CheckpointRow))
TRIAL_UPDATABLE = {
    "state",
    "restarts",
    "run_id",
    "steps_completed",
    "best_validation",
    "latest_validation",
    "searcher_time",
    "error",
    "worker",
    "started_at",
    "ended_at",
}
EXPERIMENT_UPDATABLE = {
    "state",
    "progress",
    "owner",
    "heartbeat",
    "cluster_address",
    "dashboard_link",
    "error",
    "ended_at",
}
