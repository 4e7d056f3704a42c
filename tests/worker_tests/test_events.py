"""The worker → controller events: one encoder, one decoder, malformed input refused with a reason."""

from __future__ import annotations

import math
from typing import Any

import pytest

from det_jupyter.worker.events import (
    CheckpointSaved,
    Exited,
    Log,
    LogLine,
    MalformedEvent,
    MetricKind,
    MetricRecord,
    Metrics,
    RunEvent,
    RunStatus,
    Started,
    decode,
    decode_summary,
    encode,
)
from det_jupyter.worker.metric_values import metric_values

BODIES = [
    Started("tcp://w", "host", 12, "0", "ck"),
    Metrics((MetricRecord(MetricKind.VALIDATION, 5, {"a": 0.5, "b": None, "c": True, "d": "x"}, 1.0),)),
    CheckpointSaved("u", 5, {"epoch": 1}, {"f": 3}),
    Log((LogLine(1.0, "hello"),)),
    Exited(RunStatus.ERROR, "tb", events_sent=4, stopped=True),
]


@pytest.mark.parametrize("body", BODIES, ids=lambda b: type(b).__name__)
def test_encode_decode_round_trip(body: Any) -> None:
    event = RunEvent(3, 1, 7, body)
    wire = encode(event)
    assert {"type", "trial_id", "run_id", "seq"} <= set(wire)
    assert decode(wire) == event


def test_the_run_summary_round_trips() -> None:
    exited = Exited(RunStatus.COMPLETED, None, events_sent=2)
    assert decode_summary(exited.summary()) == exited


@pytest.mark.parametrize(
    ("msg", "match"),
    [
        ([1, 2], "not a dict"),
        ({"type": "teleport", "trial_id": 1, "run_id": 0, "seq": 1}, "unknown event type 'teleport'"),
        (
            {"type": "log", "trial_id": "1", "run_id": 0, "seq": 1, "lines": []},
            "trial_id = '1' is not an int",
        ),
        ({"type": "log", "trial_id": 1, "run_id": 0, "seq": 1}, "missing field 'lines'"),
        (
            {
                "type": "metrics",
                "trial_id": 1,
                "run_id": 0,
                "seq": 1,
                "records": [["training", 1, {"x": [1]}, 0.0]],
            },
            "breaks the metric-value policy",
        ),
        (
            {
                "type": "metrics",
                "trial_id": 1,
                "run_id": 0,
                "seq": 1,
                "records": [["training", 1, {"x": math.nan}, 0.0]],
            },
            "breaks the metric-value policy",
        ),
        ({"type": "exited", "trial_id": 1, "run_id": 0, "seq": 1, "status": "exploded"}, "exploded"),
    ],
)
def test_malformed_events_are_refused_with_the_reason(msg: object, match: str) -> None:
    with pytest.raises(MalformedEvent, match=match):
        decode(msg)


def test_a_malformed_event_keeps_its_readable_header() -> None:
    with pytest.raises(MalformedEvent) as info:
        decode({"type": "teleport", "trial_id": 4, "run_id": 2, "seq": 1})
    assert (info.value.trial_id, info.value.run_id) == (4, 2)


def test_the_metric_value_policy() -> None:
    np = pytest.importorskip("numpy")
    values = [1, 0.5, math.nan, math.inf, -math.inf, np.float32(0.25), np.int64(3), True, "adam", None]
    assert metric_values(values) == [1, 0.5, None, None, None, 0.25, 3, True, "adam", None]
    with pytest.raises(TypeError, match="not a number"):
        metric_values([[1, 2]])
