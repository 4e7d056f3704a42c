"""The worker → controller events: typed records, ONE encoder and ONE decoder, used by both sides.

A run's :class:`~det_jupyter.worker.context.TrialContext` builds an event body (:class:`Started`,
:class:`Metrics`, :class:`CheckpointSaved`, :class:`Log`, :class:`Exited`), wraps it in a
:class:`RunEvent` with the run's ids and sequence number, and sends :func:`encode`'s msgpack-safe dict
with ``get_worker().log_event(topic, ...)``. The controller turns what arrives back into records with
:func:`decode`, which raises :class:`MalformedEvent` (the controller logs and ignores it) for anything
it does not recognise. The wire format is the table in ``docs/architecture.md``::

    {"type": "started",    "trial_id", "run_id", "seq", "worker", "host", "pid", "gpus", "restored_from"}
    {"type": "metrics",    ..., "records": [[kind, steps, {name: value}, reported_at], ...]}
    {"type": "checkpoint", ..., "uuid", "steps", "metadata", "resources"}
    {"type": "log",        ..., "lines": [[ts, text], ...]}
    {"type": "exited",     ..., "status", "traceback", "events_sent", "stopped"}

Metric values already follow :mod:`det_jupyter.worker.metric_values`' policy when they are encoded;
the decoder only checks them.

Example:
    >>> event = RunEvent(trial_id=4, run_id=0, seq=1, body=Log((LogLine(1.5, "hello"),)))
    >>> wire = encode(event)
    >>> wire
    {'type': 'log', 'trial_id': 4, 'run_id': 0, 'seq': 1, 'lines': [[1.5, 'hello']]}
    >>> decode(wire) == event
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

from det_jupyter.worker.metric_values import MetricValue, is_metric_value

__all__ = [
    "CheckpointSaved",
    "EventBody",
    "Exited",
    "Log",
    "LogLine",
    "MalformedEvent",
    "MetricKind",
    "MetricRecord",
    "Metrics",
    "RunEvent",
    "RunStatus",
    "Started",
    "decode",
    "decode_summary",
    "encode",
]


class MetricKind(str, Enum):
    """Which report a metric record comes from."""

    TRAINING = "training"
    VALIDATION = "validation"


class RunStatus(str, Enum):
    """How a run's user code ended, as the worker saw it."""

    COMPLETED = "completed"
    """User code returned."""
    ERROR = "error"
    """User code raised (the traceback is in :attr:`Exited.traceback` and the trial's log)."""


@dataclass(frozen=True)
class MetricRecord:
    """One ``report_*_metrics`` call: values already converted by the metric-value policy."""

    kind: MetricKind
    steps: int
    metrics: Mapping[str, MetricValue]
    reported_at: float


class LogLine(NamedTuple):
    """One line of a trial's output (wall-clock ``ts``)."""

    ts: float
    text: str


@dataclass(frozen=True)
class Started:
    """The run began on a worker."""

    worker: str
    host: str = ""
    pid: int = 0
    gpus: str = ""
    """``CUDA_VISIBLE_DEVICES`` of the worker process."""
    restored_from: str | None = None
    """UUID of the checkpoint the run starts from (``None`` on a fresh start)."""


@dataclass(frozen=True)
class Metrics:
    """Training and validation reports, in report order (training reports are batched ≤ 0.2 s)."""

    records: tuple[MetricRecord, ...]


@dataclass(frozen=True)
class CheckpointSaved:
    """A checkpoint was committed atomically to the checkpoint storage."""

    uuid: str
    steps: int
    metadata: Mapping[str, Any] = field(default_factory=dict)
    resources: Mapping[str, int] = field(default_factory=dict)
    """File name → size in bytes."""


@dataclass(frozen=True)
class Log:
    """Lines printed by the trial's thread (batched ≤ 0.2 s), or a traceback."""

    lines: tuple[LogLine, ...]


