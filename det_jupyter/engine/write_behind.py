"""The controller's write-behind buffer: rows gathered during one loop pass, written at its end.

One pass of :class:`~det_jupyter.engine.controller.Controller` runs in one store transaction; the
buffer turns the many small writes of a burst of events (metric reports, log lines, trial columns)
into a few ``executemany`` calls, and it is the only place the controller adds metric and log rows.

Example:
    >>> from det_jupyter.store import Store
    >>> store = Store(":memory:")
    >>> trial = store.create_trial(store.create_experiment(name="e", config={}, entrypoint=b"", seed=0), 0, {})
    >>> writes = WriteBehind(store)
    >>> writes.update_trial(trial, steps_completed=5)
    >>> writes.flush()
    >>> store.get_trial(trial).steps_completed
    5
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from det_jupyter.store import LogRow, MetricRow, Store
from det_jupyter.worker.events import LogLine, Metrics

__all__ = ["WriteBehind"]


class WriteBehind:
    """Store rows buffered during one loop iteration and written at its end, inside its transaction.

    Not thread-safe: only the controller's loop thread uses it.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._trials: dict[int, dict[str, Any]] = {}
        self._metrics: list[MetricRow] = []
        self._logs: list[LogRow] = []

    def update_trial(self, trial_id: int, **values: Any) -> None:
        """Set trial columns at the next flush (later values for a column win)."""
        self._trials.setdefault(trial_id, {}).update(values)

    def metrics(self, trial_id: int, run_id: int, body: Metrics) -> None:
        """Buffer a run's metric reports as rows."""
        self._metrics += [
            MetricRow(trial_id, run_id, m.kind.value, m.steps, dict(m.metrics), m.reported_at)
            for m in body.records
        ]

    def logs(self, trial_id: int, run_id: int, lines: Iterable[LogLine]) -> None:
        """Buffer a run's log lines as rows."""
        self._logs += [LogRow(trial_id, run_id, line.ts, line.text) for line in lines]

    def flush(self) -> None:
        """Write everything buffered (inside the caller's transaction) and start empty."""
        if self._metrics:
            self._store.add_metrics(self._metrics)
            self._metrics = []
        if self._logs:
            self._store.add_logs(self._logs)
            self._logs = []
        for trial_id, values in self._trials.items():
            self._store.update_trial(trial_id, **values)
        self._trials.clear()
