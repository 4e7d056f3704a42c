"""Shared test helpers: a stand-in for the pydantic ``SearcherConfig`` and a simple trial driver."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from det_jupyter.searcher import Create, ExitReason, Operation, SearchMethod, Shutdown, Stop


@dataclass(frozen=True)
class SearcherCfg:
    """Only the attributes ``make_searcher`` reads (config.py's ``SearcherConfig`` has the same names)."""

    name: str
    metric: str = "loss"
    smaller_is_better: bool = True
    max_trials: int | None = None
    max_concurrent_trials: int = 0
    time_metric: str = "batches"
    max_time: int = 100
    mode: str = "standard"
    divisor: float = 4.0
    max_rungs: int = 5
    bracket_rungs: list[int] | None = None
    num_rungs: int | None = None
    stop_once: bool = False


def creates(ops: list[Operation]) -> list[Create]:
    return [op for op in ops if isinstance(op, Create)]


def stops(ops: list[Operation]) -> list[int]:
    return [op.request_id for op in ops if isinstance(op, Stop)]


def roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    """The state as it comes back from the store (JSON, strict: no NaN)."""
    return json.loads(json.dumps(state, allow_nan=False))


@dataclass
class Driver:
    """Applies a searcher's operations to a model of the controller and checks the contract."""

    searcher: SearchMethod
    live: list[int] = field(default_factory=list)
    stopped: set[int] = field(default_factory=set)
    created: list[Create] = field(default_factory=list)
    shutdown: Shutdown | None = None
    max_live: int = 0

    def apply(self, ops: list[Operation]) -> list[Operation]:
        assert self.shutdown is None, f"operations after Shutdown: {ops}"
        for i, op in enumerate(ops):
            if isinstance(op, Create):
                assert op.request_id == len(self.created) + 1, "request ids are 1, 2, ... in order"
                self.created.append(op)
                self.live.append(op.request_id)
            elif isinstance(op, Stop):
                assert op.request_id in self.live and op.request_id not in self.stopped
                self.stopped.add(op.request_id)
            else:
                assert i == len(ops) - 1, "Shutdown comes last"
                assert not self.live, f"Shutdown with live trials {self.live}"
                self.shutdown = op
        self.max_live = max(self.max_live, len(self.live))
        return ops

    def start(self) -> list[Operation]:
        return self.apply(self.searcher.initial_operations())

    def validate(self, request_id: int, metric: float, time: float) -> list[Operation]:
        return self.apply(self.searcher.on_validation_completed(request_id, metric, time))

    def exit(self, request_id: int, reason: ExitReason) -> list[Operation]:
        self.live.remove(request_id)
        ops = self.apply(self.searcher.on_trial_exited(request_id, reason))
        assert self.live or self.shutdown is not None, "no live trial and no Shutdown: the search would hang"
        return ops

    def run_fifo(self, metric_of: Any, report_times: Any, max_steps: int = 100_000) -> None:
        """Run trials one at a time in creation order (Determined's TestSearchRunner style).

        ``metric_of(request_id, time)`` gives metrics, ``report_times(request_id)`` the report times;
        a trial exits STOPPED after a Stop, else COMPLETED after its last report.
        """
        if not self.created:
            self.start()
        i = 0
        while self.shutdown is None and i < max_steps:
            rid = self.created[i].request_id
            for t in report_times(rid):
                self.validate(rid, metric_of(rid, t), t)
                if rid in self.stopped:
                    break
            self.exit(rid, ExitReason.STOPPED if rid in self.stopped else ExitReason.COMPLETED)
            i += 1
        assert self.shutdown is not None
