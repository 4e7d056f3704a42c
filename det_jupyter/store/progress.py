"""Progress: the one definition of "how much of an experiment's work is done", read from store rows.

Every surface shows this number: the REST API / sidebar (``server/serializers.py``), the notebook
widget (``notebook/widget/model.py``), ``%det list`` / ``describe`` (``notebook/reports.py``) and the
CLI's ``experiment list`` / ``describe``. The controller's own ``experiments.progress`` column is
the *searcher's* progress (1 for every ended experiment, killed ones included); it is kept for the
searcher and shown nowhere as "progress".

The rule: each planned trial counts for ``1 / planned``; fully once COMPLETED or STOPPED (the searcher
asked nothing more of it), else by the length it trained out of ``max_time`` (running, paused,
canceled or errored trials keep the work they did); trials not created yet count 0. A COMPLETED
experiment is 1; nothing else ever is, so a search killed at 32 of 300 steps reads 10 %, not 100 %.
Without a ``max_time`` (the trial's code decides its length) a trial counts only once it is done.

Example:
    >>> from det_jupyter.states import ExperimentState, TrialState
    >>> plan = Plan(trials=1, max_time=300.0, time_metric="batches")
    >>> trial_progress(TrialState.CANCELED, searcher_time=30.0, steps_completed=32, plan=plan)
    0.10666666666666667
    >>> work_progress(ExperimentState.CANCELED, [(TrialState.CANCELED, 30.0, 32)], plan)
    0.10666666666666667
    >>> work_progress(ExperimentState.COMPLETED, [], plan)
    1.0
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from det_jupyter.states import ExperimentState, TrialState

if TYPE_CHECKING:
    from det_jupyter.store.rows import ExperimentRow, TrialRow

__all__ = [
    "DONE_STATES",
    "TRIAL_PROGRESS_SQL",
    "Plan",
    "experiment_progress",
    "plan_of",
    "plan_sql_row",
    "progress_of_done",
    "trial_progress",
    "work_progress",
]

DONE_STATES = (TrialState.COMPLETED, TrialState.STOPPED)
"""Trials that will train no more and did all the searcher asked of them: they count whole."""

_STEP_UNIT = "batches"
"""The time metric counted in steps: then a trial's reported steps measure its length between validations."""


@dataclass(frozen=True)
class Plan:
    """What an experiment's config plans: ``trials`` (``None``: unknown) of ``max_time`` each (``None``: unset).

    ``time_metric`` is the unit of ``max_time`` (a config that sets one sets the other); ``None``:
    unknown, so only the length the searcher heard of (``searcher_time``) counts.
    """

    trials: int | None
    max_time: float | None
    time_metric: str | None = None

    @property
    def counts_steps(self) -> bool:
        """True when ``max_time`` is in steps (batches), so a trial's ``steps_completed`` measures it too."""
        return self.time_metric == _STEP_UNIT


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


def plan_of(config: Mapping[str, Any]) -> Plan:
    """The :class:`Plan` of a stored config (the dict ``ExperimentRow.config`` holds).

    ``trials``: 1 for ``single``, the grid's size for ``grid`` (``None`` when it cannot be known),
    ``max_trials`` otherwise. ``max_time``: the searcher's, ``None`` when unset or not positive.

    >>> plan_of({"searcher": {"name": "random", "max_trials": 8, "max_time": 100, "time_metric": "epochs"}})
    Plan(trials=8, max_time=100.0, time_metric='epochs')
    >>> plan_of({"searcher": {"name": "grid"}, "hyperparameters": {"x": {"type": "categorical", "vals": [1, 2, 3]}}})
    Plan(trials=3, max_time=None, time_metric=None)
    >>> plan_of({})
    Plan(trials=None, max_time=None, time_metric=None)
    """
    searcher = config.get("searcher") or {}
    if not isinstance(searcher, Mapping):
        searcher = {}
    max_time = _number(searcher.get("max_time"))
    time_metric = searcher.get("time_metric")
    name = searcher.get("name")
    trials: int | None
    if name == "single":
        trials = 1
    elif name == "grid":
        # hparams is a leaf module (it imports only errors): the grid's size is its rule, not ours
        from det_jupyter.errors import DetJupyterError
        from det_jupyter.hparams import parse_hyperparameters

        try:
            trials = parse_hyperparameters(config.get("hyperparameters") or {}).grid_size()
        except (DetJupyterError, ValueError, TypeError):
            trials = None
    else:
        value = searcher.get("max_trials")
        trials = value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
    return Plan(
        trials=trials,
        max_time=max_time if max_time is not None and max_time > 0 else None,
        time_metric=str(time_metric) if time_metric else None,
    )


