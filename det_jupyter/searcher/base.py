"""The searcher contract: events in, operations out.

A searcher is a pure state machine, as Determined's ``master/pkg/searcher/search_method.go``: the
controller tells it what happened to trials and it answers with operations. It does no I/O, reads no
clock and uses no global random state: all randomness comes from a ``random.Random`` held in its state,
so a given seed and event sequence always give the same operations, and
``state_dict()``/``load_state_dict()`` resume a search exactly.

Example:
    >>> from det_jupyter.hparams import parse_hyperparameters
    >>> from det_jupyter.searcher.random import RandomSearch
    >>> s = RandomSearch(parse_hyperparameters({"lr": 0.1}), max_trials=2, max_concurrent_trials=1, max_time=10, seed=0)
    >>> s.initial_operations()
    [Create(request_id=1, hparams={'lr': 0.1})]
    >>> s.on_validation_completed(1, metric=0.5, time=10)
    []
    >>> s.on_trial_exited(1, ExitReason.COMPLETED)
    [Create(request_id=2, hparams={'lr': 0.1})]
    >>> s.on_trial_exited(2, ExitReason.COMPLETED)
    [Shutdown(failure=False)]
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from det_jupyter.errors import DetJupyterError

__all__ = [
    "Create",
    "ExitReason",
    "Operation",
    "SearchMethod",
    "SearcherStateError",
    "Shutdown",
    "Stop",
    "TrialLedger",
]


@dataclass(frozen=True)
class Create:
    """Create a trial. ``request_id`` is the searcher's id for it (1, 2, ... in creation order)."""

    request_id: int
    hparams: dict[str, Any]


@dataclass(frozen=True)
class Stop:
    """Stop a running trial early (it should checkpoint and exit; it then exits ``STOPPED``)."""

    request_id: int


@dataclass(frozen=True)
class Shutdown:
    """The search is over: every created trial has exited and no more will be created.

    ``failure`` is true when every trial the search created errored (Determined's rule).
    """

    failure: bool = False


Operation = Create | Stop | Shutdown


class ExitReason(str, Enum):
    """Why a trial exited, as the controller reports it to the searcher."""

    COMPLETED = "COMPLETED"
    """Trained to ``max_time``."""
    STOPPED = "STOPPED"
    """Stopped after a :class:`Stop` operation."""
    ERRORED = "ERRORED"
    """Failed permanently after its restarts."""
    CANCELED = "CANCELED"
    """The user killed it."""


class SearcherStateError(DetJupyterError, ValueError):
    """The controller broke the searcher contract (unknown trial, wrong state dict, ...)."""


