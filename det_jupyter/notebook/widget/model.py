"""The experiment widget's model: store rows in, trace arrays and table rows out. No widgets, no threads.

:class:`WidgetModel` is the *listening* half of :class:`~det_jupyter.notebook.widget.widget.ExperimentWidget` (the
drawing half lives there, as in distributed's progress bar). :meth:`WidgetModel.refresh` reads the
store incrementally (new metric rows only, through ``Store.metric_tuples_since``, at most
``READ_CHUNK`` per refresh, in store queries of ``READ_BATCH``, so a million reports are read over a
few refreshes and never held as Python objects at once; the experiment row; the trial rows through
``Store.list_trials_cached``, which parses only the changed ones) and says what changed, so the
widget redraws only that. Reports are kept columnar (:class:`_Columns`: per trial and
kind, typed arrays of steps ascending, report times and one column per numeric metric, about 25 bytes
a report instead of a dict per report), appended at their end as they arrive; a series is a slice of
them. Everything else is a pure function of what has been read, which is what the tests check
against the store (and against a model that read everything at once).

Series rule: one series per trial and metric, ``x`` = steps ascending, ``y`` = the value reported at
that step; when a restarted trial reports a step again, the newer report wins (the line shows what
the trial finally trained, not the run that crashed).

Example:
    >>> model = WidgetModel(store, exp_id)                 # doctest: +SKIP
    >>> changes = model.refresh()                          # doctest: +SKIP
    >>> steps, values = model.series("validation")[trial_id]  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import time
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import compress
from typing import Any

from det_jupyter.config import ExperimentConfig
from det_jupyter.config.searcher import SearcherConfig
from det_jupyter.searcher.ranking import is_rankable, rank_key
from det_jupyter.states import ExperimentState, TrialState
from det_jupyter.store import ExperimentRow, Store, TrialRow
from det_jupyter.store.progress import Plan, experiment_progress, plan_of

__all__ = ["Changes", "TableRow", "WidgetModel", "downsample", "flatten_hparams", "smooth"]

TRAINING = "training"
VALIDATION = "validation"
SORT_KEYS = ("id", "state", "steps", "best", "restarts")
READ_CHUNK = 200_000
"""Reports read per :meth:`WidgetModel.refresh` at most: an experiment of a million reports is read over
a few refreshes (each ~1-2 s of CPU) instead of one that blocks its first display for ten or more."""
READ_BATCH = 5_000
"""Reports per store query within a refresh. The rows of a whole chunk at once (~150 MB of Python
objects for 200,000) left that many MB of the allocator's arenas pinned by the few objects that outlive
a chunk (the kernel held +174 MB for 26 MB of columns at 1.1 M reports; +37 MB in batches of 5,000, at
the same CPU time)."""
X_AXES = ("steps", "time")
"""What the curves' x-axis shows: the searcher's time metric (batches, epochs, records) or seconds."""


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


def smooth(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased so the start is not pulled to 0.

    ``weight`` 0 returns the values unchanged; 0.9 follows a noisy per-batch loss closely enough.

    Example:
        >>> smooth([1.0, 3.0, 3.0], 0.5)
        [1.0, 2.3333333333333335, 2.7142857142857144]
        >>> smooth([1.0, 2.0], 0.0)
        [1.0, 2.0]
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight={weight} must be in [0, 1): 0 is none, 0.9 is strong")
    if weight == 0.0:
        return list(values)
    out, last, debias = [], 0.0, 1.0
    for v in values:
        last = last * weight + (1.0 - weight) * v
        debias *= weight
        out.append(last / (1.0 - debias))
    return out


def downsample(xs: list[Any], ys: list[float], max_points: int) -> tuple[list[Any], list[float]]:
    """At most ~``max_points`` points that keep a curve's shape: the min and max of each bucket, in order.

    The first and the last point are always kept (the newest report is what a live chart must show),
    and so is every spike (a bucket's extremes). Series of ``max_points`` or fewer come back as they are.

    Example:
        >>> downsample([1, 2, 3, 4, 5, 6], [5.0, 1.0, 4.0, 9.0, 2.0, 3.0], 4)
        ([1, 2, 4, 6], [5.0, 1.0, 9.0, 3.0])
        >>> downsample([1, 2], [1.0, 2.0], 10)
        ([1, 2], [1.0, 2.0])
    """
    n = len(xs)
    if max_points < 4:
        raise ValueError(f"max_points={max_points} must be >= 4 (first, last and one min/max pair)")
    if n <= max_points:
        return xs, ys
    buckets = (max_points - 2) // 2
    keep = [0]
    inner = n - 2
    for b in range(buckets):
        lo, hi = 1 + b * inner // buckets, 1 + (b + 1) * inner // buckets
        if lo >= hi:
            continue
        chunk = ys[lo:hi]
        i_min = lo + min(range(hi - lo), key=chunk.__getitem__)
        i_max = lo + max(range(hi - lo), key=chunk.__getitem__)
        keep += sorted({i_min, i_max})
    keep.append(n - 1)
    return [xs[i] for i in keep], [ys[i] for i in keep]


class _Columns:
    """One trial's reports of one kind, columnar: the steps ascending (a step reported again keeps its
    place, the newest report wins), the time of each report, and per numeric metric its values with a
    presence byte (a report may lack a metric; a reported NaN is a value, so absence is not NaN).

    Typed arrays (8 bytes a step, time or value, 1 a presence flag), appended at their end: a million
    reports hold ~30 MB, where a dict per report held ~400, and no Python object per report, which the
    collector would have to walk.
    """

    __slots__ = ("columns", "steps", "times")

    def __init__(self) -> None:
        self.steps = array("q")
        self.times = array("d")
        self.columns: dict[str, tuple[array[float], bytearray]] = {}  # metric -> (values, present)

    def add(self, name: str, length: int) -> tuple[array[float], bytearray]:
        """A new metric's column, absent from the first ``length`` reports."""
        column = self.columns[name] = (array("d", _NAN) * length, bytearray(length))
        return column

    def put(self, step: int, reported_at: float, numbers: dict[str, float]) -> list[str]:
        """A report of a step not after the last one: it replaces that step's report or is inserted in
        order (rare: a step reported again, a report out of order). Returns the metrics it added."""
        steps, columns, added = self.steps, self.columns, []
        i = bisect_left(steps, step)
        if i < len(steps) and steps[i] == step:
            self.times[i] = reported_at
            for values, present in columns.values():
                values[i], present[i] = _NAN[0], 0
        else:
            steps.insert(i, step)
            self.times.insert(i, reported_at)
            for values, present in columns.values():
                values.insert(i, _NAN[0])
                present.insert(i, 0)
        for name, value in numbers.items():
            column = columns.get(name)
            if column is None:
                column = self.add(name, len(steps))
                added.append(name)
            column[0][i], column[1][i] = value, 1
        return added

    def nbytes(self) -> int:
        """Bytes of the values held (the arrays' spare capacity aside)."""
        n = len(self.steps)
        return n * (self.steps.itemsize + self.times.itemsize) + len(self.columns) * n * 9


