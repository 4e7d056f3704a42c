"""The store: one SQLite file (WAL) that is the hub of det_jupyter; the only package with SQL.

Everything a person sees reads it (handles, widget, server, CLI); the controller is its only writer
of experiment progress; control actions are request rows. ``sqlite`` holds :class:`Store`;
rows are frozen snapshots with no link back to the store.

Example:
    >>> from det_jupyter.store import Store
    >>> store = Store(":memory:")
    >>> store.list_experiments()
    []
"""

from __future__ import annotations

from det_jupyter.store.rows import (
    CheckpointRow,
    ExperimentAggregate,
    ExperimentRow,
    LogRow,
    MetricRow,
    RequestRow,
    TrialRow,
    TrialStats,
)
from det_jupyter.store.schema import SCHEMA_VERSION
from det_jupyter.store.sqlite import Store, default_home

__all__ = [
    "SCHEMA_VERSION",
    "CheckpointRow",
    "ExperimentAggregate",
    "ExperimentRow",
    "LogRow",
    "MetricRow",
    "RequestRow",
    "Store",
    "TrialRow",
    "TrialStats",
    "default_home",
]