class SearchMethod(ABC):
    """Abstract searcher: turns trial events into :data:`Operation` lists.

    Contract:
        * The controller calls :meth:`initial_operations` exactly once, then reports events with
          :meth:`on_validation_completed` and :meth:`on_trial_exited`, applying the returned
          operations in order. Request ids come from :class:`Create` operations only.
        * A trial is *live* from its ``Create`` until the controller reports its exit. Every searcher
          keeps at most ``max_concurrent_trials`` trials live and never creates more than its trial
          budget; trials are created lazily (up to the concurrency limit at first, then as trials exit).
        * An exited trial (whatever the reason, errors included) counts against the budget; the
          searcher may create another one in its place while budget remains.
        * When every created trial has exited and none will be created, the call that reported the
          last exit returns :class:`Shutdown` (last in its list). Nothing follows it.
        * Validations from trials already told to stop, or already exited, are ignored; a repeated
          exit report is ignored. Events for request ids the searcher never created raise
          :class:`SearcherStateError`.
        * Not thread-safe: the controller calls from one thread (or holds a lock).

    Attributes:
        name: the searcher name as in the config (``"random"``, ``"adaptive_asha"``, ...).
    """

    name: str = "base"
    validations_change_only_progress: bool = False
    """True when :meth:`on_validation_completed` changes nothing but the trial's reported time (so
    only :meth:`progress`). The controller then saves the state lazily after validations (at most
    every half second) instead of in the pass that reported them; exits it saves lazily for every
    searcher, since a resumed experiment replays the exits its store holds (see
    ``Controller._resume_trials``). Searchers whose validations shape later decisions (ASHA's rungs,
    a custom model) keep the default, ``False``: their state is saved in the same transaction."""

    @abstractmethod
    def initial_operations(self) -> list[Operation]:
        """The first operations (the first ``Create`` s); call once."""

    @abstractmethod
    def on_validation_completed(self, request_id: int, metric: float, time: float) -> list[Operation]:
        """A trial reported its searcher metric after training ``time`` units (e.g. batches).

        ``metric`` is raw: the searcher applies ``smaller_is_better`` itself.
        """

    @abstractmethod
    def on_trial_exited(self, request_id: int, reason: ExitReason) -> list[Operation]:
        """A trial exited for ``reason``; returns new ``Create`` s and, at the end, ``Shutdown``."""

    @abstractmethod
    def progress(self) -> float:
        """Search progress in ``[0, 1]``; 1.0 once the search has shut down."""

    def decision_points(self, request_id: int) -> tuple[float, ...]:
        """Trial lengths at which a validation may make this searcher stop the trial (ASHA's rungs).

        A trial that reports its validation at (or past) one of them waits, in its next
        ``should_stop()``, for the searcher's answer, so it never trains past a rung it was stopped
        at however fast its epochs are. Searchers that never stop trials early return ``()`` (the
        default): their trials never wait.
        """
        return ()

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot of all mutable state (random generator included)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output into a searcher built with the same config and space."""

    def _start_once(self) -> None:
        """Enforce the contract that ``initial_operations`` is called once per search."""
        if getattr(self, "_started", False):
            raise SearcherStateError("initial_operations() was already called; call it once per search")
        self._started = True

    def _check_state_type(self, state: dict[str, Any]) -> None:
        if state.get("searcher") != self.name:
            raise SearcherStateError(
                f"cannot load a {state.get('searcher')!r} searcher state into a {self.name!r} searcher; "
                "restore it into a searcher built from the same experiment config"
            )


def rng_state(rng: random.Random) -> list[Any]:
    """``rng.getstate()`` as JSON-safe lists."""
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def rng_from_state(state: list[Any]) -> random.Random:
    """Inverse of :func:`rng_state`."""
    rng = random.Random()
    rng.setstate((state[0], tuple(state[1]), state[2]))
    return rng


@dataclass
class TrialLedger:
    """Bookkeeping every searcher shares: request ids, live trials, exits, errors, progress.

    Attributes:
        created: trials created so far (request ids are ``1..created``).
        live: request ids created and not yet exited, in creation order (a dict used as an ordered
            set: a search with 10,000 live trials exits each in O(1)).
        exited: trials that have exited.
        errored: trials that exited ``ERRORED``.
        time: last reported training time of each live trial.
    """

    created: int = 0
    live: dict[int, None] = field(default_factory=dict)
    exited: int = 0
    errored: int = 0
    time: dict[int, float] = field(default_factory=dict)

    def new_trial(self) -> int:
        self.created += 1
        self.live[self.created] = None
        self.time[self.created] = 0.0
        return self.created

    def check_known(self, request_id: int) -> None:
        if not 1 <= request_id <= self.created:
            raise SearcherStateError(
                f"request_id {request_id} was never created by this searcher "
                f"(ids 1..{self.created} exist); report only ids from Create operations"
            )

    def is_live(self, request_id: int) -> bool:
        self.check_known(request_id)
        return request_id in self.time

    def record_time(self, request_id: int, time: float) -> None:
        if request_id in self.time:
            self.time[request_id] = max(self.time[request_id], float(time))

    def exit(self, request_id: int, reason: ExitReason) -> bool:
        """Mark a trial exited; False if it had already exited (the report is then ignored)."""
        if not self.is_live(request_id):
            return False
        del self.live[request_id]
        del self.time[request_id]
        self.exited += 1
        if ExitReason(reason) is ExitReason.ERRORED:
            self.errored += 1
        return True

    def shutdown(self) -> Shutdown:
        return Shutdown(failure=self.created > 0 and self.errored == self.created)

    def to_state(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "live": list(self.live),
            "exited": self.exited,
            "errored": self.errored,
            "time": [[k, v] for k, v in self.time.items()],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TrialLedger:
        return cls(
            created=int(state["created"]),
            live=dict.fromkeys(int(x) for x in state["live"]),
            exited=int(state["exited"]),
            errored=int(state["errored"]),
            time={int(k): float(v) for k, v in state["time"]},
        )


class FixedLengthSearch(SearchMethod):
    """A search whose trials are independent and each train to ``max_time`` (single, random, grid).

    ``max_time`` ``None`` means the trial code decides how long each trial trains (Determined >= 0.38);
    progress then counts finished trials over planned ones.

    Subclasses say how many trials there are and which hparams come next; this class creates them
    lazily under the concurrency limit, as Determined's ``random.go`` / ``grid.go`` do: an exited trial
    (errored too) is never retried, the next planned trial takes its slot.
    """

    validations_change_only_progress = True

    def __init__(self, total_trials: int, max_concurrent_trials: int, max_time: int | None) -> None:
        if total_trials < 0 or max_concurrent_trials < 0 or (max_time is not None and max_time < 1):
            raise ValueError(
                f"need total_trials >= 0, max_concurrent_trials >= 0 and max_time >= 1 "
                f"(got {total_trials}, {max_concurrent_trials}, {max_time})"
            )
        self.total_trials = total_trials
        self.max_concurrent_trials = max_concurrent_trials
        self.max_time = max_time
        self._ledger = TrialLedger()
        self._started = False
        self._done = False

    @abstractmethod
    def _next_hparams(self) -> dict[str, Any]:
        """Hyperparameters of the next trial to create."""

    def _fill(self) -> list[Operation]:
        ops: list[Operation] = []
        limit = self.max_concurrent_trials or self.total_trials
        while self._ledger.created < self.total_trials and len(self._ledger.live) < limit:
            hparams = self._next_hparams()
            ops.append(Create(self._ledger.new_trial(), hparams))
        if not self._ledger.live and self._ledger.created >= self.total_trials and not self._done:
            self._done = True
            ops.append(self._ledger.shutdown())
        return ops

    def initial_operations(self) -> list[Operation]:
        self._start_once()
        return self._fill()

    def on_validation_completed(self, request_id: int, metric: float, time: float) -> list[Operation]:
        self._ledger.check_known(request_id)
        self._ledger.record_time(request_id, time)
        return []

    def on_trial_exited(self, request_id: int, reason: ExitReason) -> list[Operation]:
        if not self._ledger.exit(request_id, reason):
            return []
        return self._fill()

    def progress(self) -> float:
        # Determined: closed trials count as done, live ones by the fraction of max_time trained.
        if self._done or self.total_trials == 0:
            return 1.0
        if self.max_time is None:  # no length: only finished trials tell how far the search is
            return min(self._ledger.exited / self.total_trials, 1.0)
        partial = sum(min(t / self.max_time, 1.0) for t in self._ledger.time.values())
        return min((self._ledger.exited + partial) / self.total_trials, 1.0)

    def state_dict(self) -> dict[str, Any]:
        return {
            "searcher": self.name,
            "ledger": self._ledger.to_state(),
            "started": self._started,
            "done": self._done,
            **self._extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._check_state_type(state)
        self._ledger = TrialLedger.from_state(state["ledger"])
        self._started = bool(state["started"])
        self._done = bool(state["done"])
        self._load_extra_state(state)

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        return None
