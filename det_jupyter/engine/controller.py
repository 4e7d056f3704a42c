"""The controller: runs one experiment (Determined's "master" for it), by default as a kernel thread.

It is where the searcher, the launcher (Dask) and the store meet, and it only *applies* rules: what
happens to trials and runs is decided by :class:`~det_jupyter.engine.lifecycle.Lifecycle` (pure), what
trials to create or stop by the searcher (pure). One loop, one thread:

1. wait (at most ``poll_interval``) for items in its inbox: worker events from the experiment's topic
   (decoded by :func:`det_jupyter.worker.events.decode`) and "done" notices of run tasks;
2. in ONE store transaction: hand them to the lifecycle rules, apply the decisions they return
   (submit / stop / cancel runs through the launcher, feed validations and exits to the searcher and
   apply its operations, buffer store rows), act on control requests (pause / activate / kill) read
   from the store, apply the checkpoint GC policy, save the searcher state and a heartbeat, and flush
   the write-behind buffer.

So the store always holds a consistent picture, and an experiment whose controller died can be
resumed from it: trials that were running restart from their latest checkpoints.

The searcher state is saved in the pass that changed it when the searcher answered with operations
(a trial created or stopped, the search shut down) or took a validation that shapes its decisions;
changes it can rebuild from the store (exits, and the reported times of searchers whose validations
only move :meth:`~det_jupyter.searcher.SearchMethod.progress`) are saved at most every
``searcher_save_interval`` seconds (or ``SAVE_COST_FACTOR`` times what the last save took, if
longer). Saving a 10,000-live-trial state every pass made the controller quadratic
(``docs/benchmarks.md``, trial bookkeeping). A resumed controller replays the exits the store holds
that the saved state missed (:meth:`Controller._resume_trials`).

Submission window: the controller keeps at most ``max(MIN_WINDOW, WINDOW_PER_SLOT x slots)`` runs
submitted (the launcher's :meth:`~det_jupyter.engine.launcher.Launcher.capacity`, recounted every few
seconds; no bound when the launcher cannot tell), as a cluster scheduler would: the rest of a large
search waits in the lifecycle's FIFO (``engine/lifecycle.py``) and is admitted in batches that the
launcher submits as one graph at the end of the pass. Submitting all 10,000 trials of a search at once
cost the scheduler an ``update-graph`` per trial and the controller an O(live runs) ``tick`` per pass.

Example:
    >>> exp = det_jupyter.create_experiment(config, train)   # doctest: +SKIP
    >>> exp.wait()                                            # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import queue
import socket
import threading
import time
import traceback
import uuid as uuidlib
from collections.abc import Callable
from typing import Any

from distributed import Client

from det_jupyter.checkpoints import CheckpointStorage
from det_jupyter.config import ExperimentConfig
from det_jupyter.config.environment import DeviceKind
from det_jupyter.engine import runs as r
from det_jupyter.engine.checkpoint_sync import collect_garbage, recover_checkpoint, warm_start_checkpoint
from det_jupyter.engine.launcher import DaskLauncher, Launcher
from det_jupyter.engine.lifecycle import Lifecycle
from det_jupyter.engine.runs import experiment_key, trial_spec
from det_jupyter.engine.write_behind import WriteBehind
from det_jupyter.errors import ConfigError
from det_jupyter.searcher import Create, ExitReason, Operation, SearchMethod, Shutdown, Stop, make_searcher
from det_jupyter.states import ExperimentState, TrialState
from det_jupyter.store import CheckpointRow, Store, default_home
from det_jupyter.worker.events import (
    LogLine,
    MalformedEvent,
    decode,
    decode_summary,
)

__all__ = ["MIN_WINDOW", "WINDOW_PER_SLOT", "Controller"]

WINDOW_PER_SLOT = 4
"""Runs kept submitted per slot of the cluster (the submission window; see the module docstring)."""
MIN_WINDOW = 64
"""The smallest submission window (a cluster with few or no workers yet, an adaptive one scaling up)."""
WINDOW_RECOUNT = 2.0
"""Seconds between two looks at the launcher's capacity."""
SAVE_COST_FACTOR = 20
"""A lazy searcher save waits at least this many times what the last save took (a search's state
grows with its trials: lazy saves stay under ~5 % of the loop's time at any size)."""

