"""ASHA: asynchronous successive halving by early stopping (``async_halving`` and ``adaptive_asha``).

This is the stopping-based ASHA of Determined >= 0.38 (``master/pkg/searcher/asha_stopping.go``,
``adaptive_asha.go``, ``tournament.go``). Trials are never paused: each trains towards ``max_time`` and
reports validations; the searcher stops the ones that rank badly at a rung. ``adaptive_asha`` runs
several such brackets side by side, ``async_halving`` runs one.

Arithmetic (Determined's, float quirks included):

* Rung lengths of a bracket with ``n`` rungs: ``max(int(max_time / divisor ** (n - 1 - i)), 1)`` for
  ``i = 0..n-1`` (the top rung is ``max_time``).
* Adaptive brackets: unless ``bracket_rungs`` is given, ``max_rungs`` is first capped to
  ``int(log(max_time) / log(divisor)) + 1`` and ``int(log(max_trials) / log(divisor)) + 1``; then
  ``aggressive`` = ``[max_rungs]``, ``standard`` = ``(max_rungs - 1) // 2 + 1 .. max_rungs``,
  ``conservative`` = ``1 .. max_rungs``. Brackets are sorted by number of rungs, most first.
* Bracket ``max_trials``: weight ``w_b = divisor ** (rungs_b - 1) / rungs_b``;
  ``max(int(w_b / sum(w) * max_trials), 1)``; the remainder goes to the first bracket.
* Bracket ``max_concurrent_trials``: with a limit ``c > 0``, ``c' = max(c, #brackets)`` split evenly,
  the remainder one each to the first brackets; with ``c = 0``, every bracket gets
  ``max(max_trials of the last bracket, int(divisor))``. A bracket then runs at most
  ``min(that, its max_trials)`` trials at once. ``async_halving`` with ``c = 0`` runs
  ``clamp(1, int(divisor ** (num_rungs - 1)), max_trials)`` at once.
* Stopping rule: when a trial reports ``time`` >= the length of the rung it is waiting for, its metric
  is added to that rung. Let ``n`` be the number of metrics in the rung (its own included) and
  ``better`` the number strictly better than it (ties favour the newcomer). Below the top rung the
  trial continues iff ``better < max(int(n / divisor), 1)``, and is checked against the next rung at
  once (one report may clear several rungs); otherwise it gets ``Stop``. At the top rung
  (``max_time``) it is just recorded: the trial completes by itself. Each trial is judged once per rung.
* A trial that exits ERRORED or CANCELED before it is judged at the rung it is waiting for is recorded
  there with the worst possible metric (Determined's ``ashaExitedMetricValue``).

Where we differ from Determined, for the controller's invariants: a new trial is created when a trial
*exits* (Determined creates it when it issues ``Stop``), so live trials never exceed the limits; and the
totals over all brackets are capped by ``max_trials`` and ``max_concurrent_trials`` (when > 0), which
Determined's per-bracket minimum of one can exceed. When the global limit binds, a freed slot goes to
the exited trial's bracket first, then to the brackets in order. With a global limit, the brackets'
shares are work-conserving: once every bracket that still has trials to create is at its own share, a
free slot goes to one of them beyond its share (in Determined, the share of a bracket that has created
all its trials stays unused, so e.g. a standard search with ``max_concurrent_trials: 2`` and three
brackets runs its last bracket one trial at a time on two slots). ``stop_once`` has no effect: this
stopping-based ASHA always decides once per rung, as Determined >= 0.38 does.

Worked example (adaptive_asha, max_trials=16, max_time=640, divisor=4, max_rungs=5, standard, c=0):
``max_rungs = min(5, int(log 640 / log 4) + 1 = 5, int(log 16 / log 4) + 1 = 3) = 3``; standard mode
gives brackets of ``[3, 2]`` rungs; weights ``16/3`` and ``4/2`` so max_trials ``int(11.6) = 11`` and
``int(4.36) = 4``, remainder 1 → ``[12, 4]``; concurrency ``max(4, 4) = 4`` each; rung lengths
``[40, 160, 640]`` and ``[160, 640]``.
"""