@dataclass(frozen=True)
class Exited:
    """The run's last event; also what the ``run_trial`` task returns (its *summary*)."""

    status: RunStatus
    traceback: str | None = None
    events_sent: int = 0
    """How many events the run sent before this one (the controller waits for them all)."""
    stopped: bool = False
    """Whether the run's stop flag was set when user code returned."""

    def summary(self) -> dict[str, Any]:
        """The msgpack-safe dict ``run_trial`` returns (read back with :func:`decode_summary`)."""
        return {
            "status": self.status.value,
            "traceback": self.traceback,
            "events_sent": self.events_sent,
            "stopped": self.stopped,
        }


EventBody = Started | Metrics | CheckpointSaved | Log | Exited

_TYPE_OF: dict[type, str] = {
    Started: "started",
    Metrics: "metrics",
    CheckpointSaved: "checkpoint",
    Log: "log",
    Exited: "exited",
}


@dataclass(frozen=True)
class RunEvent:
    """One event of one run of a trial: ``seq`` counts 1, 2, ... per run."""

    trial_id: int
    run_id: int
    seq: int
    body: EventBody


class MalformedEvent(ValueError):
    """An event :func:`decode` cannot read. ``trial_id`` / ``run_id`` are set when the header was readable."""

    def __init__(self, message: str, trial_id: int | None = None, run_id: int | None = None) -> None:
        super().__init__(message)
        self.trial_id = trial_id
        self.run_id = run_id


# --- encode ----------------------------------------------------------------------------------------


def encode(event: RunEvent) -> dict[str, Any]:
    """The msgpack-safe dict sent on the experiment's Dask topic.

    Example:
        >>> encode(RunEvent(1, 0, 3, CheckpointSaved("u", 5)))["type"]
        'checkpoint'
    """
    body = event.body
    out: dict[str, Any] = {
        "type": _TYPE_OF[type(body)],
        "trial_id": event.trial_id,
        "run_id": event.run_id,
        "seq": event.seq,
    }
    if isinstance(body, Metrics):
        out["records"] = [[r.kind.value, r.steps, dict(r.metrics), r.reported_at] for r in body.records]
    elif isinstance(body, Log):
        out["lines"] = [[ts, text] for ts, text in body.lines]
    elif isinstance(body, CheckpointSaved):
        out.update(
            uuid=body.uuid, steps=body.steps, metadata=dict(body.metadata), resources=dict(body.resources)
        )
    elif isinstance(body, Started):
        out.update(
            worker=body.worker, host=body.host, pid=body.pid, gpus=body.gpus, restored_from=body.restored_from
        )
    else:
        out.update(body.summary())
    return out


# --- decode ----------------------------------------------------------------------------------------


def decode(msg: object) -> RunEvent:
    """Read one event from the topic (the controller's only way in).

    Raises:
        MalformedEvent: not a dict, an unknown ``type``, or a field of the wrong type; the message
            names the field and the value.

    Example:
        >>> decode({"type": "exited", "trial_id": 1, "run_id": 0, "seq": 2, "status": "completed",
        ...         "traceback": None, "events_sent": 1, "stopped": False}).body.status
        <RunStatus.COMPLETED: 'completed'>
    """
    if not isinstance(msg, Mapping):
        raise MalformedEvent(f"event {msg!r} is a {type(msg).__name__}, not a dict")
    trial_id, run_id = msg.get("trial_id"), msg.get("run_id")
    ids = (trial_id, run_id) if _is_int(trial_id) and _is_int(run_id) else (None, None)
    try:
        header = _int(msg, "trial_id"), _int(msg, "run_id"), _int(msg, "seq")
        kind = msg.get("type")
        reader = _READERS.get(kind) if isinstance(kind, str) else None
        if reader is None:
            raise ValueError(f"unknown event type {kind!r} (known: {sorted(_READERS)})")
        return RunEvent(*header, reader(msg))
    except (ValueError, TypeError, KeyError) as exc:
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise MalformedEvent(f"malformed {msg.get('type')!r} event: {detail}", *ids) from None


