"""The controller: runs one experiment (Determined's "master" for it), by default as a kernel thread.

It is the only place where searcher, Dask and store meet. One loop, one thread:

1. wait (at most ``poll_interval``) for items in its inbox: worker events (metrics, checkpoints, log
   lines, "started") from the experiment's Dask topic, and "done" notices from trial futures;
2. in ONE store transaction: record the events, feed validations and exits to the searcher, apply
   its operations (create trials → submit ``run_trial`` tasks with slot resources; stop trials),
   act on control requests (pause / activate / kill) read from the store, apply the checkpoint GC
   policy, save the searcher state and a heartbeat.

So the store always holds a consistent picture, and an experiment whose controller died can be
resumed from it: trials that were running restart from their latest checkpoints.

Failure rules: a trial whose code raises, or whose worker dies, is resubmitted from its latest
checkpoint until it has failed ``max_restarts + 1`` times; then it is ERROR (traceback stored) and
the searcher goes on. Stopping a trial (searcher, pause, kill) sets its stop flag on the worker;
user code sees ``ctx.should_stop()``, checkpoints and returns. Code that ignores the flag is cut
off after ``stop_grace`` seconds (its worker is restarted), losing at most one checkpoint period.

Example:
    >>> exp = det_jupyter.create_experiment(config, train)   # doctest: +SKIP
    >>> exp.wait()                                            # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
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
from dataclasses import dataclass, field
from typing import Any

from distributed import Client, Future

from det_jupyter.checkpoints import CheckpointRecord, CheckpointStorage, checkpoints_to_delete
from det_jupyter.config.experiment import ExperimentConfig, load_config
from det_jupyter.engine.cluster import dashboard_link, slot_resource
from det_jupyter.searcher import Create, ExitReason, Operation, SearchMethod, Shutdown, Stop, make_searcher
from det_jupyter.states import ControlAction, ExperimentState, TrialState
from det_jupyter.store.sqlite import Store, default_home
from det_jupyter.worker.context import TrialSpec
from det_jupyter.worker.runtime import request_stop, run_trial

__all__ = ["Controller"]

log = logging.getLogger(__name__)

_PRECEDENCE = {None: 0, "pause": 1, "searcher": 2, "kill": 3}


@dataclass
class _Trial:
    """The controller's working copy of a non-terminal trial."""

    id: int
    request_id: int
    hparams: dict[str, Any]
    restarts: int = 0
    run_id: int = -1
    latest_checkpoint: str | None = None
    latest_checkpoint_steps: int = 0
    best: float | None = None
    searcher_time: float = 0.0
    validations: dict[int, float] = field(default_factory=dict)
    unscored_checkpoints: dict[int, str] = field(default_factory=dict)  # steps -> uuid, awaiting a validation


@dataclass
class _Run:
    """One submitted attempt of a trial."""

    trial: _Trial
    run_id: int
    key: str
    future: Future | None = None
    started: bool = False
    worker: str | None = None
    events_seen: int = 0
    result: dict[str, Any] | None = None
    wait_events_until: float | None = None
    stop_reason: str | None = None
    stop_requested_at: float | None = None