from __future__ import annotations

import bisect
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from det_jupyter.hparams import HParamSpace
from det_jupyter.searcher.base import (
    Create,
    ExitReason,
    Operation,
    SearcherStateError,
    SearchMethod,
    Stop,
    TrialLedger,
    rng_from_state,
    rng_state,
)

__all__ = [
    "EXITED_METRIC",
    "ASHASearch",
    "Bracket",
    "adaptive_asha_brackets",
    "async_halving_bracket",
    "bracket_max_concurrent_trials",
    "bracket_max_trials",
    "rung_lengths",
]

EXITED_METRIC = sys.float_info.max
"""Rung metric of a trial that errored or was canceled before its rung (worst possible)."""

_MODES = ("aggressive", "standard", "conservative")


@dataclass(frozen=True)
class Bracket:
    """One successive-halving bracket.

    Attributes:
        num_rungs: number of rungs.
        max_trials: trials this bracket may create.
        max_concurrent_trials: trials this bracket may have live at once.
        rung_lengths: training time needed to reach each rung, ascending; the last is ``max_time``.
    """

    num_rungs: int
    max_trials: int
    max_concurrent_trials: int
    rung_lengths: tuple[int, ...]


def rung_lengths(num_rungs: int, divisor: float, max_time: int) -> tuple[int, ...]:
    """Determined's ``makeRungs``: ``max(int(max_time / divisor ** (num_rungs - 1 - i)), 1)``.

    Example:
        >>> rung_lengths(3, 4.0, 64)
        (4, 16, 64)
    """
    return tuple(max(int(max_time / divisor ** (num_rungs - i - 1)), 1) for i in range(num_rungs))


def bracket_max_trials(max_trials: int, divisor: float, bracket_rungs: Sequence[int]) -> list[int]:
    """Determined's ``getBracketMaxTrials``: roughly equal compute per bracket.

    Example:
        >>> bracket_max_trials(100, 4.0, [4, 3, 2])
        [70, 22, 8]
    """
    weights = [divisor ** (r - 1) / r for r in bracket_rungs]
    total = sum(weights)
    trials = [max(int(w / total * max_trials), 1) for w in weights]
    trials[0] += max(max_trials - sum(trials), 0)
    return trials


