"""Where a trial's events go: the Dask topic on a cluster, a list in the kernel.

A sink receives events already encoded by :func:`det_jupyter.worker.events.encode` (msgpack-safe
dicts). ``emit`` must be cheap and thread-safe: a checkpoint written in the background and the
trial's thread may emit at the same time.

Example:
    >>> from det_jupyter.worker.events import Log, LogLine, RunEvent, encode
    >>> sink = ListSink()
    >>> sink.emit(encode(RunEvent(1, 0, 1, Log((LogLine(0.0, "hi"),)))))
    >>> sink.events[0]["lines"]
    [[0.0, 'hi']]
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from det_jupyter.worker.events import MetricKind, Metrics, decode

__all__ = ["DaskSink", "EventSink", "ListSink"]


class EventSink(Protocol):
    """Where a trial's events go. ``emit`` must be cheap and thread-safe; events are msgpack-safe dicts."""

    def emit(self, event: dict[str, Any]) -> None: ...


class ListSink:
    """An :class:`EventSink` that keeps events in lists (local runs and tests).

    ``before_read``, if set (``local_context`` sets it to the context's flush), runs before
    :attr:`events` is read, so buffered reports show up without being sent one by one.
    """

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.before_read: Callable[[], None] | None = None

    def emit(self, event: dict[str, Any]) -> None:
        """Keep one encoded event."""
        with self._lock:
            self._events.append(event)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event emitted so far, in order, as sent on the wire."""
        if self.before_read is not None:
            self.before_read()
        return self._events

    def _records(self, kind: MetricKind) -> list[dict[str, Any]]:
        out = []
        for wire in self.events:
            body = decode(wire).body
            if isinstance(body, Metrics):
                out += [
                    {"steps": r.steps, "metrics": dict(r.metrics)} for r in body.records if r.kind == kind
                ]
        return out

    @property
    def training(self) -> list[dict[str, Any]]:
        """Training reports in order, as ``{"steps", "metrics"}``."""
        return self._records(MetricKind.TRAINING)

    @property
    def validation(self) -> list[dict[str, Any]]:
        """Validation reports in order, as ``{"steps", "metrics"}``."""
        return self._records(MetricKind.VALIDATION)


class DaskSink:
    """An :class:`EventSink` that sends events to the controller over the Dask scheduler.

    Args:
        worker: the ``distributed.Worker`` running the trial (``get_worker()``).
        topic: the experiment's topic (``TrialSpec.topic``), which the controller subscribed to.
    """

    def __init__(self, worker: Any, topic: str) -> None:
        self._worker = worker
        self._topic = topic

    def emit(self, event: dict[str, Any]) -> None:
        """Send one event (``log_event`` is thread-safe and does not block on the network)."""
        self._worker.log_event(self._topic, event)