def trial_progress(
    state: TrialState, *, searcher_time: float, steps_completed: int, plan: Plan
) -> float | None:
    """How much of its planned length a trial trained, in [0, 1]; 1 once COMPLETED or STOPPED.

    Its length is ``searcher_time`` (in the time metric, as of its last validation) or, when the time
    metric is steps, ``steps_completed`` if further on. ``None`` without a ``max_time`` (unless done).
    """
    if state in DONE_STATES:
        return 1.0
    if plan.max_time is None:
        return None
    length = max(float(searcher_time), float(steps_completed) if plan.counts_steps else 0.0)
    return max(0.0, min(1.0, length / plan.max_time))


TrialProgressInput = tuple[TrialState, float, int]
"""``(state, searcher_time, steps_completed)`` of a trial: all :func:`work_progress` needs of it."""


def work_progress(state: ExperimentState, trials: Iterable[TrialProgressInput], plan: Plan) -> float:
    """The fraction of an experiment's planned work done, in [0, 1] (the module docstring's rule).

    Args:
        state: the experiment's state (COMPLETED reads 1).
        trials: ``(state, searcher_time, steps_completed)`` of each trial created so far.
        plan: what its config plans (:func:`plan_of`); more trials than planned count as planned.
    """
    if state == ExperimentState.COMPLETED:
        return 1.0
    trials = list(trials)
    done = sum(trial_progress(s, searcher_time=t, steps_completed=n, plan=plan) or 0.0 for s, t, n in trials)
    return progress_of_done(state, done, len(trials), plan)


def progress_of_done(state: ExperimentState, done: float, created: int, plan: Plan) -> float:
    """:func:`work_progress` from its sum: ``done`` is the sum of the trials' :func:`trial_progress`
    (``None`` counting 0) over the ``created`` trials, as :data:`TRIAL_PROGRESS_SQL` sums it in SQL."""
    if state == ExperimentState.COMPLETED:
        return 1.0
    planned = max(plan.trials or 0, created)
    if planned == 0:
        return 0.0
    return max(0.0, min(1.0, done / planned))


def plan_sql_row(plan: Plan) -> tuple[float | None, int]:
    """``(max_time, counts_steps)`` of a plan: the ``p`` columns :data:`TRIAL_PROGRESS_SQL` reads."""
    return plan.max_time, int(plan.counts_steps)


_DONE_SQL = ", ".join(f"'{s.value}'" for s in DONE_STATES)
TRIAL_PROGRESS_SQL = (
    f"CASE WHEN t.state IN ({_DONE_SQL}) THEN 1.0 WHEN p.max_time IS NULL THEN 0.0"
    " ELSE MIN(1.0, MAX(0.0, MAX(t.searcher_time, CASE WHEN p.counts_steps THEN t.steps_completed"
    " ELSE 0.0 END) * 1.0 / p.max_time)) END"
)
""":func:`trial_progress` (``None`` as 0) as an SQL expression over a trials row ``t`` and its plan
``p(max_time, counts_steps)`` (:func:`plan_sql_row`): the same rule, for readers that sum progress in
one aggregate query (the sidebar's experiment list, ``Store.experiment_aggregates``);
``tests/server_tests`` checks both give the same numbers."""


def experiment_progress(
    experiment: ExperimentRow, trials: Sequence[TrialRow], plan: Plan | None = None
) -> float:
    """:func:`work_progress` of store rows: an experiment and its trials.

    ``plan`` defaults to :func:`plan_of` the experiment's stored config.
    """
    plan = plan_of(experiment.config) if plan is None else plan
    rows = [(t.state, float(t.searcher_time), int(t.steps_completed)) for t in trials]
    return work_progress(experiment.state, rows, plan)
