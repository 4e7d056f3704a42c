"""Preview a search before running it, like ``det preview-search``.

:func:`preview_search` runs the experiment's real searcher against simulated trials: each trial
"trains" at one time unit per tick, reports a seeded random validation metric at every rung length of
its bracket (ASHA) or at ``max_time`` (other searchers), exits ``STOPPED`` right after a ``Stop`` and
``COMPLETED`` at ``max_time``, until the searcher says ``Shutdown``. A search without a training
length (single, grid, random without ``max_time``: the trial code decides) is simulated with one
report per trial, and its rows say that the length is up to the trial code. Events are processed in simulated
time order (ties by request id), so the result is deterministic for a given experiment seed.

Determined's ``det preview-search`` computes ASHA counts analytically (``master/pkg/searcher/
simulate.go``); that plan is shown per bracket as ``planned``, next to what the simulation did.

Example:
    >>> p = preview_search({
    ...     "searcher": {"name": "adaptive_asha", "metric": "loss", "max_trials": 16, "max_concurrent_trials": 0,
    ...                  "time_metric": "batches", "max_time": 640},
    ...     "hyperparameters": {"lr": {"type": "log", "minval": -4, "maxval": -1}},
    ...     "reproducibility": {"experiment_seed": 0}})
    >>> len(p.trials), sum(row.count for row in p.summary)
    (16, 16)
"""

from __future__ import annotations

import heapq
import html
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from det_jupyter.searcher import ASHASearch, Create, ExitReason, Operation, Shutdown, Stop, make_searcher

if TYPE_CHECKING:
    from det_jupyter.config import ExperimentConfig

__all__ = ["BracketPreview", "SearchPreview", "SummaryRow", "preview_search"]


@dataclass(frozen=True)
class SummaryRow:
    """``count`` trials train to ``time`` units of ``time_metric`` (``time`` ``None``: as long as the
    trial code decides)."""

    count: int
    time: int | None
    time_metric: str

    def __str__(self) -> str:
        trials = "1 trial trains" if self.count == 1 else f"{self.count} trials train"
        return f"{trials} {_length(self.time, self.time_metric)}"


UP_TO_THE_TRIAL = "as long as the trial code decides (no searcher.max_time)"


def _length(time: int | None, time_metric: str) -> str:
    return UP_TO_THE_TRIAL if time is None else f"to {time} {time_metric}"


@dataclass(frozen=True)
class BracketPreview:
    """One ASHA bracket: its shape, Determined's analytic plan and what the simulation did.

    Attributes:
        num_rungs, max_trials, max_concurrent_trials, rung_lengths: the bracket's structure.
        planned: per rung, trials that train to exactly that rung in Determined's plan
            (``max(int(n / divisor), 1)`` continue at each rung).
        simulated: per rung, trials of the simulation that stopped at (or completed) that rung.
    """

    num_rungs: int
    max_trials: int
    max_concurrent_trials: int
    rung_lengths: tuple[int, ...]
    planned: tuple[int, ...]
    simulated: tuple[int, ...]


@dataclass(frozen=True)
class SearchPreview:
    """The outcome of :func:`preview_search`.

    Attributes:
        searcher_name, time_metric, max_time: from the searcher config (``max_time`` ``None`` and
            ``time_metric`` ``""`` when the config gives no length: the trial code decides).
        trials: ``(request_id, hparams, time_trained)`` per trial, in creation order
            (``time_trained`` ``None`` without a length).
        total_time: the sum of ``time_trained`` (``None`` without a length).
        summary: trials grouped by ``time_trained``, ascending (Determined's preview rows).
        brackets: per-bracket breakdown for ASHA searchers, else empty.
    """

    searcher_name: str
    time_metric: str
    max_time: int | None
    trials: list[tuple[int, dict[str, Any], int | None]]
    total_time: int | None
    summary: list[SummaryRow]
    brackets: list[BracketPreview]

    def __str__(self) -> str:
        lines = [
            f"Using {self.searcher_name} search method",
            "",
            " Trials | Training Time",
            "--------+---------------",
        ]
        lines += [
            f"{row.count:>7} | {UP_TO_THE_TRIAL if row.time is None else f'{row.time} {self.time_metric}'}"
            for row in self.summary
        ]
        n = len(self.trials)
        total = (
            "length up to the trial code"
            if self.total_time is None
            else f"{self.total_time} {self.time_metric}"
        )
        lines.append(f"Total: {n} trial{'' if n == 1 else 's'}, {total} of training")
        for i, b in enumerate(self.brackets):
            lines.append(
                f"Bracket {i}: {b.num_rungs} rungs at {list(b.rung_lengths)} {self.time_metric}, "
                f"max_trials {b.max_trials}, max_concurrent_trials {b.max_concurrent_trials}, "
                f"trials ending per rung: planned {list(b.planned)}, simulated {list(b.simulated)}"
            )
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        esc = html.escape
        rows = "".join(
            f"<tr><td>{r.count}</td><td>{esc(UP_TO_THE_TRIAL if r.time is None else f'{r.time} {r.time_metric}')}"
            "</td></tr>"
            for r in self.summary
        )
        total = (
            "length up to the trial code"
            if self.total_time is None
            else f"{self.total_time} {self.time_metric}"
        )
        out = (
            f"<p>Using <b>{esc(self.searcher_name)}</b> search method: {len(self.trials)} trial(s), "
            f"{esc(total)} in total</p>"
            f"<table><tr><th>Trials</th><th>Training time</th></tr>{rows}</table>"
        )
        if self.brackets:
            brows = "".join(
                f"<tr><td>{i}</td><td>{b.num_rungs}</td><td>{list(b.rung_lengths)}</td><td>{b.max_trials}</td>"
                f"<td>{b.max_concurrent_trials}</td><td>{list(b.planned)}</td><td>{list(b.simulated)}</td></tr>"
                for i, b in enumerate(self.brackets)
            )
            out += (
                "<table><tr><th>Bracket</th><th>Rungs</th><th>Rung lengths</th><th>Max trials</th>"
                f"<th>Max concurrent</th><th>Planned per rung</th><th>Simulated per rung</th></tr>{brows}</table>"
            )
        return out