def bracket_max_concurrent_trials(
    max_concurrent_trials: int, divisor: float, bracket_trials: Sequence[int]
) -> list[int]:
    """Determined's ``getBracketMaxConcurrentTrials`` (before capping by each bracket's max_trials).

    Example:
        >>> bracket_max_concurrent_trials(11, 3.0, [9, 3, 1])
        [4, 4, 3]
        >>> bracket_max_concurrent_trials(0, 3.0, [9, 3, 1])
        [3, 3, 3]
    """
    n = len(bracket_trials)
    if max_concurrent_trials == 0:
        return [max(bracket_trials[-1], int(divisor))] * n
    c = max(max_concurrent_trials, n)
    return [c // n + (1 if i < c % n else 0) for i in range(n)]


def adaptive_asha_brackets(
    *,
    max_trials: int,
    max_time: int,
    divisor: float = 4.0,
    mode: str = "standard",
    max_rungs: int = 5,
    max_concurrent_trials: int = 0,
    bracket_rungs: Sequence[int] | None = None,
) -> list[Bracket]:
    """Determined's ``makeBrackets`` for ``adaptive_asha``.

    Example:
        >>> [(b.num_rungs, b.max_trials, b.rung_lengths) for b in adaptive_asha_brackets(max_trials=16, max_time=640)]
        [(3, 12, (40, 160, 640)), (2, 4, (160, 640))]
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES} (got {mode!r})")
    if bracket_rungs:
        rungs = list(bracket_rungs)
    else:
        top = min(
            max_rungs,
            int(math.log(max_time) / math.log(divisor)) + 1,
            int(math.log(max_trials) / math.log(divisor)) + 1,
        )
        if mode == "aggressive":
            rungs = [top]
        elif mode == "standard":
            rungs = list(range((top - 1) // 2 + 1, top + 1))
        else:
            rungs = list(range(1, top + 1))
    rungs.sort(reverse=True)
    trials = bracket_max_trials(max_trials, divisor, rungs)
    concurrent = bracket_max_concurrent_trials(max_concurrent_trials, divisor, trials)
    return [
        Bracket(r, t, min(c, t), rung_lengths(r, divisor, max_time))
        for r, t, c in zip(rungs, trials, concurrent)
    ]


def async_halving_bracket(
    *, num_rungs: int, max_trials: int, max_time: int, divisor: float = 4.0, max_concurrent_trials: int = 0
) -> Bracket:
    """The single bracket of ``async_halving`` (Determined's ``newAsyncHalvingStoppingSearch``).

    Example:
        >>> async_halving_bracket(num_rungs=3, max_trials=20, max_time=64)
        Bracket(num_rungs=3, max_trials=20, max_concurrent_trials=16, rung_lengths=(4, 16, 64))
    """
    if max_concurrent_trials > 0:
        concurrent = min(max_concurrent_trials, max_trials)
    else:
        concurrent = min(max(1, int(divisor ** (num_rungs - 1))), max_trials)
    return Bracket(num_rungs, max_trials, concurrent, rung_lengths(num_rungs, divisor, max_time))


class ASHASearch(SearchMethod):
    """Asynchronous successive halving over one or more brackets (see the module docstring for rules).

    Args:
        space: the hyperparameter space to sample.
        brackets: from :func:`adaptive_asha_brackets` or ``[async_halving_bracket(...)]``.
        divisor: the halving rate (> 1).
        smaller_is_better: whether smaller metrics rank better.
        max_trials: cap on trials created over all brackets.
        max_concurrent_trials: cap on live trials over all brackets (0 = only the brackets' own caps).
        seed: seeds the searcher's own ``random.Random``.
        name: ``"adaptive_asha"`` or ``"async_halving"``.

    Example:
        >>> from det_jupyter.hparams import parse_hyperparameters
        >>> space = parse_hyperparameters({"lr": {"type": "double", "minval": 0.0, "maxval": 1.0}})
        >>> s = ASHASearch(space, [async_halving_bracket(num_rungs=2, max_trials=4, max_time=8, divisor=2)],
        ...                divisor=2, smaller_is_better=True, max_trials=4, max_concurrent_trials=2, seed=0)
        >>> [op.request_id for op in s.initial_operations()]
        [1, 2]
        >>> s.on_validation_completed(1, metric=0.1, time=4)  # first at rung 0 (length 4): continues
        []
        >>> s.on_validation_completed(2, metric=0.9, time=4)  # 2 metrics, keep max(int(2/2), 1) = 1
        [Stop(request_id=2)]
    """

    def __init__(
        self,
        space: HParamSpace,
        brackets: Sequence[Bracket],
        *,
        divisor: float,
        smaller_is_better: bool,
        max_trials: int,
        max_concurrent_trials: int = 0,
        seed: int = 0,
        name: str = "adaptive_asha",
    ) -> None:
        if not brackets or divisor <= 1 or max_trials < 1 or max_concurrent_trials < 0:
            raise ValueError(
                "need at least one bracket, divisor > 1, max_trials >= 1 and max_concurrent_trials >= 0 "
                f"(got {len(brackets)} brackets, {divisor}, {max_trials}, {max_concurrent_trials})"
            )
        self.name = name
        self.space = space
        self.brackets: tuple[Bracket, ...] = tuple(brackets)
        self.divisor = float(divisor)
        self.smaller_is_better = smaller_is_better
        self.max_trials = max_trials
        self.max_concurrent_trials = max_concurrent_trials
        self._rng = random.Random(seed)
        self._ledger = TrialLedger()
        self._trial_bracket: list[int] = []  # bracket of request id i + 1
        self._waiting: dict[int, int] = {}  # trial still ranked -> index of the rung it waits for
        # Per bracket, per rung: [signed metric, request_id], ascending (best first).
        self._rungs: list[list[list[list[float]]]] = [[[] for _ in b.rung_lengths] for b in brackets]
        self._created = [0] * len(brackets)
        self._live = [0] * len(brackets)
        self._exited = [0] * len(brackets)
        self._started = False
        self._done = False

    def trial_bracket(self, request_id: int) -> int:
        """Index in :attr:`brackets` of the bracket a trial belongs to."""
        self._ledger.check_known(request_id)
        return self._trial_bracket[request_id - 1]

    def decision_points(self, request_id: int) -> tuple[float, ...]:
        """The rungs of the trial's bracket below the top one: where ASHA may stop it.

        Example:
            >>> from det_jupyter.hparams import parse_hyperparameters
            >>> s = ASHASearch(parse_hyperparameters({}), [async_halving_bracket(num_rungs=3, max_trials=2,
            ...                max_time=16, divisor=4)], divisor=4, smaller_is_better=True, max_trials=2)
            >>> _ = s.initial_operations(); s.decision_points(1)
            (1.0, 4.0)
        """
        return tuple(
            float(length) for length in self.brackets[self.trial_bracket(request_id)].rung_lengths[:-1]
        )

    def rung_metrics(self, bracket: int) -> list[list[tuple[int, float]]]:
        """Per rung of a bracket, ``(request_id, metric)`` best first (metrics as reported)."""
        sign = 1.0 if self.smaller_is_better else -1.0
        return [[(int(rid), sign * m) for m, rid in rung] for rung in self._rungs[bracket]]

    def _can_create(self, b: int, borrow: bool = False) -> bool:
        global_cap = self.max_concurrent_trials or self.max_trials
        return (
            self._created[b] < self.brackets[b].max_trials
            and (borrow or self._live[b] < self.brackets[b].max_concurrent_trials)
            and self._ledger.created < self.max_trials
            and len(self._ledger.live) < global_cap
        )

    def _fill(self, prefer: int = 0) -> list[Operation]:
        ops: list[Operation] = []
        order = [prefer] + [i for i in range(len(self.brackets)) if i != prefer]
        # Each bracket up to its own share first; then, under a global limit, the slots that brackets with
        # no trials left cannot use go to those that still have trials (work-conserving: without this, a
        # standard search with max_concurrent_trials 2 ran its last bracket one trial at a time).
        for b, borrow in [(b, False) for b in order] + [
            (b, True) for b in order if self.max_concurrent_trials
        ]:
            while self._can_create(b, borrow):
                hparams = self.space.sample(self._rng)
                request_id = self._ledger.new_trial()
                self._trial_bracket.append(b)
                self._waiting[request_id] = 0
                self._created[b] += 1
                self._live[b] += 1
                ops.append(Create(request_id, hparams))
        if not self._ledger.live and not self._done:
            self._done = True
            ops.append(self._ledger.shutdown())
        return ops

    def initial_operations(self) -> list[Operation]:
        self._start_once()
        return self._fill()

    def _signed(self, metric: float) -> float:
        # Rungs deliberately do not use det_jupyter.searcher.ranking: Determined's insertMetric places a
        # new metric before equal ones (a tie goes to the newer trial) and ranks ±inf as numbers (here
        # clamped to +-EXITED_METRIC); ranking.py's "ties to the older, inf unrankable" would change
        # which trials ASHA stops, and stored searcher states would replay differently.
        m = float(metric) if self.smaller_is_better else -float(metric)
        if math.isnan(m):
            return EXITED_METRIC  # Go's sort.Search places NaN last: the worst
        return min(max(m, -EXITED_METRIC), EXITED_METRIC)  # keep the state JSON-safe

    @staticmethod
    def _insert(rung: list[list[float]], metric: float, request_id: int) -> int:
        # First index whose metric is >= the new one, as Determined's insertMetric (sort.Search).
        index = bisect.bisect_left(rung, metric, key=lambda entry: entry[0])
        rung.insert(index, [metric, request_id])
        return index

    def on_validation_completed(self, request_id: int, metric: float, time: float) -> list[Operation]:
        self._ledger.check_known(request_id)
        self._ledger.record_time(request_id, time)
        if request_id not in self._waiting:  # stopped, done with the top rung, or exited
            return []
        b = self._trial_bracket[request_id - 1]
        bracket, value = self.brackets[b], self._signed(metric)
        for r in range(self._waiting[request_id], bracket.num_rungs):
            self._waiting[request_id] = r
            if time < bracket.rung_lengths[r]:
                return []
            rung = self._rungs[b][r]
            index = self._insert(rung, value, request_id)
            if r == bracket.num_rungs - 1:  # reached max_time: it completes by itself
                del self._waiting[request_id]
                return []
            if index >= max(int(len(rung) / self.divisor), 1):
                del self._waiting[request_id]
                return [Stop(request_id)]
        return []

    def on_trial_exited(self, request_id: int, reason: ExitReason) -> list[Operation]:
        if not self._ledger.exit(request_id, reason):
            return []
        b = self._trial_bracket[request_id - 1]
        self._live[b] -= 1
        self._exited[b] += 1
        rung_index = self._waiting.pop(request_id, None)
        if rung_index is not None and ExitReason(reason) in (ExitReason.ERRORED, ExitReason.CANCELED):
            self._insert(self._rungs[b][rung_index], EXITED_METRIC, request_id)
        return self._fill(prefer=b)

    def progress(self) -> float:
        """Determined's ASHA progress, averaged over brackets: trials seen at the first rung over
        ``1.2 * max_trials``, or the fraction exited once all have reached it; 1.0 after shutdown."""
        if self._done:
            return 1.0
        total = 0.0
        for b, bracket in enumerate(self.brackets):
            seen = len(self._rungs[b][0])
            p = seen / (1.2 * bracket.max_trials)
            if seen >= bracket.max_trials:
                p = max(self._exited[b] / bracket.max_trials, p)
            total += min(p, 1.0)
        return total / len(self.brackets)

    def state_dict(self) -> dict[str, Any]:
        return {
            "searcher": self.name,
            "brackets": [[b.num_rungs, b.max_trials, b.max_concurrent_trials] for b in self.brackets],
            "rng": rng_state(self._rng),
            "ledger": self._ledger.to_state(),
            "trial_bracket": list(self._trial_bracket),
            "waiting": [[k, v] for k, v in self._waiting.items()],
            "rungs": [[[list(e) for e in rung] for rung in rungs] for rungs in self._rungs],
            "created": list(self._created),
            "live": list(self._live),
            "exited": list(self._exited),
            "started": self._started,
            "done": self._done,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._check_state_type(state)
        mine = [[b.num_rungs, b.max_trials, b.max_concurrent_trials] for b in self.brackets]
        if [list(b) for b in state["brackets"]] != mine:
            raise SearcherStateError(
                f"the saved search has brackets {state['brackets']} but this searcher has {mine}; "
                "restore it into a searcher built from the same experiment config"
            )
        self._rng = rng_from_state(state["rng"])
        self._ledger = TrialLedger.from_state(state["ledger"])
        self._trial_bracket = [int(b) for b in state["trial_bracket"]]
        self._waiting = {int(k): int(v) for k, v in state["waiting"]}
        self._rungs = [
            [[[float(m), int(rid)] for m, rid in rung] for rung in rungs] for rungs in state["rungs"]
        ]
        self._created = [int(x) for x in state["created"]]
        self._live = [int(x) for x in state["live"]]
        self._exited = [int(x) for x in state["exited"]]
        self._started = bool(state["started"])
        self._done = bool(state["done"])