_NAN = array("d", [float("nan")])
_EMPTY = _Columns()  # a trial with no reports of a kind (never written to)


def _rank_fields(trial: TrialRow) -> tuple[Any, ...]:
    """What a trial's place in the ranking (best trial, top k) depends on (its id aside)."""
    return (trial.best_validation,)


class WidgetModel:
    """The state an experiment widget shows, read from the store.

    Not thread-safe: one thread calls :meth:`refresh` (the widget holds a lock around it).

    Every numeric metric of every report is kept (columnar: 8 bytes a value, plus the step and the
    time of each report), so the metric pickers switch without re-reading the store. ``metrics[kind]`` names the metric each chart plots.

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
        self.metrics: dict[str, str | None] = {TRAINING: training_metric, VALIDATION: self.searcher.metric}
        self._last_metric_id = 0
        # kind -> trial id -> its reports, columnar (_Columns): typed arrays, no object per report
        self._columns: dict[str, dict[int, _Columns]] = {TRAINING: {}, VALIDATION: {}}
        self._names: dict[str, dict[str, None]] = {TRAINING: {}, VALIDATION: {}}  # ordered sets
        self._flat: dict[int, dict[str, Any]] = {}  # trial id -> flatten_hparams (they never change)
        self._by_id: dict[int, TrialRow] = {}
        self._trial_cache: dict[int, tuple[tuple[Any, ...], TrialRow]] = {}  # Store.list_trials_cached's
        self._progress: float | None = None  # progress() until the experiment or trial rows change
        self._ranked: list[TrialRow] | None = None  # rankable trials best first, until the trials change
        self.refreshed_at: float | None = None
        self.loading = False  # the last refresh read a full chunk: more reports wait to be read
        self.reports_read = 0

    # --- reading -------------------------------------------------------------------------------

    @property
    def searcher(self) -> SearcherConfig:
        """The searcher section of the experiment's config."""
        return self.config.searcher

    @property
    def validation_metric(self) -> str:
        """The searcher's metric (ranks trials; the validation chart plots it unless another is picked)."""
        return self.searcher.metric

    @property
    def training_metric(self) -> str | None:
        """The training metric plotted (``None`` until a training report names one)."""
        return self.metrics[TRAINING]

    @property
    def smaller_is_better(self) -> bool:
        """Whether the searcher minimises its metric."""
        return self.searcher.smaller_is_better

    @property
    def time_metric(self) -> str:
        """The unit of ``steps`` (``batches``, ``epochs``, ``records``): what the x-axis says."""
        return self.searcher.time_metric or "batches"

    @property
    def terminal(self) -> bool:
        """True once the experiment has ended (the widget then stops refreshing)."""
        return self.experiment.state.is_terminal

    def refresh(self) -> Changes:
        """Read what is new in the store; returns what changed."""
        changes = Changes()
        row = self.store.get_experiment(self.experiment_id)
        changes.experiment = row != self.experiment
        if changes.experiment:
            self.experiment, self._progress = row, None
        before = self._by_id
        # unchanged rows come back as the same objects: at 1,000 trials, parsing and comparing every
        # row per refresh was the largest part of a refresh's time
        trials, changed = self.store.list_trials_cached(self.experiment_id, self._trial_cache)
        changes.trials = bool(changed) or len(trials) != len(self.trials)
        by_id = {t.id: t for t in trials} if changes.trials else before
        rerun = [t for t in sorted(changed) if t in before and by_id[t].run_id != before[t].run_id]
        if changes.trials:
            if len(trials) != len(self.trials) or any(
                t not in before or _rank_fields(before[t]) != _rank_fields(by_id[t]) for t in changed
            ):
                self._ranked = None
            self.trials, self._by_id = trials, by_id
            self._progress = None
        for trial_id in rerun:  # a restarted run superseded reports we drew: redraw the trial from the store
            for kind in (TRAINING, VALIDATION):
                if self._columns[kind].pop(trial_id, None) is not None:
                    changes.series[kind].add(trial_id)
        skip = set(rerun)
        read = 0
        while read < READ_CHUNK:  # in batches: the rows of one, not of the whole chunk, exist at a time
            limit = min(READ_BATCH, READ_CHUNK - read)
            self._last_metric_id, rows = self.store.metric_tuples_since(
                experiment_id=self.experiment_id, after_id=self._last_metric_id, limit=limit
            )
            read += len(rows)
            self._ingest([r for r in rows if r[0] not in skip] if skip else rows, changes)
            if len(rows) < limit:
                break
        self.loading = read == READ_CHUNK
        self.reports_read += read
        for trial_id in rerun:  # (read after the new reports, as they were: it holds them all)
            self._ingest(
                [(m.trial_id, m.run_id, m.kind, m.steps, m.metrics, m.reported_at)
                 for m in self.store.metrics(trial_id=trial_id)],
                changes,
            )  # fmt: skip
        self.refreshed_at = time.time()
        return changes

    def _ingest(self, rows: list[tuple[int, int, str, int, dict[str, Any], float]], changes: Changes) -> None:
        """Add reports ``(trial_id, run_id, kind, steps, metrics, reported_at)`` to the columns."""
        changes.new_reports += len(rows)
        by_kind, names, metrics_plotted = self._columns, self._names, self.metrics
        plotted, nan = changes.series, _NAN[0]
        for trial_id, _run, kind, steps, metrics, reported_at in rows:
            by_trial = by_kind.get(kind)
            if by_trial is None:
                continue
            cols = by_trial.get(trial_id)
            if cols is None:
                cols = by_trial[trial_id] = _Columns()
            step_col, columns = cols.steps, cols.columns
            n = len(step_col)
            if not n or steps > step_col[-1]:  # the usual case: appended at the end; inline, a million
                filled = 0  # reports pass here on the first read. Numbers only (bools are not).
                for name, value in metrics.items():
                    if type(value) is float or type(value) is int:
                        column = columns.get(name)
                        if column is None:
                            column = cols.add(name, n)
                            names[kind].setdefault(name, None)
                        column[0].append(value)
                        column[1].append(1)
                        filled += 1
                if filled != len(columns):  # metrics this report lacks
                    for values, present in columns.values():
                        if len(values) == n:
                            values.append(nan)
                            present.append(0)
                step_col.append(steps)
                cols.times.append(reported_at)
            else:  # a step reported again (or out of order): the newest report of a step wins
                numbers = {k: float(v) for k, v in metrics.items() if type(v) is float or type(v) is int}
                for name in cols.put(steps, reported_at, numbers):
                    names[kind].setdefault(name, None)
                if metrics_plotted[kind] in columns:  # its point changed, or went (not in this report)
                    plotted[kind].add(trial_id)
            metric = metrics_plotted[kind]
            if metric is None:
                self._choose_training_metric(changes)
            else:
                value = metrics.get(metric)
                if type(value) is float or type(value) is int:
                    plotted[kind].add(trial_id)

    def _choose_training_metric(self, changes: Changes) -> None:
        numeric = list(self._names[TRAINING])
        if not numeric:
            return
        losses = [k for k in numeric if "loss" in k.lower()]
        self.metrics[TRAINING] = "loss" if "loss" in numeric else (losses or numeric)[0]
        changes.series[TRAINING] |= set(self._columns[TRAINING])

    def metric_names(self, kind: str) -> list[str]:
        """Every numeric metric reported so far for ``kind``, in the order first seen."""
        return list(self._names[kind])

    def set_metric(self, kind: str, metric: str) -> set[int]:
        """Plot ``metric`` on the ``kind`` chart; returns the trials whose lines must be redrawn.

        Example:
            >>> model.set_metric("training", "accuracy")     # doctest: +SKIP
            {1, 2, 3}
        """
        if kind not in self._columns:
            raise ValueError(f"kind={kind!r} is not a chart; use {TRAINING!r} or {VALIDATION!r}")
        self.metrics[kind] = metric
        return set(self._columns[kind])

    # --- derived views -------------------------------------------------------------------------

    def series(self, kind: str) -> dict[int, tuple[list[int], list[float]]]:
        """Per trial id: ``(steps ascending, values)`` of the plotted metric of ``kind``."""
        out = {tid: self.trial_series(kind, tid) for tid in sorted(self._columns[kind])}
        return {tid: s for tid, s in out.items() if s[0]}

    def trial_series(
        self, kind: str, trial_id: int, *, metric: str | None = None, x: str = "steps"
    ) -> tuple[list[Any], list[float]]:
        """One trial's ``(x, values)`` for ``kind``: ``x`` is steps, or seconds since the experiment began.

        Args:
            kind: ``training`` or ``validation``.
            trial_id: the trial.
            metric: a metric name (default: the one plotted).
            x: ``steps`` or ``time``.
        """
        cols, column = self._column(kind, trial_id, metric)
        if column is None:
            return [], []
        values, present = column
        source: array[Any] = cols.times if x == "time" else cols.steps
        xs: list[Any]
        if present.count(0):  # some reports lack the metric
            xs, ys = list(compress(source, present)), list(compress(values, present))
        else:
            xs, ys = source.tolist(), values.tolist()
        if x == "time":
            start = self.experiment.created_at
            xs = [round(t - start, 3) for t in xs]
        return xs, ys

    def _column(
        self, kind: str, trial_id: int, metric: str | None = None
    ) -> tuple[_Columns, tuple[array[float], bytearray] | None]:
        """A trial's reports of ``kind`` and the column of ``metric`` (default: the plotted one), if any."""
        cols = self._columns[kind].get(trial_id) or _EMPTY
        name = metric or self.metrics[kind]
        return cols, None if name is None else cols.columns.get(name)

    def last_point(self, kind: str, trial_id: int, *, x: str = "steps") -> tuple[Any, float] | None:
        """The newest point of a trial's plotted series (``None`` when it has none), without building it."""
        cols, column = self._column(kind, trial_id)
        i = -1 if column is None else column[1].rfind(1)
        if column is None or i < 0:
            return None
        at = round(cols.times[i] - self.experiment.created_at, 3) if x == "time" else cols.steps[i]
        return at, column[0][i]

    def reports_held(self) -> int:
        """Reports kept (one per trial, kind and step: the newest)."""
        return sum(len(c.steps) for trials in self._columns.values() for c in trials.values())

    def nbytes(self) -> int:
        """Bytes of the reports kept (:class:`_Columns`' values; their arrays' spare capacity aside)."""
        return sum(c.nbytes() for trials in self._columns.values() for c in trials.values())

    def flat_hparams(self, trial_id: int) -> dict[str, Any]:
        """:func:`flatten_hparams` of a trial's hyperparameters (kept: they never change). Do not mutate it."""
        flat = self._flat.get(trial_id)
        if flat is None:
            row = self._by_id.get(trial_id)
            flat = self._flat[trial_id] = flatten_hparams(row.hparams) if row is not None else {}
        return flat

    @property
    def best_trial_id(self) -> int | None:
        """The trial with the best ``best_validation`` (:mod:`det_jupyter.searcher.ranking`; ties: the older)."""
        ranked = self._ranking()
        return ranked[0].id if ranked else None

    def _ranking(self) -> list[TrialRow]:
        """Trials with a rankable metric, best first (ties: the older); kept until the trial rows change."""
        if self._ranked is None:
            smaller = self.smaller_is_better
            self._ranked = sorted(
                (t for t in self.trials if is_rankable(t.best_validation)),
                key=lambda t: rank_key(t.best_validation, smaller_is_better=smaller, tiebreak=t.id),
            )
        return self._ranked

    def trial(self, trial_id: int) -> TrialRow | None:
        """The trial's row as last read, or ``None`` when it is not one of this experiment's."""
        return self._by_id.get(trial_id)

    def top_trials(self, k: int) -> set[int]:
        """The ``k`` best trials by ``best_validation`` (:mod:`det_jupyter.searcher.ranking`'s order; unscored never).

        Example:
            >>> model.top_trials(10)                           # doctest: +SKIP
            {3, 17, 42}
        """
        return {t.id for t in self._ranking()[:k]}

    def stopped_points(self, kind: str, x: str = "steps") -> tuple[list[Any], list[float], list[int]]:
        """Where early-stopped (``STOPPED``) trials ended: ``(x, values, trial ids)``."""
        xs, ys, ids = [], [], []
        for t in self.trials:
            if t.state == TrialState.STOPPED:
                point = self.last_point(kind, t.id, x=x)
                if point is not None:
                    xs.append(point[0])
                    ys.append(point[1])
                    ids.append(t.id)
        return xs, ys, ids

    @functools.cached_property
    def plan(self) -> Plan:
        """What the config (fixed at submission) plans: trials and their length (:func:`~det_jupyter.store.progress.plan_of`)."""
        return plan_of(self.experiment.config)

    @property
    def planned_trials(self) -> int | None:
        """How many trials the search will create: ``max_trials`` (the grid's size for grid, 1 for single).

        ``None`` when it cannot be known ahead (a grid without counts); never less than created so far.
        """
        planned = self.plan.trials
        return None if planned is None else max(planned, len(self.trials))

    def counts(self) -> dict[str, int]:
        """Trials per outcome, each counted once.

        ``completed`` (trained to the end), ``stopped`` (stopped early by the searcher), ``canceled``
        (killed), ``errored``, ``running``, ``queued``, ``paused`` (also STOPPING_CANCELED), ``total``
        created, and ``planned`` (:attr:`planned_trials`, or ``total`` when unknown).
        """
        out = dict.fromkeys(("completed", "stopped", "canceled", "errored", "running", "queued", "paused"), 0)
        key = {TrialState.COMPLETED: "completed", TrialState.STOPPED: "stopped", TrialState.CANCELED: "canceled",
               TrialState.ERROR: "errored", TrialState.ACTIVE: "running", TrialState.QUEUED: "queued"}  # fmt: skip
        for t in self.trials:
            out[key.get(t.state, "paused")] += 1
        out["total"] = len(self.trials)
        out["planned"] = self.planned_trials or len(self.trials)
        return out

    def progress(self) -> float:
        """The fraction of the planned work done, in [0, 1]: what the progress bar shows.

        The one definition every surface shows (:mod:`det_jupyter.store.progress`): 1.0 only for a
        COMPLETED experiment, so a search killed at 32 of 300 steps shows 10 %, not 100 %.
        """
        if self._progress is None:
            self._progress = experiment_progress(self.experiment, self.trials, self.plan)
        return self._progress

    def elapsed(self, now: float | None = None) -> float:
        """Seconds since the experiment was created (until it ended, once it has)."""
        end = self.experiment.ended_at or (time.time() if now is None else now)
        return max(0.0, end - self.experiment.created_at)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left at the pace so far (elapsed × (1 − p) / p); ``None`` once ended or before any work."""
        p = self.progress()
        if self.terminal or self.experiment.state != ExperimentState.ACTIVE or p <= 0.0 or p >= 1.0:
            return None
        return self.elapsed(now) * (1.0 - p) / p

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

    def values_ascending(self, sort_by: str, descending: bool) -> bool:
        """Whether the sorted column's *values* go up down the table (what the header's ▲ / ▼ says).

        For ``best``, ascending order is best first, so the values go up when smaller is better.
        """
        return (not descending) == (self.smaller_is_better if sort_by == "best" else True)

    def errors(self) -> list[tuple[int, TrialState, int, str]]:
        """``(trial id, state, restarts, traceback)`` of every trial that failed at least once."""
        return [(t.id, t.state, t.restarts, t.error) for t in self.trials if t.error]

    @property
    def state(self) -> ExperimentState:
        """The experiment's state as last read."""
        return self.experiment.state
