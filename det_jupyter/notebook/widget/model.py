"""The experiment widget's model: store rows in, trace arrays and table rows out. No widgets, no threads.

:class:`WidgetModel` is the *listening* half of :class:`~det_jupyter.notebook.widget.widget.ExperimentWidget` (the
drawing half lives there, as in distributed's progress bar). :meth:`WidgetModel.refresh` reads the
store incrementally (new metric rows only, through ``Store.metrics_since``; the experiment row and the
trial rows, which are small) and says what changed, so the widget redraws only that. Everything else
is a pure function of what has been read, which is what the tests check against the store.

Series rule: one series per trial and metric, ``x`` = steps ascending, ``y`` = the value reported at
that step; when a restarted trial reports a step again, the newer report wins (the line shows what
the trial finally trained, not the run that crashed).

Example:
    >>> model = WidgetModel(store, exp_id)                 # doctest: +SKIP
    >>> changes = model.refresh()                          # doctest: +SKIP
    >>> steps, values = model.series("validation")[trial_id]  # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from det_jupyter.config import ExperimentConfig
from det_jupyter.config.searcher import SearcherConfig
from det_jupyter.searcher.ranking import best_of, is_rankable, rank_key
from det_jupyter.states import ExperimentState, TrialState
from det_jupyter.store import ExperimentRow, Store, TrialRow

__all__ = ["Changes", "ParallelDimension", "TableRow", "WidgetModel", "flatten_hparams"]

TRAINING = "training"
VALIDATION = "validation"
SORT_KEYS = ("id", "state", "steps", "best", "restarts")


@dataclass
class Changes:
    """What one :meth:`WidgetModel.refresh` found new: redraw only these parts."""

    experiment: bool = False
    trials: bool = False
    series: dict[str, set[int]] = field(default_factory=lambda: {TRAINING: set(), VALIDATION: set()})
    new_reports: int = 0

    def __bool__(self) -> bool:
        return self.experiment or self.trials or any(self.series.values())


@dataclass(frozen=True)
class TableRow:
    """One line of the trial table."""

    id: int
    hparams: dict[str, Any]
    state: TrialState
    steps: int
    best: float | None
    restarts: int
    is_best: bool


@dataclass(frozen=True)
class ParallelDimension:
    """One axis of the parallel-coordinates plot; categorical values are coded 0..n-1 with ``ticktext``."""

    label: str
    values: tuple[float, ...]
    tickvals: tuple[float, ...] | None = None
    ticktext: tuple[str, ...] | None = None


def flatten_hparams(hparams: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested hyperparameters as dotted keys: ``{"opt": {"lr": 0.1}}`` → ``{"opt.lr": 0.1}``.

    Example:
        >>> flatten_hparams({"opt": {"lr": 0.1}, "layers": 2})
        {'opt.lr': 0.1, 'layers': 2}
    """
    out: dict[str, Any] = {}
    for key, value in hparams.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_hparams(value, f"{name}."))
        else:
            out[name] = value
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class WidgetModel:
    """The state an experiment widget shows, read from the store.

    Not thread-safe: one thread calls :meth:`refresh` (the widget holds a lock around it).

    Args:
        store: the store holding the experiment.
        experiment_id: which experiment.
        training_metric: the training metric to plot; default ``loss`` if reported, else the first
            metric containing ``loss``, else the first numeric one.
    """

    def __init__(self, store: Store, experiment_id: int, *, training_metric: str | None = None) -> None:
        self.store = store
        self.experiment_id = experiment_id
        self.experiment: ExperimentRow = store.get_experiment(experiment_id)
        self.config = ExperimentConfig.from_stored(self.experiment.config)  # fixed at submission
        self.trials: list[TrialRow] = []
        self._requested_training_metric = training_metric
        self.training_metric: str | None = training_metric
        self._last_metric_id = 0
        # kind -> trial id -> steps -> value (newest report wins)
        self._points: dict[str, dict[int, dict[int, float]]] = {TRAINING: {}, VALIDATION: {}}
        self._training_rows: dict[int, dict[int, dict[str, Any]]] = {}  # until the metric is known
        self.refreshed_at: float | None = None

    # --- reading -------------------------------------------------------------------------------

    @property
    def searcher(self) -> SearcherConfig:
        """The searcher section of the experiment's config."""
        return self.config.searcher

    @property
    def validation_metric(self) -> str:
        """The searcher's metric (plotted from validation reports)."""
        return self.searcher.metric

    @property
    def smaller_is_better(self) -> bool:
        """Whether the searcher minimises its metric."""
        return self.searcher.smaller_is_better

    @property
    def terminal(self) -> bool:
        """True once the experiment has ended (the widget then stops refreshing)."""
        return self.experiment.state.is_terminal

    def refresh(self) -> Changes:
        """Read what is new in the store; returns what changed."""
        changes = Changes()
        row = self.store.get_experiment(self.experiment_id)
        changes.experiment = row != self.experiment
        self.experiment = row
        trials = self.store.list_trials(self.experiment_id)
        changes.trials = trials != self.trials
        before = {t.id: t.run_id for t in self.trials}
        self.trials = trials
        rerun = [t.id for t in trials if t.id in before and t.run_id != before[t.id]]
        self._last_metric_id, rows = self.store.metrics_since(
            experiment_id=self.experiment_id, after_id=self._last_metric_id
        )
        for trial_id in rerun:  # a restarted run superseded reports we drew: redraw the trial from the store
            for kind in (TRAINING, VALIDATION):
                if self._points[kind].pop(trial_id, None) is not None:
                    changes.series[kind].add(trial_id)
            self._training_rows.pop(trial_id, None)
            rows = [r for r in rows if r.trial_id != trial_id] + self.store.metrics(trial_id=trial_id)
        changes.new_reports = len(rows)
        for r in rows:
            if r.kind == VALIDATION:
                self._add_point(
                    VALIDATION, r.trial_id, r.steps, r.metrics.get(self.validation_metric), changes
                )
            elif r.kind == TRAINING:
                if self.training_metric is None:
                    self._training_rows.setdefault(r.trial_id, {})[r.steps] = r.metrics
                    self._choose_training_metric(r.metrics, changes)
                else:
                    self._add_point(
                        TRAINING, r.trial_id, r.steps, r.metrics.get(self.training_metric), changes
                    )
        self.refreshed_at = time.time()
        return changes

    def _add_point(self, kind: str, trial_id: int, steps: int, value: Any, changes: Changes) -> None:
        number = _number(value)
        if number is None:
            return
        self._points[kind].setdefault(trial_id, {})[steps] = number
        changes.series[kind].add(trial_id)

    def _choose_training_metric(self, metrics: dict[str, Any], changes: Changes) -> None:
        numeric = [k for k, v in metrics.items() if _number(v) is not None]
        if not numeric:
            return
        losses = [k for k in numeric if "loss" in k.lower()]
        self.training_metric = "loss" if "loss" in numeric else (losses or numeric)[0]
        for trial_id, by_steps in self._training_rows.items():
            for steps, m in by_steps.items():
                self._add_point(TRAINING, trial_id, steps, m.get(self.training_metric), changes)
        self._training_rows.clear()

    # --- derived views -------------------------------------------------------------------------

    def series(self, kind: str) -> dict[int, tuple[list[int], list[float]]]:
        """Per trial id: ``(steps ascending, values)`` of the plotted metric of ``kind``."""
        return {tid: self.trial_series(kind, tid) for tid in sorted(self._points[kind])}

    def trial_series(self, kind: str, trial_id: int) -> tuple[list[int], list[float]]:
        """One trial's ``(steps, values)`` for ``kind`` (``training`` or ``validation``)."""
        points = self._points[kind].get(trial_id, {})
        steps = sorted(points)
        return steps, [points[s] for s in steps]

    @property
    def best_trial_id(self) -> int | None:
        """The trial with the best ``best_validation`` (:mod:`det_jupyter.searcher.ranking`; ties: the older)."""
        best = best_of(
            self.trials,
            lambda t: t.best_validation,
            smaller_is_better=self.smaller_is_better,
            tiebreak=lambda t: t.id,
        )
        return None if best is None else best.id

    def stopped_points(self, kind: str) -> tuple[list[int], list[float], list[int]]:
        """Where early-stopped (``STOPPED``) trials ended: ``(steps, values, trial ids)``."""
        xs, ys, ids = [], [], []
        for t in self.trials:
            if t.state == TrialState.STOPPED:
                steps, values = self.trial_series(kind, t.id)
                if steps:
                    xs.append(steps[-1])
                    ys.append(values[-1])
                    ids.append(t.id)
        return xs, ys, ids

    def counts(self) -> dict[str, int]:
        """Trials ``done`` (terminal), ``running``, ``queued``, ``paused``, and ``total``."""
        out = {"done": 0, "running": 0, "queued": 0, "paused": 0, "total": len(self.trials)}
        for t in self.trials:
            if t.state.is_terminal:
                out["done"] += 1
            elif t.state == TrialState.ACTIVE:
                out["running"] += 1
            elif t.state == TrialState.QUEUED:
                out["queued"] += 1
            else:
                out["paused"] += 1
        return out

    def elapsed(self, now: float | None = None) -> float:
        """Seconds since the experiment was created (until it ended, once it has)."""
        end = self.experiment.ended_at or (time.time() if now is None else now)
        return max(0.0, end - self.experiment.created_at)

    def table_rows(self, sort_by: str = "id", descending: bool = False) -> list[TableRow]:
        """The trial table, sorted by ``id``, ``state``, ``steps``, ``best`` (metric) or ``restarts``.

        Trials without a rankable metric (none, NaN, ±inf) sort last whichever the direction; ``best``
        ascending means best first, in :mod:`det_jupyter.searcher.ranking`'s order (ties: the older trial).
        """
        if sort_by not in SORT_KEYS:
            raise ValueError(f"sort_by={sort_by!r} is not a table column; use one of {list(SORT_KEYS)}")
        best = self.best_trial_id
        rows = [
            TableRow(t.id, t.hparams, t.state, t.steps_completed, t.best_validation, t.restarts, t.id == best)
            for t in self.trials
        ]
        if sort_by == "best":
            smaller = self.smaller_is_better
            scored = sorted(
                (r for r in rows if is_rankable(r.best)),
                key=lambda r: rank_key(r.best, smaller_is_better=smaller, tiebreak=r.id),
                reverse=descending,
            )
            return scored + [r for r in rows if not is_rankable(r.best)]
        key = {
            "id": lambda r: (r.id,),
            "state": lambda r: (r.state.value, r.id),
            "steps": lambda r: (r.steps, r.id),
            "restarts": lambda r: (r.restarts, r.id),
        }[sort_by]
        return sorted(rows, key=key, reverse=descending)

    def errors(self) -> list[tuple[int, TrialState, int, str]]:
        """``(trial id, state, restarts, traceback)`` of every trial that failed at least once."""
        return [(t.id, t.state, t.restarts, t.error) for t in self.trials if t.error]

    def parallel_coordinates(self) -> list[ParallelDimension]:
        """Axes for a parallel-coordinates plot of hyperparameters vs the metric (scored trials only).

        Hyperparameters that vary across trials come first (all of them if none varies); numbers are
        plotted as they are, anything else as categories. The last axis is the searcher metric.
        """
        scored = [t for t in self.trials if is_rankable(t.best_validation)]
        if not scored:
            return []
        flat = [flatten_hparams(t.hparams) for t in scored]
        names = list(dict.fromkeys(k for f in flat for k in f))
        varying = [n for n in names if len({repr(f.get(n)) for f in flat}) > 1] or names
        dims = []
        for name in varying:
            values = [f.get(name) for f in flat]
            numbers = [_number(v) for v in values]
            if all(n is not None for n in numbers):
                dims.append(ParallelDimension(name, tuple(float(n or 0.0) for n in numbers)))
            else:
                labels = sorted({repr(v) if not isinstance(v, str) else v for v in values})
                code = {label: float(i) for i, label in enumerate(labels)}
                coded = tuple(code[repr(v) if not isinstance(v, str) else v] for v in values)
                dims.append(ParallelDimension(name, coded, tuple(code.values()), tuple(labels)))
        dims.append(
            ParallelDimension(self.validation_metric, tuple(float(t.best_validation or 0.0) for t in scored))
        )
        return dims

    @property
    def state(self) -> ExperimentState:
        """The experiment's state as last read."""
        return self.experiment.state