class Controller:
    """Drives one experiment to its end. Start it with :meth:`start`; everything else reads the store.

    Args:
        store: the store holding the experiment.
        experiment_id: the experiment to run (ACTIVE or PAUSED; resumed if it ran before).
        client: the Dask client to submit trials with.
        poll_interval: longest wait between two looks at the store's control requests.
        stop_grace: seconds a stopping trial gets to checkpoint and return before it is cut off.
    """

    def __init__(
        self,
        store: Store,
        experiment_id: int,
        client: Client,
        *,
        poll_interval: float = 0.1,
        stop_grace: float = 30.0,
        heartbeat_interval: float = 2.0,
    ) -> None:
        self.store = store
        self.experiment_id = experiment_id
        self.client = client
        self.poll_interval = poll_interval
        self.stop_grace = stop_grace
        self.heartbeat_interval = heartbeat_interval
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuidlib.uuid4().hex[:8]}"
        self._nonce = self.owner.rsplit(":", 1)[-1]
        self._topic = f"det-jupyter-exp{experiment_id}-{self._nonce}"
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._trials: dict[int, _Trial] = {}  # non-terminal trials by id
        self._by_request: dict[int, _Trial] = {}
        self._runs: dict[str, _Run] = {}  # live runs by task key
        self._run_of_trial: dict[int, _Run] = {}
        self._state = ExperimentState.ACTIVE
        self._searcher_done = False
        self._search_failed = False
        self._searcher_dirty = False
        self._gc_dirty = False
        # write-behind buffers, flushed once per loop iteration inside its transaction
        self._trial_updates: dict[int, dict[str, Any]] = {}
        self._metric_rows: list[tuple[int, int, str, int, dict[str, Any], float]] = []
        self._log_rows: list[tuple[int, int, float, str]] = []
        self._finished = threading.Event()  # set once the final state is committed
        self._done = False
        self._last_heartbeat = 0.0
        self._last_requests = 0.0
        self._last_gc = 0.0

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

    def _main(self) -> None:
        try:
            self._setup()
            while not self._done:
                self._step()
        except Exception:
            tb = traceback.format_exc()
            log.error("controller of experiment %s failed:\n%s", self.experiment_id, tb)
            for run in list(self._runs.values()):
                if run.future is not None:
                    run.future.cancel()
            self.store.update_experiment(
                self.experiment_id,
                state=ExperimentState.ERROR,
                error=f"controller failed:\n{tb}",
                ended_at=time.time(),
            )
        finally:
            self._finished.set()
            with contextlib.suppress(Exception):  # the client may be closed already; nothing to clean
                self.client.unsubscribe_topic(self._topic)
            self.store.update_experiment(self.experiment_id, owner=None)
            self.store.close()

    def _setup(self) -> None:
        row = self.store.get_experiment(self.experiment_id)
        self.config: ExperimentConfig = load_config(row.config)
        blob, _ = self.store.get_entrypoint(self.experiment_id)
        self._blob, self._digest = blob, hashlib.sha256(blob).hexdigest()[:20]
        self._seed = row.seed
        storage_url = self.config.checkpoint_storage.resolve_url(str(default_home() / "checkpoints"))
        self._storage = CheckpointStorage(storage_url, self.config.checkpoint_storage.storage_options())
        self._storage.remove_incomplete()
        self._resource = slot_resource(
            self.client, self.config.resources.slots_per_trial, self.config.resources.slot_type
        )
        self.searcher: SearchMethod = make_searcher(
            self.config.searcher, self.config.hparam_space, self._seed
        )
        self.client.subscribe_topic(self._topic, lambda event: self._inbox.put(("event", event[1])))
        self._state = row.state
        self.store.update_experiment(
            self.experiment_id,
            dashboard_link=dashboard_link(self.client),
            cluster_address=_address(self.client),
        )
        saved = self.store.get_searcher_state(self.experiment_id)
        with self.store.transaction():
            if saved is None:
                self._apply(self.searcher.initial_operations())
                self._searcher_dirty = True
            else:
                self.searcher.load_state_dict(saved)
                self._resume_trials()
            self._save_searcher()
            self._flush_writes()

    def _resume_trials(self) -> None:
        """Pick up non-terminal trials of an experiment whose previous controller is gone."""
        for row in self.store.list_trials(self.experiment_id):
            if row.state.is_terminal:
                continue
            trial = _Trial(
                row.id, row.request_id, row.hparams, row.restarts, row.run_id, best=row.best_validation
            )
            trial.searcher_time = row.searcher_time
            ckpts = self.store.checkpoints(trial_id=row.id)
            if ckpts:
                trial.latest_checkpoint, trial.latest_checkpoint_steps = ckpts[-1].uuid, ckpts[-1].steps
            self._add_trial(trial)
            if self._state == ExperimentState.ACTIVE:
                self._submit(trial)
            else:
                self._update_trial(trial.id, state=TrialState.PAUSED)
        if self._state == ExperimentState.STOPPING_CANCELED:
            self._kill()

    # --- the loop ------------------------------------------------------------------------------

    def _step(self) -> None:
        items: list[tuple[str, Any]] = []
        try:
            items.append(self._inbox.get(timeout=self.poll_interval))
            while True:
                items.append(self._inbox.get_nowait())
        except queue.Empty:
            pass
        now = time.monotonic()
        with self.store.transaction():
            for kind, payload in items:
                if kind == "event":
                    self._on_event(payload)
                else:
                    self._on_done(payload)
            for run in list(self._runs.values()):
                if run.wait_events_until is not None and now >= run.wait_events_until:
                    if run.result is None and run.future is not None:  # no "exited" event: ask the worker
                        run.result = dict(run.future.result())
                    self._finalize(run)
                elif run.stop_requested_at is not None and now - run.stop_requested_at > self.stop_grace:
                    self._cut_off(run)
            if now - self._last_requests >= self.poll_interval:
                self._last_requests = now
                for request in self.store.pending_requests(self.experiment_id):
                    self._on_request(request.action)
                    self.store.mark_request_handled(request.id)
            if self._gc_dirty and now - self._last_gc >= 1.0:
                self._collect_garbage()
            self._save_searcher()
            if now - self._last_heartbeat >= self.heartbeat_interval:
                self._last_heartbeat = now
                self.store.update_experiment(self.experiment_id, heartbeat=time.time())
            self._maybe_finish()
            self._flush_writes()

    def _update_trial(self, trial_id: int, **values: Any) -> None:
        self._trial_updates.setdefault(trial_id, {}).update(values)

    def _flush_writes(self) -> None:
        if self._metric_rows:
            self.store.add_metrics(self._metric_rows)
            self._metric_rows = []
        if self._log_rows:
            self.store.add_logs(self._log_rows)
            self._log_rows = []
        for trial_id, values in self._trial_updates.items():
            self.store.update_trial(trial_id, **values)
        self._trial_updates.clear()

    def _save_searcher(self) -> None:
        if self._searcher_dirty:
            self.store.save_searcher_state(
                self.experiment_id, self.searcher.state_dict(), self.searcher.progress()
            )
            self._searcher_dirty = False

    # --- searcher operations -------------------------------------------------------------------

    def _apply(self, ops: list[Operation]) -> None:
        self._searcher_dirty = True
        for op in ops:
            if isinstance(op, Create):
                trial_id = self.store.create_trial(self.experiment_id, op.request_id, op.hparams)
                trial = _Trial(trial_id, op.request_id, op.hparams)
                self._add_trial(trial)
                if self._state == ExperimentState.ACTIVE:
                    self._submit(trial)
                else:
                    self._update_trial(trial_id, state=TrialState.PAUSED)
            elif isinstance(op, Stop):
                trial = self._by_request[op.request_id]
                run = self._run_of_trial.get(trial.id)
                if run is not None:
                    self._stop(run, "searcher")
                else:  # paused: it simply never runs again
                    self._end_trial(trial, TrialState.STOPPED, ExitReason.STOPPED)
            elif isinstance(op, Shutdown):
                self._searcher_done, self._search_failed = True, op.failure

    def _add_trial(self, trial: _Trial) -> None:
        self._trials[trial.id] = trial
        self._by_request[trial.request_id] = trial

    def _submit(self, trial: _Trial) -> None:
        trial.run_id += 1
        key = f"det-trial-e{self.experiment_id}-t{trial.id}-r{trial.run_id}-{self._nonce}"
        cfg = self.config
        spec = TrialSpec(
            experiment_id=self.experiment_id,
            trial_id=trial.id,
            run_id=trial.run_id,
            hparams=trial.hparams,
            metric=cfg.searcher.metric,
            smaller_is_better=cfg.searcher.smaller_is_better,
            time_metric=cfg.searcher.time_metric or "batches",
            max_time=int(cfg.searcher.max_time or 1),
            storage_url=self._storage.url,
            storage_options=self._storage.storage_options,
            latest_checkpoint=trial.latest_checkpoint,
            latest_checkpoint_steps=trial.latest_checkpoint_steps,
            seed=(self._seed + 1_000_003 * trial.request_id) % 2**31,
            data=dict(cfg.data),
            env_vars=dict(cfg.environment.env_vars),
            min_validation_period=_period(cfg.min_validation_period),
            min_checkpoint_period=_period(cfg.min_checkpoint_period),
            records_per_epoch=cfg.records_per_epoch,
            topic=self._topic,
            run_key=key,
        )
        run = _Run(trial, trial.run_id, key)
        self._runs[key] = run
        self._run_of_trial[trial.id] = run
        resources = {self._resource: cfg.resources.slots_per_trial} if self._resource else None
        self._update_trial(trial.id, state=TrialState.QUEUED, run_id=trial.run_id, restarts=trial.restarts)
        run.future = self.client.submit(
            run_trial, spec, self._blob, self._digest, key=key, resources=resources, pure=False
        )
        run.future.add_done_callback(lambda _f, k=key: self._inbox.put(("done", k)))

    # --- worker events -------------------------------------------------------------------------

    def _on_event(self, event: dict[str, Any]) -> None:
        trial = self._trials.get(event.get("trial_id", -1))
        run = self._run_of_trial.get(trial.id) if trial else None
        if trial is None or run is None or run.run_id != event.get("run_id"):
            return  # a late event of a run already finalized
        run.events_seen += 1
        kind = event["type"]
        if kind == "metrics":
            self._on_metrics(run, event["records"])
        elif kind == "checkpoint":
            trial.latest_checkpoint, trial.latest_checkpoint_steps = event["uuid"], int(event["steps"])
            if int(event["steps"]) not in trial.validations:
                trial.unscored_checkpoints[int(event["steps"])] = event["uuid"]
            self.store.add_checkpoint(
                uuid=event["uuid"],
                trial_id=trial.id,
                experiment_id=self.experiment_id,
                run_id=run.run_id,
                steps=int(event["steps"]),
                metadata=event.get("metadata") or {},
                resources=event.get("resources") or {},
                metric=trial.validations.get(int(event["steps"])),
            )
            self._gc_dirty = True
        elif kind == "log":
            self._log_rows.extend((trial.id, run.run_id, float(ts), str(line)) for ts, line in event["lines"])
        elif kind == "exited":
            run.events_seen -= 1  # the summary does not count itself
            run.result = {k: event.get(k) for k in ("status", "traceback", "events_sent", "stopped")}
        elif kind == "started":
            run.started, run.worker = True, event.get("worker")
            if event.get("restored_from"):
                trial.latest_checkpoint = event["restored_from"]
            state = TrialState.ACTIVE if run.stop_reason is None else None
            values: dict[str, Any] = {"worker": run.worker, "started_at": time.time()}
            if state is not None:
                values["state"] = state
            self._update_trial(trial.id, **values)
        if run.result is not None and run.future is not None and run.future.done():
            self._finalize_when_complete(run)

    def _on_metrics(self, run: _Run, records: list[list[Any]]) -> None:
        trial = run.trial
        searcher = self.config.searcher
        rows = []
        steps_done = 0
        for kind, steps, metrics, ts in records:
            rows.append((trial.id, run.run_id, kind, int(steps), metrics, float(ts)))
            steps_done = max(steps_done, int(steps))
            if kind != "validation":
                continue
            value = metrics.get(searcher.metric)
            metric = float(value) if isinstance(value, (int, float)) else math.nan
            if math.isnan(metric):  # NaN / missing ranks worst
                metric = math.inf if searcher.smaller_is_better else -math.inf
            elapsed = metrics.get(searcher.time_metric) if searcher.time_metric else None
            trial.searcher_time = float(elapsed) if isinstance(elapsed, (int, float)) else float(steps)
            trial.validations[int(steps)] = metric
            better = trial.best is None or (
                metric < trial.best if searcher.smaller_is_better else metric > trial.best
            )
            if better:
                trial.best = metric
            self._update_trial(
                trial.id,
                best_validation=_finite(trial.best),
                latest_validation=_finite(metric),
                searcher_time=trial.searcher_time,
            )
            unscored = trial.unscored_checkpoints.pop(int(steps), None)
            if unscored is not None:
                self.store.set_checkpoint_metric(unscored, metric)
                self._gc_dirty = True
            if run.stop_reason != "kill" and self._state != ExperimentState.STOPPING_CANCELED:
                self._apply(
                    self.searcher.on_validation_completed(trial.request_id, metric, trial.searcher_time)
                )
        self._metric_rows.extend(rows)
        self._update_trial(trial.id, steps_completed=steps_done)

    # --- run completion ------------------------------------------------------------------------

    def _on_done(self, key: str) -> None:
        run = self._runs.get(key)
        if run is None or run.future is None:
            return
        future = run.future
        if future.status == "finished":
            if (
                run.result is None
            ):  # its "exited" event is still on the way; fetch the result if it never comes
                run.wait_events_until = time.monotonic() + 5.0
                return
        elif future.status == "cancelled":
            run.result = {"status": "cancelled", "events_sent": 0}
        else:
            exc = future.exception()
            run.result = {
                "status": "lost",
                "traceback": f"{type(exc).__name__}: {exc} (the worker running the trial died or was lost)",
                "events_sent": 0,
            }
        self._finalize_when_complete(run)

    def _finalize_when_complete(self, run: _Run) -> None:
        """Finalize a finished run once all its events arrived (or after a deadline)."""
        assert run.result is not None
        if run.events_seen >= int(run.result.get("events_sent") or 0):
            self._finalize(run)
        elif run.wait_events_until is None:  # the last events are still on their way through the scheduler
            run.wait_events_until = time.monotonic() + 10.0

    def _finalize(self, run: _Run) -> None:
        assert run.result is not None
        self._runs.pop(run.key, None)
        if self._run_of_trial.get(run.trial.id) is run:
            del self._run_of_trial[run.trial.id]
        trial, result, reason = run.trial, run.result, run.stop_reason
        status = result["status"]
        reached_end = trial.searcher_time >= float(self.config.searcher.max_time or math.inf)
        if reason == "kill":
            self._end_trial(trial, TrialState.CANCELED, None)
        elif status == "completed" and (reason is None or reached_end):
            self._end_trial(trial, TrialState.COMPLETED, ExitReason.COMPLETED)
        elif reason == "searcher":
            self._end_trial(trial, TrialState.STOPPED, ExitReason.STOPPED)
        elif reason == "pause" and status != "error":
            self._update_trial(trial.id, state=TrialState.PAUSED)
            if self._state == ExperimentState.ACTIVE:  # activated again while it was winding down
                self._submit(trial)
        else:
            self._restart_or_fail(
                trial, result.get("traceback") or "the trial's task was cancelled outside det_jupyter"
            )

    def _restart_or_fail(self, trial: _Trial, error: str) -> None:
        trial.restarts += 1
        self._log_rows.extend(
            [(trial.id, trial.run_id, time.time(), f"[det_jupyter] run {trial.run_id} failed:")]
        )
        if trial.restarts <= self.config.max_restarts and self._state == ExperimentState.ACTIVE:
            self._update_trial(trial.id, error=error, restarts=trial.restarts)
            self._submit(trial)
        elif trial.restarts <= self.config.max_restarts:  # paused meanwhile
            self._update_trial(trial.id, error=error, restarts=trial.restarts, state=TrialState.PAUSED)
        else:
            self._update_trial(trial.id, error=error, restarts=trial.restarts)
            self._end_trial(trial, TrialState.ERROR, ExitReason.ERRORED)

    def _end_trial(self, trial: _Trial, state: TrialState, reason: ExitReason | None) -> None:
        self._update_trial(trial.id, state=state, ended_at=time.time())
        self._trials.pop(trial.id, None)
        self._gc_dirty = True
        if reason is not None and self._state != ExperimentState.STOPPING_CANCELED:
            self._apply(self.searcher.on_trial_exited(trial.request_id, reason))

    # --- stopping ------------------------------------------------------------------------------

    def _stop(self, run: _Run, reason: str) -> None:
        if _PRECEDENCE[reason] <= _PRECEDENCE[run.stop_reason]:
            return
        run.stop_reason = reason
        run.stop_requested_at = time.monotonic()
        if not run.started and run.future is not None and self._still_queued(run.key):
            run.future.cancel()
            return
        workers = [run.worker] if run.worker else None
        key = run.key
        try:
            self.client.run(request_stop, key, workers=workers, on_error="ignore")
        except OSError as exc:  # worker gone: the future will fail and be handled
            log.warning("could not ask trial %s to stop: %s", run.trial.id, exc)

    def _still_queued(self, key: str) -> bool:
        def task_state(dask_scheduler: Any, key: str) -> str | None:
            ts = dask_scheduler.tasks.get(key)
            return None if ts is None else str(ts.state)

        state = self.client.run_on_scheduler(task_state, key=key)
        return state in ("released", "waiting", "queued", "no-worker")

    def _cut_off(self, run: _Run) -> None:
        """A stopping trial ignored ``should_stop()`` past the grace period: restart its worker."""
        log.warning(
            "trial %s ignored should_stop() for %.0fs; restarting its worker", run.trial.id, self.stop_grace
        )
        self._log_rows.extend(
            [
                (
                    run.trial.id,
                    run.run_id,
                    time.time(),
                    f"[det_jupyter] did not stop within {self.stop_grace:g}s of "
                    "ctx.should_stop() turning true; its worker was restarted (check should_stop() once per batch)",
                )
            ]
        )
        run.stop_requested_at = None
        if run.future is not None:
            run.future.cancel()
        if run.worker:
            try:
                self.client.restart_workers([run.worker], raise_for_error=False)
            except Exception as exc:  # an external cluster may not allow it; the task was cancelled anyway
                log.warning("could not restart worker %s: %s", run.worker, exc)

    # --- control requests ----------------------------------------------------------------------

    def _on_request(self, action: ControlAction) -> None:
        if self._state.is_terminal:
            return
        if action == ControlAction.PAUSE and self._state == ExperimentState.ACTIVE:
            self._set_state(ExperimentState.PAUSED)
            for run in list(self._runs.values()):
                self._stop(run, "pause")
        elif action == ControlAction.ACTIVATE and self._state == ExperimentState.PAUSED:
            self._set_state(ExperimentState.ACTIVE)
            for trial in list(self._trials.values()):
                if trial.id not in self._run_of_trial:
                    self._submit(trial)
        elif action == ControlAction.KILL:
            self._kill()

    def _kill(self) -> None:
        self._set_state(ExperimentState.STOPPING_CANCELED)
        for trial in list(self._trials.values()):
            run = self._run_of_trial.get(trial.id)
            if run is None:
                self._end_trial(trial, TrialState.CANCELED, None)
            else:
                self._stop(run, "kill")

    def _set_state(self, state: ExperimentState) -> None:
        self._state = state
        self.store.update_experiment(self.experiment_id, state=state)

    def _maybe_finish(self) -> None:
        if self._runs:
            return
        if self._state == ExperimentState.STOPPING_CANCELED:
            final = ExperimentState.CANCELED
        elif self._searcher_done and not self._trials:
            final = ExperimentState.ERROR if self._search_failed else ExperimentState.COMPLETED
        else:
            return
        if self._gc_dirty:
            self._collect_garbage()
        error = (
            "every trial failed; see the trials' logs and errors" if final == ExperimentState.ERROR else None
        )
        self.store.update_experiment(
            self.experiment_id, state=final, ended_at=time.time(), error=error, progress=1.0
        )
        self._state = final
        self._done = True  # the loop ends once this transaction has committed

    # --- checkpoint GC -------------------------------------------------------------------------

    def _collect_garbage(self) -> None:
        self._gc_dirty = False
        self._last_gc = time.monotonic()
        policy = self.config.checkpoint_storage
        rows = self.store.checkpoints(experiment_id=self.experiment_id)
        doomed = checkpoints_to_delete(
            [CheckpointRecord(r.uuid, r.trial_id, r.steps, r.metric) for r in rows],
            save_experiment_best=policy.save_experiment_best,
            save_trial_best=policy.save_trial_best,
            save_trial_latest=policy.save_trial_latest,
            smaller_is_better=self.config.searcher.smaller_is_better,
            active_trials=self._trials.keys(),
        )
        for uuid in doomed:
            self._storage.delete(uuid)
        if doomed:
            self.store.mark_checkpoints_deleted(sorted(doomed))


def _period(length: Any) -> tuple[str, int] | None:
    return None if length is None else (str(length.unit), int(length.value))


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _address(client: Client) -> str | None:
    scheduler = getattr(client, "scheduler", None)
    return str(scheduler.address) if scheduler is not None else None