# What the searcher was told when a trial ended in each terminal state (engine/finalize.py's rule).
_EXIT_REASONS = {
    TrialState.COMPLETED: ExitReason.COMPLETED,
    TrialState.STOPPED: ExitReason.STOPPED,
    TrialState.ERROR: ExitReason.ERRORED,
}

log = logging.getLogger(__name__)


class Controller:
    """Drives one experiment to its end. Start it with :meth:`start`; everything else reads the store.

    Args:
        store: the store holding the experiment.
        experiment_id: the experiment to run (ACTIVE or PAUSED; resumed if it ran before).
        launcher: where runs execute: a :class:`~det_jupyter.engine.launcher.Launcher`, or a Dask
            ``Client`` (a :class:`~det_jupyter.engine.launcher.DaskLauncher` is built over it).
        config: the experiment's config, if the caller has it (else read from the store).
        poll_interval: longest wait between two looks at the store's control requests.
        stop_grace: seconds a stopping trial gets to checkpoint and return before it is cut off.
        heartbeat_interval: seconds between heartbeats (the lease is stale after 10 of them).
        clock: the monotonic clock deadlines are measured with (tests pass a fake one).
        searcher_save_interval: longest delay of a searcher-state save that the store can rebuild
            (see the module docstring).
    """

    def __init__(
        self,
        store: Store,
        experiment_id: int,
        launcher: Launcher | Client,
        *,
        config: ExperimentConfig | None = None,
        poll_interval: float = 0.1,
        stop_grace: float = 30.0,
        heartbeat_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        searcher_save_interval: float = 0.5,
    ) -> None:
        self.store = store
        self.experiment_id = experiment_id
        self._launcher_arg = launcher
        self.config: ExperimentConfig | None = config
        self.poll_interval = poll_interval
        self.stop_grace = stop_grace
        self.heartbeat_interval = heartbeat_interval
        self._clock = clock
        self.searcher_save_interval = searcher_save_interval
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuidlib.uuid4().hex[:8]}"
        self._nonce = self.owner.rsplit(":", 1)[-1]
        self._topic = f"det-jupyter-exp{experiment_id}-{self._nonce}"
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.launcher: Launcher | None = launcher if isinstance(launcher, Launcher) else None
        self.rules: Lifecycle | None = None
        self._writes = WriteBehind(store)
        self._searcher_dirty = False  # the searcher changed since its state was last saved
        self._searcher_must_save = False  # ... in a way the store cannot rebuild: save in this pass
        self._last_searcher_save = -float("inf")
        self._searcher_save_cost = 0.0  # seconds the last save took
        self._gc_dirty = False
        self._finished = threading.Event()  # set once the final state is committed
        self._stopping = threading.Event()  # stop() was called: leave the experiment resumable
        self._done = False
        self._last_heartbeat = -float("inf")
        self._last_requests = -float("inf")
        self._answered: dict[int, float] = {}  # request id -> longest decision point answered "continue"
        self._last_gc = -float("inf")
        self._last_window = -float("inf")

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Claim the experiment and run it in a daemon thread; returns at once."""
        if not self.store.claim_experiment(
            self.experiment_id, self.owner, stale_after=10 * self.heartbeat_interval
        ):
            raise RuntimeError(
                f"experiment {self.experiment_id} is run by another live controller "
                f"({self.store.get_experiment(self.experiment_id).owner}); wait for it or kill the experiment"
            )
        self._thread = threading.Thread(
            target=self._main, name=f"det-jupyter-exp{self.experiment_id}", daemon=True
        )
        self._thread.start()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the experiment to end; True if it has."""
        return self._finished.wait(timeout)

    @property
    def finished(self) -> bool:
        """True once the loop has ended (experiment terminal, or the controller failed)."""
        return self._finished.is_set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop running the experiment without ending it (its master or kernel is shutting down).

        Live runs are cancelled and the lease released; the experiment stays ACTIVE / PAUSED, so the
        next controller resumes it and resubmits the interrupted trials without counting a restart.
        """
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _main(self) -> None:
        try:
            self._setup()
            while not self._done and not self._stopping.is_set():
                self._step()
            if not self._done and self.launcher is not None and self.rules is not None:
                for key in list(self.rules.runs):  # interrupted, not failed: nothing is recorded
                    self.launcher.cancel(key)
                with self.store.transaction():  # what a lazy save held back (resume would replay it)
                    self._save_searcher(self._clock(), force=True)
        except Exception as exc:
            tb = traceback.format_exc()
            log.error("controller of experiment %s failed:\n%s", self.experiment_id, tb)
            # a config the store cannot satisfy (a warm start's missing checkpoint) says so plainly
            error = str(exc) if isinstance(exc, ConfigError) else f"controller failed:\n{tb}"
            if self.launcher is not None and self.rules is not None:
                for key in list(self.rules.runs):
                    self.launcher.cancel(key)
            self.store.update_experiment(
                self.experiment_id,
                state=ExperimentState.ERROR,
                error=error,
                ended_at=time.time(),
            )
        finally:
            try:
                if self.launcher is not None:
                    self.launcher.unsubscribe(self._topic)
                self.store.update_experiment(self.experiment_id, owner=None)
                self.store.close()
            finally:  # after the lease is released: whoever join()s may resume the experiment at once
                self._finished.set()

    def _setup(self) -> None:
        row = self.store.get_experiment(self.experiment_id)
        cfg = self.config = self.config or ExperimentConfig.from_stored(row.config)
        blob, _ = self.store.get_entrypoint(self.experiment_id)
        self._blob, self._digest = blob, hashlib.sha256(blob).hexdigest()[:20]
        self._seed = row.seed
        self._experiment_key = experiment_key(row.id, row.created_at)
        storage_url = cfg.checkpoint_storage.resolve_url(str(default_home() / "checkpoints"))
        self._storage = CheckpointStorage(storage_url, cfg.checkpoint_storage.storage_options())
        self._storage.remove_incomplete()
        if self.launcher is None:
            assert isinstance(self._launcher_arg, Client)
            self.launcher = DaskLauncher(
                self._launcher_arg, cfg.resources.slots_per_trial, cfg.resources.slot_type
            )
        self.searcher: SearchMethod = make_searcher(cfg.searcher, cfg.hparam_space, self._seed)
        # a warm start (searcher.source_trial_id / source_checkpoint_uuid): resolved once, checked here
        self._warm_start = warm_start_checkpoint(cfg, self.store, self._storage)
        self._device: DeviceKind = "cuda" if getattr(self.launcher, "resource", None) == "GPU" else "cpu"
        self.rules = Lifecycle(
            experiment_id=self.experiment_id,
            nonce=self._nonce,
            max_restarts=cfg.max_restarts,
            max_time=cfg.searcher.max_time,
            metric=cfg.searcher.metric,
            smaller_is_better=cfg.searcher.smaller_is_better,
            time_metric=cfg.searcher.time_metric,
            stop_grace=self.stop_grace,
            state=row.state,
            max_no_progress=cfg.max_no_progress,
            no_progress_policy=cfg.no_progress_policy,
        )
        self.launcher.subscribe(self._topic, lambda msg: self._inbox.put(("event", msg)))
        self.store.update_experiment(
            self.experiment_id,
            dashboard_link=self.launcher.dashboard_link(),
            cluster_address=self.launcher.address(),
        )
        saved = self.store.get_searcher_state(self.experiment_id)
        now = self._clock()
        self._update_window(now)
        with self.store.transaction():
            if saved is None:
                self._apply_ops(self.searcher.initial_operations(), now)
            else:
                self.searcher.load_state_dict(saved)
                self._resume_trials(now)
            self._save_searcher(now, force=True)
            self._writes.flush()
            self.launcher.flush()

    def _update_window(self, now: float) -> None:
        """Size the submission window from the launcher's capacity (at most every WINDOW_RECOUNT s)."""
        assert self.rules is not None and self.launcher is not None
        if now - self._last_window < WINDOW_RECOUNT:
            return
        self._last_window = now
        slots = self.launcher.capacity()
        self.rules.window = None if slots is None else max(MIN_WINDOW, WINDOW_PER_SLOT * slots)

    def _resume_trials(self, now: float) -> None:
        """Pick up non-terminal trials of an experiment whose previous controller is gone.

        First the searcher hears of the exits its saved state missed: exits are saved lazily, so a
        controller that died within ``searcher_save_interval`` of some trials ending left them
        terminal in the store but live in the searcher's state. Each terminal trial's exit is
        replayed in the order they ended, with the reason :func:`~det_jupyter.engine.finalize.finalize`
        gives (none for a CANCELED trial, nor in a killed search); a searcher ignores a repeated exit
        (its contract), so trials it already knew ended change nothing.
        """
        assert self.rules is not None
        rows = self.store.list_trials(self.experiment_id)
        if self.rules.state != ExperimentState.STOPPING_CANCELED:  # a killed search hears of no exits
            ended = sorted((t for t in rows if t.state.is_terminal), key=lambda t: (t.ended_at or 0.0, t.id))
            for row in ended:
                reason = _EXIT_REASONS.get(row.state)
                if reason is not None:
                    self._apply_ops(self.searcher.on_trial_exited(row.request_id, reason), now)
        for row in rows:
            if row.state.is_terminal:
                continue
            trial = r.TrialRecord(
                row.id, row.request_id, row.hparams, row.restarts, row.run_id, best=row.best_validation
            )
            trial.searcher_time = row.searcher_time
            ckpts = self.store.checkpoints(trial_id=row.id)
            if ckpts:
                trial.latest_checkpoint, trial.latest_checkpoint_steps = ckpts[-1].uuid, ckpts[-1].steps
            self._apply(self.rules.resume_trial(trial), now)
        if self.rules.state == ExperimentState.STOPPING_CANCELED:
            self._apply(self.rules.kill(now), now)

    # --- the loop ------------------------------------------------------------------------------

    def _step(self) -> None:
        assert self.rules is not None and self.launcher is not None
        items: list[tuple[str, Any]] = []
        try:
            items.append(self._inbox.get(timeout=self.poll_interval))
            while True:
                items.append(self._inbox.get_nowait())
        except queue.Empty:
            pass
        now = self._clock()
        self._update_window(now)
        with self.store.transaction():
            for kind, payload in items:
                if kind == "event":
                    self._on_message(payload, now)
                else:
                    self._on_task_done(payload, now)
            self._apply(self.rules.tick(now), now)
            if not items or now - self._last_requests >= self.poll_interval:  # idle, or under load
                self._last_requests = now
                for request in self.store.pending_requests(self.experiment_id):
                    self._apply(self.rules.on_request(request.action, now), now)
                    self.store.mark_request_handled(request.id)
            if self._gc_dirty and now - self._last_gc >= 1.0:
                self._collect_garbage(now)
            self._save_searcher(now)
            if now - self._last_heartbeat >= self.heartbeat_interval:
                self._last_heartbeat = now
                self.store.update_experiment(self.experiment_id, heartbeat=time.time())
            final = self.rules.finish()
            if final is not None:
                if self._gc_dirty:
                    self._collect_garbage(now)
                self._save_searcher(now, force=True)
                self.store.update_experiment(
                    self.experiment_id,
                    state=final.state,
                    ended_at=time.time(),
                    error=final.error,
                    progress=1.0,
                )
                self._done = True  # the loop ends once this transaction has committed
            self._writes.flush()
            self.launcher.flush()  # this pass's runs, as one graph (rows written above, committed next)

    def _on_message(self, msg: Any, now: float) -> None:
        assert self.rules is not None
        try:
            event = decode(msg)
        except MalformedEvent as exc:
            log.warning("experiment %s ignored an event: %s", self.experiment_id, exc)
            self.rules.count_event(exc.trial_id, exc.run_id)  # it still counts towards events_sent
            return
        self._apply(self.rules.on_event(event, now), now)

    def _on_task_done(self, key: str, now: float) -> None:
        assert self.rules is not None and self.launcher is not None
        if key in self.rules.runs:
            end, error = self.launcher.task_end(key)
            self._apply(self.rules.on_task_end(key, end, error, now), now)

    # --- applying decisions --------------------------------------------------------------------

    def _apply(self, decisions: list[r.Decision], now: float) -> None:
        """Carry out decisions in order (depth first: a searcher's answer is applied before the rest)."""
        assert self.rules is not None and self.launcher is not None
        launcher, writes = self.launcher, self._writes
        for d in decisions:
            if isinstance(d, r.Submit):
                self._submit(d.run)
            elif isinstance(d, r.UpdateTrial):
                writes.update_trial(d.trial_id, **d.values)
            elif isinstance(d, r.RecordMetrics):
                writes.metrics(d.trial_id, d.run_id, d.body)
            elif isinstance(d, r.RecordLogs):
                writes.logs(d.trial_id, d.run_id, d.body.lines)
            elif isinstance(d, r.AppendLog):
                writes.logs(d.trial_id, d.run_id, [LogLine(time.time(), d.text)])
            elif isinstance(d, r.RecordCheckpoint):
                self._record_checkpoint(d)
            elif isinstance(d, r.ScoreCheckpoint):
                self.store.set_checkpoint_metric(d.uuid, d.metric)
                self._gc_dirty = True
            elif isinstance(d, r.ReportValidation):
                if not self.searcher.validations_change_only_progress:
                    self._searcher_must_save = True
                self._apply_ops(self.searcher.on_validation_completed(d.request_id, d.metric, d.time), now)
                self._answer_decision(d, now)
            elif isinstance(d, r.MarkStarted):
                state = {"state": TrialState.ACTIVE} if d.active else {}
                writes.update_trial(d.trial_id, worker=d.worker, started_at=time.time(), **state)
            elif isinstance(d, r.EndTrial):
                writes.update_trial(d.trial.id, state=d.state, ended_at=time.time())
                self._gc_dirty = True
                if d.exit_reason is not None:
                    self._apply_ops(self.searcher.on_trial_exited(d.trial.request_id, d.exit_reason), now)
            elif isinstance(d, r.RequestStop):
                if d.cancel_if_queued and launcher.is_queued(d.run.key):
                    launcher.cancel(d.run.key)
                else:
                    launcher.request_stop(d.run.key, d.run.worker)
            elif isinstance(d, r.ReleaseRun):
                launcher.release(d.run.key)
            elif isinstance(d, r.FetchResult):
                self._apply(self.rules.on_result(d.run, self._fetch_result(d.run)), now)
            elif isinstance(d, r.CutOff):
                self._cut_off(d)
            elif isinstance(d, r.SetExperimentState):
                self.store.update_experiment(self.experiment_id, state=d.state)

    def _answer_decision(self, d: r.ReportValidation, now: float) -> None:
        """Tell a trial waiting at a decision point (an ASHA rung) that the searcher let it continue.

        A stop needs no answer here: the searcher's Stop already became a stop request. Only a
        validation that reaches a decision point not answered before gets one (a few per trial).
        """
        assert self.rules is not None and self.launcher is not None
        points = self.searcher.decision_points(d.request_id)
        if not points:
            return
        run = self.rules.live_run_of_request(d.request_id)
        answered = self._answered.get(d.request_id, -math.inf)
        reached = [p for p in points if answered < p <= d.time]
        if run is None or run.stop_reason is not None or not reached:
            return
        self._answered[d.request_id] = max(reached)
        self.launcher.allow(run.key, run.worker, d.time)

    def _apply_ops(self, ops: list[Operation], now: float) -> None:
        assert self.rules is not None
        self._searcher_dirty = True
        if ops:  # trials created (rows in this transaction) or stopped, or the end: not rebuildable
            self._searcher_must_save = True
        for op in ops:
            if isinstance(op, Create):
                trial_id = self.store.create_trial(self.experiment_id, op.request_id, op.hparams)
                self._apply(self.rules.add_trial(r.TrialRecord(trial_id, op.request_id, op.hparams)), now)
            elif isinstance(op, Stop):
                self._apply(self.rules.searcher_stop(op.request_id, now), now)
            elif isinstance(op, Shutdown):
                self.rules.searcher_shutdown(op.failure)

    def _submit(self, run: r.RunRecord) -> None:
        assert self.config is not None and self.launcher is not None
        cfg, trial = self.config, run.trial
        recovered: list[r.Decision] = []
        if run.run_id > 0:  # a rerun: settle what the earlier runs left before it starts
            self._writes.flush()  # the earlier runs' reports of this pass first: reconcile reads them
            recovered = self._reconcile(run)
            self.store.supersede_metrics(
                trial.id, run_id=run.run_id, after_steps=trial.latest_checkpoint_steps
            )
            self._storage.remove_incomplete()  # staging halves of writers that died
        spec = trial_spec(
            cfg,
            run,
            experiment_id=self.experiment_id,
            seed=self._seed,
            storage=self._storage,
            topic=self._topic,
            experiment_key=self._experiment_key,
            device=self._device,
            warm_start=self._warm_start,
            decision_points=self.searcher.decision_points(trial.request_id),
        )
        self._writes.update_trial(
            trial.id, state=TrialState.QUEUED, run_id=run.run_id, restarts=trial.restarts
        )
        self.launcher.submit(spec, self._blob, self._digest, lambda key: self._inbox.put(("done", key)))
        if recovered:  # after the submit: the searcher may answer with a stop of this very run
            self._apply(recovered, self._clock())

    def _reconcile(self, run: r.RunRecord) -> list[r.Decision]:
        """Register the checkpoint (and the reports) an earlier run committed but never announced."""
        assert self.rules is not None
        found = recover_checkpoint(self.store, self._storage, self.experiment_id, run, self._experiment_key)
        if found is None:
            return []
        log.warning(
            "experiment %s trial %s: registering checkpoint %s (steps %s) found in storage",
            self.experiment_id,
            run.trial.id,
            found.body.uuid,
            found.body.steps,
        )
        return self.rules.on_recovered_checkpoint(run.trial.id, found.run_id, found.body, found.reports)

    def _record_checkpoint(self, d: r.RecordCheckpoint) -> None:
        self.store.add_checkpoint(
            CheckpointRow.committed(
                uuid=d.body.uuid,
                trial_id=d.trial_id,
                experiment_id=self.experiment_id,
                run_id=d.run_id,
                steps=d.body.steps,
                metadata=dict(d.body.metadata),
                resources=dict(d.body.resources),
                metric=d.metric,
            )
        )
        self._gc_dirty = True

    def _fetch_result(self, run: r.RunRecord) -> r.Outcome:
        """No ``exited`` event came: ask the worker for the task's summary."""
        assert self.launcher is not None
        try:
            return r.Outcome.of(decode_summary(self.launcher.result(run.key)))
        except Exception as exc:  # a malformed summary or a task that failed after all
            return r.Outcome(r.OutcomeStatus.LOST, f"{type(exc).__name__}: {exc} (fetching the run's result)")

    def _cut_off(self, d: r.CutOff) -> None:
        """A stopping trial ignored ``should_stop()`` past the grace period: restart its worker."""
        assert self.launcher is not None
        run = d.run
        log.warning("trial %s ignored should_stop() for %.0fs; restarting its worker", run.trial.id, d.grace)
        text = d.why or (
            f"[det_jupyter] did not stop within {d.grace:g}s of ctx.should_stop() turning true; its worker "
            "was restarted (check should_stop() once per batch)"
        )
        self._writes.logs(run.trial.id, run.run_id, [LogLine(time.time(), text)])
        self.launcher.cancel(run.key)
        if run.worker:
            self.launcher.restart_worker(run.worker)

    def _save_searcher(self, now: float, *, force: bool = False) -> None:
        """Save the searcher state if it changed: now if it must be (or ``force``), else lazily."""
        if not self._searcher_dirty:
            return
        interval = max(self.searcher_save_interval, SAVE_COST_FACTOR * self._searcher_save_cost)
        due = now - self._last_searcher_save >= interval
        if not (force or self._searcher_must_save or due):
            return
        started = time.perf_counter()
        self.store.save_searcher_state(
            self.experiment_id, self.searcher.state_dict(), self.searcher.progress()
        )
        self._searcher_save_cost = time.perf_counter() - started
        self._searcher_dirty = self._searcher_must_save = False
        self._last_searcher_save = now

    # --- checkpoint GC -------------------------------------------------------------------------

    def _collect_garbage(self, now: float) -> None:
        assert self.config is not None and self.rules is not None
        self._gc_dirty = False
        self._last_gc = now
        collect_garbage(self.store, self._storage, self.experiment_id, self.config, self.rules.trials.keys())
