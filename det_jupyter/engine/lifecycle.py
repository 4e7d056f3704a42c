"""The lifecycle rules of an experiment's trials and runs, as a pure state machine.

:class:`Lifecycle` holds the controller's working copy of the non-terminal trials
(:class:`TrialRecord`) and their live runs (:class:`RunRecord`). Its methods take what happened (a
worker event, a task that ended, a control request, the time ``now`` from ``time.monotonic()``) and
return *decisions* (:class:`Submit`, :class:`RequestStop`, :class:`EndTrial`, ...) that the
controller applies with the store, the searcher and the :class:`~det_jupyter.engine.launcher.Launcher`.
No Dask, no store, no clock reads here: every rule of ``docs/architecture.md`` ("Failure and
lifecycle rules") can be tested by calling methods and reading the decisions.

The rules:

- A finished run is finalized only once its task ended **and** the ``events_sent`` events it
  announced arrived (events and task completion travel different paths); without an ``exited``
  event the task's result is fetched after :data:`RESULT_GRACE` s (:class:`FetchResult`), and missing
  events are given up on after :data:`EVENTS_GRACE` s.
- Finalizing an ended run: :func:`~det_jupyter.engine.finalize.finalize` (its own module).
- Stop precedence: pause < searcher < kill (:class:`StopReason`); a weaker stop never overrides.
- A stopping run that ignores ``should_stop()`` for ``stop_grace`` seconds is cut off (:class:`CutOff`).
- The experiment ends when no run is live and either a kill was requested (CANCELED) or the searcher
  shut down with no trial left (COMPLETED, or ERROR when every trial failed).
- The submission window: with :attr:`Lifecycle.window` set, at most that many runs are live (submitted
  and not finalized) at once; other trials that want a run wait in a FIFO (restarts at its front) and
  are admitted in batches, when the live runs fall to half the window, so a 10,000-trial search keeps
  a few times the cluster's slots in Dask instead of 10,000 tasks, and the controller's per-pass work
  (:meth:`Lifecycle.tick`) stays bounded by the window. A waiting trial has no run: pause, kill and
  searcher stops treat it like a paused one.

Example:
    >>> from det_jupyter.engine.runs import TrialRecord
    >>> rules = Lifecycle(experiment_id=1, nonce="n", max_restarts=0, max_time=10)
    >>> rules.add_trial(TrialRecord(id=7, request_id=1, hparams={}))
    [Submit(run=RunRecord(trial_id=7, run_id=0, key='det-trial-e1-t7-r0-n'))]
"""

from __future__ import annotations

import math
from collections import OrderedDict

from det_jupyter.engine.finalize import finalize
from det_jupyter.engine.metric_watch import MetricWatch
from det_jupyter.engine.runs import (
    AppendLog,
    CutOff,
    Decision,
    EndTrial,
    FetchResult,
    FinishExperiment,
    MarkStarted,
    Outcome,
    OutcomeStatus,
    RecordCheckpoint,
    RecordLogs,
    RecordMetrics,
    ReleaseRun,
    ReportValidation,
    RequestStop,
    RunRecord,
    ScoreCheckpoint,
    SetExperimentState,
    StopReason,
    Submit,
    TaskEnd,
    TrialRecord,
    UpdateTrial,
)
from det_jupyter.searcher import ExitReason
from det_jupyter.searcher.ranking import finite_or_none, is_better, is_rankable
from det_jupyter.states import ControlAction, ExperimentState, TrialState
from det_jupyter.worker.events import CheckpointSaved, Exited, Log, MetricKind, Metrics, RunEvent, Started

__all__ = ["EVENTS_GRACE", "RESULT_GRACE", "Lifecycle"]

RESULT_GRACE = 5.0
"""Seconds to wait for a finished task's ``exited`` event before fetching its result."""
EVENTS_GRACE = 10.0
"""Seconds to wait for a finished run's missing events before finalizing without them."""


# --- the state machine -----------------------------------------------------------------------------