def decode_summary(obj: object) -> Exited:
    """Read what ``run_trial`` returned (the fallback when its ``exited`` event is late).

    Example:
        >>> decode_summary({"status": "error", "traceback": "boom", "events_sent": 3, "stopped": False}).traceback
        'boom'
    """
    if not isinstance(obj, Mapping):
        raise MalformedEvent(f"run summary {obj!r} is a {type(obj).__name__}, not a dict")
    try:
        return _exited(obj)
    except (ValueError, TypeError, KeyError) as exc:
        raise MalformedEvent(f"malformed run summary {dict(obj)!r}: {exc}") from None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(msg: Mapping[str, Any], key: str) -> int:
    value = msg[key]
    if not _is_int(value):
        raise TypeError(f"{key} = {value!r} is not an int")
    return int(value)


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{what} = {value!r} is not a finite number")
    return float(value)


def _str(msg: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = msg.get(key, default) if default is not None else msg[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} = {value!r} is not a str")
    return value


def _optional_str(msg: Mapping[str, Any], key: str) -> str | None:
    value = msg.get(key)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{key} = {value!r} is not a str or None")
    return value


def _dict(msg: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = msg.get(key) or {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{key} = {value!r} is not a dict")
    return {str(k): v for k, v in value.items()}


def _started(msg: Mapping[str, Any]) -> Started:
    pid = msg.get("pid", 0)
    return Started(
        worker=_str(msg, "worker"),
        host=_str(msg, "host", ""),
        pid=int(pid) if _is_int(pid) else 0,
        gpus=_str(msg, "gpus", ""),
        restored_from=_optional_str(msg, "restored_from"),
    )


def _metrics(msg: Mapping[str, Any]) -> Metrics:
    records = []
    for raw in msg["records"]:
        if not isinstance(raw, (list, tuple)) or len(raw) != 4:
            raise TypeError(f"record {raw!r} is not [kind, steps, metrics, reported_at]")
        kind, steps, metrics, ts = raw
        if not _is_int(steps) or steps < 0:
            raise TypeError(f"record steps = {steps!r} is not a non-negative int")
        if not isinstance(metrics, Mapping):
            raise TypeError(f"record metrics = {metrics!r} is not a dict")
        for name, value in metrics.items():
            if not is_metric_value(value):
                raise TypeError(f"metric {name!r} = {value!r} breaks the metric-value policy")
        records.append(MetricRecord(MetricKind(kind), steps, dict(metrics), _number(ts, "reported_at")))
    return Metrics(tuple(records))


def _checkpoint(msg: Mapping[str, Any]) -> CheckpointSaved:
    steps = _int(msg, "steps")
    return CheckpointSaved(_str(msg, "uuid"), steps, _dict(msg, "metadata"), _dict(msg, "resources"))


def _log(msg: Mapping[str, Any]) -> Log:
    lines = []
    for raw in msg["lines"]:
        if not isinstance(raw, (list, tuple)) or len(raw) != 2:
            raise TypeError(f"log line {raw!r} is not [ts, text]")
        lines.append(LogLine(_number(raw[0], "ts"), str(raw[1])))
    return Log(tuple(lines))


def _exited(msg: Mapping[str, Any]) -> Exited:
    events_sent = msg.get("events_sent") or 0
    if not _is_int(events_sent):
        raise TypeError(f"events_sent = {events_sent!r} is not an int")
    return Exited(
        status=RunStatus(msg["status"]),
        traceback=_optional_str(msg, "traceback"),
        events_sent=int(events_sent),
        stopped=bool(msg.get("stopped")),
    )


_READERS: dict[str, Callable[[Mapping[str, Any]], EventBody]] = {
    "started": _started,
    "metrics": _metrics,
    "checkpoint": _checkpoint,
    "log": _log,
    "exited": _exited,
}