def _planned(num_rungs: int, max_trials: int, divisor: float) -> tuple[int, ...]:
    # Determined's simulate.go: at each rung max(int(n / divisor), 1) continue, the rest stop there.
    out, n = [], max_trials
    for i in range(num_rungs):
        keep = max(int(n / divisor), 1)
        out.append(n if i == num_rungs - 1 else n - keep)
        n = keep
    return tuple(out)


def preview_search(
    config: ExperimentConfig | Mapping[str, object] | str | os.PathLike[str],
) -> SearchPreview:
    """Simulate the experiment's search and summarise how long each trial would train.

    Args:
        config: a validated :class:`~det_jupyter.config.experiment.ExperimentConfig`, or what
            :func:`~det_jupyter.config.experiment.load_config` takes (dict, YAML text, path). The
            experiment seed (``None`` means 0) makes the preview repeatable.

    Returns:
        A :class:`SearchPreview`; print it, or display it in a notebook for an HTML table.

    Raises:
        ConfigError: the searcher cannot be built from this config.
    """
    if isinstance(config, Mapping | str | os.PathLike):
        from det_jupyter.config import load_config

        config = load_config(config)
    sc = config.searcher
    seed = config.reproducibility.experiment_seed or 0
    searcher = make_searcher(sc, config.hparam_space, seed)
    # Without a length (the trial code decides) each simulated trial reports once, at time 1.
    unbounded = sc.max_time is None
    max_time, time_metric = int(sc.max_time or 1), str(sc.time_metric or "")
    metric_rng = random.Random(f"det-jupyter-preview-{seed}")

    hparams: dict[int, dict[str, Any]] = {}
    quality: dict[int, float] = {}
    started: dict[int, int] = {}
    trained: dict[int, int] = {}
    reports: dict[int, list[int]] = {}  # report times still to come, ascending
    events: list[tuple[int, int]] = []  # (simulated clock, request_id) of each trial's next report
    shutdown = False

    def apply(ops: list[Operation], clock: int) -> None:
        nonlocal shutdown
        queue = list(ops)
        while queue:
            op = queue.pop(0)
            if isinstance(op, Create):
                rid = op.request_id
                hparams[rid], quality[rid], started[rid], trained[rid] = (
                    op.hparams,
                    metric_rng.random(),
                    clock,
                    0,
                )
                lengths: list[int] = [max_time]
                if isinstance(searcher, ASHASearch):
                    lengths = list(searcher.brackets[searcher.trial_bracket(rid)].rung_lengths)
                reports[rid] = sorted({min(t, max_time) for t in lengths} | {max_time})
                heapq.heappush(events, (clock + reports[rid][0], rid))
            elif isinstance(op, Stop):
                reports[op.request_id] = []  # no more reports; its pending event is dropped
                queue += searcher.on_trial_exited(op.request_id, ExitReason.STOPPED)
            elif isinstance(op, Shutdown):
                shutdown = True

    apply(searcher.initial_operations(), 0)
    while events and not shutdown:
        clock, rid = heapq.heappop(events)
        if not reports.get(rid) or clock != started[rid] + reports[rid][0]:
            continue  # the trial was stopped
        t = reports[rid].pop(0)
        trained[rid] = t
        # A noisy metric that improves with training; each trial has its own quality.
        metric = quality[rid] + (1.0 - t / max_time) * 0.5 * metric_rng.random()
        apply(searcher.on_validation_completed(rid, metric, t), clock)
        if reports[rid]:
            heapq.heappush(events, (started[rid] + reports[rid][0], rid))
        elif t >= max_time:
            reports[rid] = []
            apply(searcher.on_trial_exited(rid, ExitReason.COMPLETED), clock)
    if not shutdown:
        raise RuntimeError(f"the {sc.name} searcher did not shut down in the simulation; this is a bug")

    trials: list[tuple[int, dict[str, Any], int | None]] = [
        (rid, hparams[rid], None if unbounded else trained[rid]) for rid in sorted(hparams)
    ]
    counts: dict[int, int] = {}
    for _, _, length in trials:
        counts[length or 0] = counts.get(length or 0, 0) + 1
    summary = [SummaryRow(counts[n], None if unbounded else n, time_metric) for n in sorted(counts)]
    brackets: list[BracketPreview] = []
    if isinstance(searcher, ASHASearch):
        for i, b in enumerate(searcher.brackets):
            ended = [trained[rid] for rid, _, _ in trials if searcher.trial_bracket(rid) == i]
            simulated = tuple(sum(1 for t in ended if t == length) for length in b.rung_lengths)
            planned = _planned(b.num_rungs, b.max_trials, searcher.divisor)
            brackets.append(
                BracketPreview(
                    b.num_rungs, b.max_trials, b.max_concurrent_trials, b.rung_lengths, planned, simulated
                )
            )
    return SearchPreview(
        searcher_name=sc.name,
        time_metric=time_metric,
        max_time=None if unbounded else max_time,
        trials=trials,
        total_time=None if unbounded else sum(t or 0 for _, _, t in trials),
        summary=summary,
        brackets=brackets,
    )