class Lifecycle:
    """Trials, runs and the experiment state of one experiment; every method returns decisions.

    Not thread-safe: the controller's loop thread is its only caller.

    Args:
        experiment_id: for task keys. nonce: the controller's nonce (task keys are unique per controller).
        max_restarts: the config's ``max_restarts``.
        max_time: the searcher's ``max_time`` (``None``: unbounded).
        metric, smaller_is_better, time_metric: the searcher's metric, direction and length unit.
        stop_grace: seconds a stopping run gets before it is cut off.
        state: the experiment's state when the controller starts.
        window: the most live runs at once (``None``: no bound); the controller sets it from the
            cluster's slots (:attr:`window` may change at any time).
    """

    def __init__(
        self,
        *,
        experiment_id: int,
        nonce: str,
        max_restarts: int,
        max_time: float | None,
        metric: str = "val_loss",
        smaller_is_better: bool = True,
        time_metric: str | None = None,
        stop_grace: float = 30.0,
        state: ExperimentState = ExperimentState.ACTIVE,
        max_no_progress: float | None = None,
        no_progress_policy: str = "restart",
        window: int | None = None,
    ) -> None:
        self.experiment_id = experiment_id
        self.nonce = nonce
        self.max_restarts = max_restarts
        self.max_time = float(max_time) if max_time else math.inf
        self.metric = metric
        self.smaller_is_better = smaller_is_better
        self.time_metric = time_metric
        self.stop_grace = stop_grace
        self.state = state
        self.max_no_progress = max_no_progress
        self.no_progress_policy = no_progress_policy
        self.trials: dict[int, TrialRecord] = {}
        """Non-terminal trials by id."""
        self.runs: dict[str, RunRecord] = {}
        """Live runs by task key."""
        self.searcher_done = False
        self.search_failed = False
        self._by_request: dict[int, TrialRecord] = {}
        self._run_of_trial: dict[int, RunRecord] = {}
        self.metric_watch = MetricWatch(metric)  # the searcher-metric rule (finish)
        self.window = window
        """The most live runs at once (``None``: no bound); see the module docstring."""
        self._waiting: OrderedDict[int, TrialRecord] = OrderedDict()
        """Trials that want a run and wait for room in the window, in admission order."""
        self.most_live = 0
        """The most runs that were live at once (the window's bound, for tests and benchmarks)."""
        self.tick_visits = 0
        """Runs :meth:`tick` looked at, in total (its per-pass work, counted for tests)."""

    @property
    def waiting(self) -> int:
        """How many trials wait for room in the window."""
        return len(self._waiting)

    def run_of(self, trial_id: int) -> RunRecord | None:
        """The live run of a trial, if any."""
        return self._run_of_trial.get(trial_id)

    def live_run_of_request(self, request_id: int) -> RunRecord | None:
        """The live run of the trial the searcher knows as ``request_id``, if any."""
        trial = self._by_request.get(request_id)
        return None if trial is None else self._run_of_trial.get(trial.id)

    # --- trials and searcher operations ----------------------------------------------------------

    def add_trial(self, trial: TrialRecord) -> list[Decision]:
        """A trial the searcher created (or a non-terminal one found on resume): run it unless paused."""
        self.trials[trial.id] = trial
        if trial.run_id >= 0 or trial.best is not None:  # resumed: earlier runs were not seen here
            self.metric_watch.saw_metric()  # so never claim that no trial reported the metric
        self._by_request[trial.request_id] = trial
        if self.state == ExperimentState.ACTIVE:  # a resumed trial's row may say ACTIVE or PAUSED
            return self._want_run(trial, mark_queued=trial.run_id >= 0)
        return [UpdateTrial(trial.id, {"state": TrialState.PAUSED})]

    def resume_trial(self, trial: TrialRecord) -> list[Decision]:
        """A non-terminal trial found when a controller takes over (its master or kernel died or stopped).

        Its last run was interrupted by a fault outside the trial's code, so it never spends
        ``max_restarts``: the trial is resubmitted (``run_id + 1``) from its latest checkpoint with its
        ``restarts`` unchanged, and its log says so.

        Example:
            >>> rules = Lifecycle(experiment_id=1, nonce="n", max_restarts=0, max_time=10)
            >>> out = rules.resume_trial(TrialRecord(id=7, request_id=1, hparams={}, restarts=0, run_id=2))
            >>> out[-1].run.run_id, out[-1].run.trial.restarts
            (3, 0)
        """
        out: list[Decision] = []
        if trial.run_id >= 0:
            since = (
                f"its checkpoint at step {trial.latest_checkpoint_steps}"
                if trial.latest_checkpoint
                else "the start (no checkpoint yet)"
            )
            out.append(
                AppendLog(
                    trial.id,
                    trial.run_id,
                    f"[det_jupyter] run {trial.run_id} was interrupted (its master or kernel stopped); "
                    f"resuming from {since}, not counted as a restart",
                )
            )
        return [*out, *self.add_trial(trial)]

    def searcher_stop(self, request_id: int, now: float) -> list[Decision]:
        """The searcher's ``Stop``: stop the trial's run, or end a trial that has none (paused) STOPPED."""
        trial = self._by_request.get(request_id)
        if trial is None or trial.id not in self.trials:
            return []
        run = self._run_of_trial.get(trial.id)
        if run is not None:
            return self._stop(run, StopReason.SEARCHER, now)
        return [self._end(trial, TrialState.STOPPED, ExitReason.STOPPED)]

    def searcher_shutdown(self, failure: bool) -> None:
        """The searcher's ``Shutdown``: no more trials will be created."""
        self.searcher_done, self.search_failed = True, failure

    # --- worker events ---------------------------------------------------------------------------

    def on_event(self, event: RunEvent, now: float) -> list[Decision]:
        """One decoded worker event. Events of runs already finalized are ignored."""
        run = self.count_event(event.trial_id, event.run_id)
        if run is None:
            return []
        trial, body = run.trial, event.body
        out: list[Decision] = []
        if isinstance(body, (Metrics, CheckpointSaved, Started)):
            run.last_progress = now
        if isinstance(body, Metrics):
            out += self._on_metrics(run, body)
        elif isinstance(body, CheckpointSaved):
            trial.latest_checkpoint, trial.latest_checkpoint_steps = body.uuid, body.steps
            if body.steps not in trial.validations:
                trial.unscored_checkpoints[body.steps] = body.uuid
            out.append(RecordCheckpoint(trial.id, run.run_id, body, trial.validations.get(body.steps)))
        elif isinstance(body, Log):
            out.append(RecordLogs(trial.id, run.run_id, body))
        elif isinstance(body, Exited):
            run.events_seen -= 1  # the summary does not count itself
            run.outcome = Outcome.of(body)
        elif isinstance(body, Started):
            run.started, run.worker = True, body.worker
            if body.restored_from:
                trial.latest_checkpoint = body.restored_from
            out.append(MarkStarted(trial.id, body.worker, active=run.stop_reason is None))
        if run.outcome is not None and run.task_done:
            out += self._finalize_when_complete(run, now)
        return out

    def count_event(self, trial_id: int | None, run_id: int | None) -> RunRecord | None:
        """Count an event towards its live run's ``events_sent``; ``None`` if no such run is live."""
        run = self._run_of_trial.get(trial_id) if trial_id is not None else None
        if run is None or run.run_id != run_id:
            return None
        run.events_seen += 1
        return run

    def _on_metrics(self, run: RunRecord, body: Metrics) -> list[Decision]:
        trial = run.trial
        out: list[Decision] = [RecordMetrics(trial.id, run.run_id, body)]
        steps_done = 0
        for record in body.records:
            steps_done = max(steps_done, record.steps)
            self.metric_watch.note(record.kind, record.metrics)
            if record.kind != MetricKind.VALIDATION:
                continue
            trial.reported_metric = trial.reported_metric or self.metric in record.metrics
            value = finite_or_none(record.metrics.get(self.metric))
            worst = math.inf if self.smaller_is_better else -math.inf
            metric = worst if value is None else value  # NaN / missing ranks worst (ranking.py)
            elapsed = record.metrics.get(self.time_metric) if self.time_metric else None
            trial.searcher_time = float(elapsed) if is_rankable(elapsed) else float(record.steps)  # type: ignore[arg-type]
            trial.validations[record.steps] = metric
            if is_better(value, trial.best, smaller_is_better=self.smaller_is_better):
                trial.best = value
            out.append(
                UpdateTrial(
                    trial.id,
                    {
                        "best_validation": trial.best,
                        "latest_validation": value,
                        "searcher_time": trial.searcher_time,
                    },
                )
            )
            unscored = trial.unscored_checkpoints.pop(record.steps, None)
            if unscored is not None:
                out.append(ScoreCheckpoint(unscored, metric))
            if run.stop_reason != StopReason.KILL and self.state != ExperimentState.STOPPING_CANCELED:
                out.append(ReportValidation(trial.request_id, metric, trial.searcher_time))
        out.append(UpdateTrial(trial.id, {"steps_completed": steps_done}))
        return out

    # --- run completion --------------------------------------------------------------------------

    def on_task_end(self, key: str, end: TaskEnd, error: str | None, now: float) -> list[Decision]:
        """A run's task ended (``error``: the exception of a failed one)."""
        run = self.runs.get(key)
        if run is None:
            return []
        run.task_done = True
        if end == TaskEnd.FINISHED:
            if (
                run.outcome is None
            ):  # its "exited" event is still on the way; fetch the result if it never comes
                run.wait_until = now + RESULT_GRACE
                return []
        elif run.no_progress is not None:  # cut off by the no-progress timeout
            run.outcome = Outcome(OutcomeStatus.ERROR, run.no_progress)
        elif end == TaskEnd.CANCELLED:
            run.outcome = Outcome(OutcomeStatus.CANCELLED)
        else:
            tb = f"{error} (the worker running the trial died or was lost)"
            run.outcome = Outcome(OutcomeStatus.LOST, tb)
        return self._finalize_when_complete(run, now)

    def on_result(self, run: RunRecord, outcome: Outcome) -> list[Decision]:
        """The fetched result of a run whose ``exited`` event never came (after :class:`FetchResult`)."""
        if self.runs.get(run.key) is not run:
            return []
        run.outcome = outcome
        return self._finalize(run)

    def _finalize_when_complete(self, run: RunRecord, now: float) -> list[Decision]:
        assert run.outcome is not None
        if run.events_seen >= run.outcome.events_sent:
            return self._finalize(run)
        if run.wait_until is None:  # the last events are still on their way through the scheduler
            run.wait_until = now + EVENTS_GRACE
        return []

    def _finalize(self, run: RunRecord) -> list[Decision]:
        assert run.outcome is not None
        self.runs.pop(run.key, None)
        if self._run_of_trial.get(run.trial.id) is run:
            del self._run_of_trial[run.trial.id]
        no_retry = run.no_progress is not None and self.no_progress_policy == "error"
        out = finalize(
            run,
            run.outcome,
            state=self.state,
            max_restarts=-1 if no_retry else self.max_restarts,
            max_time=self.max_time,
        )
        resubmit = not any(isinstance(d, EndTrial) for d in out) and self.state == ExperimentState.ACTIVE
        for d in out:
            if isinstance(d, EndTrial):
                self._forget(d.trial)
        out.insert(0, ReleaseRun(run))
        if resubmit:  # a restart (or a pause undone meanwhile) keeps its place: the FIFO's front
            return [*out, *self._want_run(run.trial, mark_queued=True, front=True)]
        return [*out, *self._admit()]

    def tick(self, now: float) -> list[Decision]:
        """Deadlines: finalize runs whose wait is over (fetching missing results), cut off stuck stops;
        then admit waiting trials if the window has room (it may have grown)."""
        out: list[Decision] = []
        self.tick_visits += len(self.runs)
        for run in list(self.runs.values()):
            if run.wait_until is not None and now >= run.wait_until:
                out += [FetchResult(run)] if run.outcome is None else self._finalize(run)
            elif run.stop_requested_at is not None and now - run.stop_requested_at > self.stop_grace:
                run.stop_requested_at = None
                out.append(CutOff(run, self.stop_grace))
            elif self._made_no_progress(run, now):
                assert self.max_no_progress is not None
                then = (
                    "restarted from its latest checkpoint"
                    if self.no_progress_policy == "restart"
                    else "ended"
                )
                run.no_progress = (
                    f"[det_jupyter] run {run.run_id} made no progress (no metrics or checkpoint) for "
                    f"{self.max_no_progress:g}s (max_no_progress): its worker was restarted and the trial "
                    f"{then} (no_progress_policy: {self.no_progress_policy})"
                )
                out.append(CutOff(run, self.max_no_progress, run.no_progress))
        return [*out, *self._admit()]

    def _made_no_progress(self, run: RunRecord, now: float) -> bool:
        """The no-progress rule: a started, unstopped, unfinished run silent for ``max_no_progress`` s.

        Example:
            >>> rules = Lifecycle(experiment_id=1, nonce="n", max_restarts=1, max_time=10, max_no_progress=60)
            >>> (submit,) = rules.add_trial(TrialRecord(id=7, request_id=1, hparams={}))
            >>> submit.run.started, submit.run.last_progress = True, 100.0
            >>> rules._made_no_progress(submit.run, 150.0), rules._made_no_progress(submit.run, 161.0)
            (False, True)
        """
        return (
            self.max_no_progress is not None
            and run.started
            and run.no_progress is None
            and run.outcome is None
            and not run.task_done
            and run.stop_reason is None
            and run.last_progress is not None
            and now - run.last_progress > self.max_no_progress
        )

    def on_recovered_checkpoint(
        self, trial_id: int, run_id: int, body: CheckpointSaved, validation: Metrics | None
    ) -> list[Decision]:
        """A checkpoint an earlier run committed whose event never arrived (its worker died right after
        the commit), found in storage when the trial is resubmitted; ``validation`` is the report at its
        steps that its metadata carries, when the store lacks it. Registered as if the events had come.

        Example:
            >>> from det_jupyter.worker.events import CheckpointSaved
            >>> rules = Lifecycle(experiment_id=1, nonce="n", max_restarts=1, max_time=10)
            >>> _ = rules.add_trial(TrialRecord(id=7, request_id=1, hparams={}))
            >>> out = rules.on_recovered_checkpoint(7, 0, CheckpointSaved("ck", 5, {}, {}), None)
            >>> type(out[-1]).__name__, rules.trials[7].latest_checkpoint_steps
            ('RecordCheckpoint', 5)
        """
        trial = self.trials.get(trial_id)
        if trial is None:
            return []
        out: list[Decision] = []
        if validation is not None:
            out += self._on_metrics(RunRecord(trial, run_id, ""), validation)
        if body.steps >= trial.latest_checkpoint_steps:
            trial.latest_checkpoint, trial.latest_checkpoint_steps = body.uuid, body.steps
        if body.steps not in trial.validations:
            trial.unscored_checkpoints[body.steps] = body.uuid
        out.append(RecordCheckpoint(trial.id, run_id, body, trial.validations.get(body.steps)))
        return out

    # --- stopping and control requests -----------------------------------------------------------

    def _stop(self, run: RunRecord, reason: StopReason, now: float) -> list[Decision]:
        if run.stop_reason is not None and reason <= run.stop_reason:
            return []
        run.stop_reason, run.stop_requested_at = reason, now
        return [RequestStop(run, reason, cancel_if_queued=not run.started)]

    def on_request(self, action: ControlAction, now: float) -> list[Decision]:
        """A control request from the store: pause, activate or kill."""
        if self.state.is_terminal:
            return []
        out: list[Decision] = []
        if action == ControlAction.PAUSE and self.state == ExperimentState.ACTIVE:
            out.append(self._set_state(ExperimentState.PAUSED))
            for run in list(self.runs.values()):
                out += self._stop(run, StopReason.PAUSE, now)
            out += [UpdateTrial(t.id, {"state": TrialState.PAUSED}) for t in self._waiting.values()]
            self._waiting.clear()
        elif action == ControlAction.ACTIVATE and self.state == ExperimentState.PAUSED:
            out.append(self._set_state(ExperimentState.ACTIVE))
            for trial in list(self.trials.values()):
                if trial.id not in self._run_of_trial:  # the ones still winding down resubmit when they end
                    out += self._want_run(trial, mark_queued=True)
        elif action == ControlAction.KILL:
            out += self.kill(now)
        return out

    def kill(self, now: float) -> list[Decision]:
        """STOPPING_CANCELED: trials without a run end CANCELED, running ones are stopped."""
        out: list[Decision] = [self._set_state(ExperimentState.STOPPING_CANCELED)]
        for trial in list(self.trials.values()):
            run = self._run_of_trial.get(trial.id)
            if run is None:
                out.append(self._end(trial, TrialState.CANCELED, None))
            else:
                out += self._stop(run, StopReason.KILL, now)
        return out

    def finish(self) -> FinishExperiment | None:
        """The experiment's final state, once no run is live and nothing more will run."""
        if self.runs:
            return None
        if self.state == ExperimentState.STOPPING_CANCELED:
            final = FinishExperiment(ExperimentState.CANCELED)
        elif self.searcher_done and not self.trials:
            if self.search_failed:
                final = FinishExperiment(
                    ExperimentState.ERROR, "every trial failed; see the trials' logs and errors"
                )
            else:
                final = FinishExperiment(ExperimentState.COMPLETED, self.metric_watch.missing())
        else:
            return None
        self.state = final.state
        return final

    # --- internals -------------------------------------------------------------------------------

    def _want_run(self, trial: TrialRecord, *, mark_queued: bool, front: bool = False) -> list[Decision]:
        """The trial needs a run: it joins the waiting FIFO (``front``: at its head), then room in the
        window admits what it can. ``mark_queued``: its row may not say QUEUED (a restart, a resumed or
        reactivated trial), so a wait is shown as QUEUED at once (a run's submission writes it anyway)."""
        self._waiting[trial.id] = trial
        if front:
            self._waiting.move_to_end(trial.id, last=False)
        out = self._admit(refill=False)
        if mark_queued and trial.id in self._waiting:
            out.append(UpdateTrial(trial.id, {"state": TrialState.QUEUED}))
        return out

    def _admit(self, *, refill: bool = True) -> list[Decision]:
        """Submit waiting trials while the window has room. A ``refill`` (room made by ended runs)
        starts only when the live runs fall to half the window, and then fills it: runs that end one by
        one are replaced in batches (one Dask graph each, see
        :meth:`~det_jupyter.engine.launcher.Launcher.flush`). A trial that just came (created, restarted,
        reactivated) is admitted at once if the window has room."""
        if not self._waiting or self.state != ExperimentState.ACTIVE:
            return []
        window = self.window
        if window is None:
            room = len(self._waiting)
        else:
            window = max(1, window)
            if refill and len(self.runs) > window // 2:
                return []
            room = window - len(self.runs)
        out: list[Decision] = []
        while self._waiting and room > 0:
            _, trial = self._waiting.popitem(last=False)
            out.append(self._submit(trial))
            room -= 1
        self.most_live = max(self.most_live, len(self.runs))
        return out

    def _submit(self, trial: TrialRecord) -> Submit:
        trial.run_id += 1
        key = f"det-trial-e{self.experiment_id}-t{trial.id}-r{trial.run_id}-{self.nonce}"
        run = RunRecord(trial, trial.run_id, key)
        self.runs[key] = run
        self._run_of_trial[trial.id] = run
        return Submit(run)

    def _end(self, trial: TrialRecord, state: TrialState, reason: ExitReason | None) -> EndTrial:
        self._forget(trial)
        told = self.state != ExperimentState.STOPPING_CANCELED
        return EndTrial(trial, state, reason if told else None)

    def _forget(self, trial: TrialRecord) -> None:
        self._waiting.pop(trial.id, None)
        if self.trials.pop(trial.id, None) is not None and not trial.reported_metric:
            self.metric_watch.unscored_end()

    def _set_state(self, state: ExperimentState) -> SetExperimentState:
        self.state = state
        return SetExperimentState(state)
