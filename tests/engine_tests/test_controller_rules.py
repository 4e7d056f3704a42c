"""The real Controller loop over a real SQLite store, with a fake launcher: every lifecycle rule, no Dask.

The :class:`FakeLauncher` records submits / stops / cancels and lets a test play the worker: send the
run's events (encoded as a worker encodes them) and end its task. Time is a fake clock the test moves;
tests wait on conditions, never on sleeps.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from det_jupyter.engine.controller import Controller
from det_jupyter.engine.launcher import Launcher
from det_jupyter.engine.runs import TaskEnd
from det_jupyter.states import ControlAction, ExperimentState, TrialState
from det_jupyter.store import Store
from det_jupyter.worker.context import TrialSpec
from det_jupyter.worker.events import (
    CheckpointSaved,
    EventBody,
    Exited,
    Log,
    LogLine,
    MetricKind,
    MetricRecord,
    Metrics,
    RunEvent,
    RunStatus,
    Started,
    encode,
)


def wait_for(condition: Callable[[], object], timeout: float = 10.0, what: str = "") -> object:
    """Poll ``condition`` (real time, short intervals) until truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or condition}")
        time.sleep(0.002)  # a poll interval, not a race: the condition decides


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeLauncher(Launcher):
    """Records what the controller asks; the test plays the workers."""

    def __init__(self) -> None:
        self.specs: dict[str, TrialSpec] = {}
        self.queued: set[str] = set()
        self.stops: list[str] = []
        self.allowed: list[tuple[str, float]] = []
        self.cancels: list[str] = []
        self.restarted: list[str] = []
        self.released: list[str] = []
        self.results: dict[str, object] = {}
        self._ends: dict[str, tuple[TaskEnd, str | None]] = {}
        self._on_done: dict[str, Callable[[str], None]] = {}
        self._seq: dict[str, int] = {}
        self._handler: Callable[[Any], None] | None = None
        self._lock = threading.Lock()

    # --- the Launcher interface ---

    def subscribe(self, topic: str, handler: Callable[[Any], None]) -> None:
        self._handler = handler

    def unsubscribe(self, topic: str) -> None:
        self._handler = None

    def submit(self, spec: TrialSpec, blob: bytes, digest: str, on_done: Callable[[str], None]) -> None:
        with self._lock:
            self.specs[spec.run_key] = spec
            self.queued.add(spec.run_key)
            self._on_done[spec.run_key] = on_done

    def task_end(self, key: str) -> tuple[TaskEnd, str | None]:
        return self._ends[key]

    def result(self, key: str) -> object:
        return self.results[key]

    def request_stop(self, key: str, worker: str | None) -> None:
        self.stops.append(key)

    def allow(self, key: str, worker: str | None, time: float) -> None:
        self.allowed.append((key, time))

    def is_queued(self, key: str) -> bool:
        return key in self.queued

    def cancel(self, key: str) -> None:
        self.cancels.append(key)
        if key not in self._ends:
            self._end(key, TaskEnd.CANCELLED)

    def restart_worker(self, worker: str) -> None:
        self.restarted.append(worker)

    def release(self, key: str) -> None:
        self.released.append(key)

    def dashboard_link(self) -> str | None:
        return None

    def address(self) -> str | None:
        return "fake://scheduler"

    # --- playing the worker ---

    def runs(self) -> list[TrialSpec]:
        with self._lock:
            return list(self.specs.values())

    def run_of(self, trial_id: int, run_id: int | None = None) -> TrialSpec | None:
        found = [s for s in self.runs() if s.trial_id == trial_id and (run_id is None or s.run_id == run_id)]
        return found[-1] if found else None

    def send(self, spec: TrialSpec, body: EventBody, *, deliver: bool = True) -> None:
        seq = self._seq.get(spec.run_key, 0) + 1
        self._seq[spec.run_key] = seq
        if deliver:
            assert self._handler is not None
            self._handler(encode(RunEvent(spec.trial_id, spec.run_id, seq, body)))

    def start(self, spec: TrialSpec) -> None:
        self.queued.discard(spec.run_key)
        self.send(spec, Started(worker="tcp://w1", restored_from=spec.latest_checkpoint))

    def validate(self, spec: TrialSpec, steps: int, value: Any) -> None:
        record = MetricRecord(MetricKind.VALIDATION, steps, {"val_loss": value}, 1.0)
        self.send(spec, Metrics((MetricRecord(MetricKind.TRAINING, steps, {"loss": 1.0}, 1.0), record)))

    def checkpoint(self, spec: TrialSpec, steps: int, uuid: str) -> None:
        self.send(spec, CheckpointSaved(uuid, steps, {"step": steps}, {"f": 1}))

    def exit(
        self,
        spec: TrialSpec,
        status: RunStatus = RunStatus.COMPLETED,
        tb: str | None = None,
        *,
        extra: int = 0,
    ) -> None:
        """User code returned or raised: the ``exited`` event (announcing ``extra`` undelivered events)."""
        exited = Exited(status, tb, events_sent=self._seq.get(spec.run_key, 0) + extra)
        self.results[spec.run_key] = exited.summary()
        self.send(spec, exited)

    def finish_task(self, spec: TrialSpec) -> None:
        self._end(spec.run_key, TaskEnd.FINISHED)

    def fail_task(self, spec: TrialSpec, error: str) -> None:
        self._end(spec.run_key, TaskEnd.FAILED, error)

    def complete(self, spec: TrialSpec, steps: int = 10, value: float = 0.5) -> None:
        """A whole successful run: start, validate at ``steps``, exit, task finished."""
        self.start(spec)
        self.validate(spec, steps, value)
        self.exit(spec)
        self.finish_task(spec)

    def _end(self, key: str, end: TaskEnd, error: str | None = None) -> None:
        self.queued.discard(key)
        self._ends[key] = (end, error)
        self._on_done[key](key)


def _config(
    *, max_trials: int = 1, concurrent: int = 1, max_restarts: int = 1, **extra: Any
) -> dict[str, Any]:
    return {
        "name": "rules",
        "searcher": {
            "name": "random",
            "metric": "val_loss",
            "max_trials": max_trials,
            "max_time": 10,
            "time_metric": "batches",
            "max_concurrent_trials": concurrent,
        },
        "hyperparameters": {"x": {"type": "double", "minval": -1, "maxval": 1}},
        "max_restarts": max_restarts,
        **extra,
    }


class Harness:
    """One experiment in a fresh store, run by a real Controller over a FakeLauncher."""

    def __init__(
        self,
        home: Path,
        config: dict[str, Any],
        *,
        stop_grace: float = 30.0,
        launcher: FakeLauncher | None = None,
    ) -> None:
        self.store = Store(home / "det_jupyter.db")
        self.exp_id = self.store.create_experiment(name="rules", config=config, entrypoint=b"blob", seed=7)
        self.clock = FakeClock()
        self.stop_grace = stop_grace
        self.launcher = launcher or FakeLauncher()
        self.controller = self.start(self.launcher)

    def start(self, launcher: FakeLauncher) -> Controller:
        controller = Controller(
            Store(self.store.path),
            self.exp_id,
            launcher,
            poll_interval=0.005,
            stop_grace=self.stop_grace,
            clock=self.clock,
        )
        controller.start()
        return controller

    def trial(self, trial_id: int) -> Any:
        return self.store.get_trial(trial_id)

    def _trial_in(self, trial_id: int, state: TrialState) -> bool:
        # a run is submitted inside the loop's transaction: its trial row may not be committed yet
        return any(t.id == trial_id and t.state == state for t in self.store.list_trials(self.exp_id))

    def state(self) -> ExperimentState:
        return self.store.get_experiment(self.exp_id).state

    def request(self, action: ControlAction) -> None:
        self.store.add_request(self.exp_id, action)
        wait_for(lambda: not self.store.pending_requests(self.exp_id), timeout=10, what=f"{action} handled")

    def run(self, trial_id: int, run_id: int) -> TrialSpec:
        found = wait_for(lambda: self.launcher.run_of(trial_id, run_id), timeout=10, what=f"run {run_id}")
        assert isinstance(found, TrialSpec)
        return found

    def first_run(self) -> TrialSpec:
        found = wait_for(lambda: self.launcher.runs(), timeout=10, what="a submitted run")
        assert isinstance(found, list)
        return found[0]  # type: ignore[no-any-return]

    def trial_state(self, trial_id: int, state: TrialState) -> None:
        wait_for(lambda: self._trial_in(trial_id, state), timeout=10, what=f"trial {trial_id} {state}")

    def ends(self, state: ExperimentState) -> None:
        assert self.controller.join(timeout=10), f"still {self.state()}"
        assert self.state() == state

    def settle(self) -> None:
        """Wait until the loop has processed everything sent so far.

        Sends a control request that changes nothing (ACTIVATE while ACTIVE, PAUSE otherwise) and
        waits until it is handled: the loop reads requests after the inbox items of its pass.
        """
        before = self.state()
        self.request(ControlAction.ACTIVATE if before == ExperimentState.ACTIVE else ControlAction.PAUSE)


@pytest.fixture
def harness_factory(det_home: Path) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(config: dict[str, Any] | None = None, **kwargs: Any) -> Harness:
        h = Harness(det_home, config or _config(), **kwargs)
        made.append(h)
        return h

    yield make
    for h in made:  # a test that failed midway: end its controller
        if not h.controller.finished:
            h.store.add_request(h.exp_id, ControlAction.KILL)
            for spec in h.launcher.runs():
                if spec.run_key not in h.launcher._ends:
                    h.launcher.cancel(spec.run_key)
            h.controller.join(timeout=10)


# --- completion and final states ------------------------------------------------------------------


def test_a_run_that_completes_ends_the_trial_and_the_experiment(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory()
    spec = h.first_run()
    assert (spec.run_id, spec.latest_checkpoint) == (0, None)
    h.launcher.start(spec)
    h.trial_state(spec.trial_id, TrialState.ACTIVE)
    h.launcher.validate(spec, 10, 0.25)
    h.launcher.checkpoint(spec, 10, "ck-10")
    h.launcher.exit(spec)
    h.launcher.finish_task(spec)
    h.ends(ExperimentState.COMPLETED)
    trial = h.trial(spec.trial_id)
    assert (trial.state, trial.best_validation, trial.steps_completed, trial.worker) == (
        TrialState.COMPLETED,
        0.25,
        10,
        "tcp://w1",
    )
    assert [m.steps for m in h.store.metrics(trial_id=spec.trial_id, kind="validation")] == [10]
    assert [c.metric for c in h.store.checkpoints(trial_id=spec.trial_id)] == [0.25]
    assert h.launcher.released == [spec.run_key]
    assert h.store.get_experiment(h.exp_id).progress == 1.0


def test_every_trial_failing_ends_the_experiment_in_error(harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory(_config(max_trials=2, concurrent=2, max_restarts=0))
    for trial_id in (1, 2):
        spec = h.run(trial_id, 0)
        h.launcher.start(spec)
        h.launcher.exit(spec, RunStatus.ERROR, "ValueError: boom")
        h.launcher.finish_task(spec)
    h.ends(ExperimentState.ERROR)
    assert "every trial failed" in (h.store.get_experiment(h.exp_id).error or "")
    assert {h.trial(t).state for t in (1, 2)} == {TrialState.ERROR}


# --- failures and restarts ------------------------------------------------------------------------


def test_an_error_restarts_from_the_latest_checkpoint_then_errors_and_the_search_goes_on(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory(_config(max_trials=2, max_restarts=1))
    first = h.run(1, 0)
    h.launcher.start(first)
    h.launcher.checkpoint(first, 5, "ck-5")
    h.launcher.exit(first, RunStatus.ERROR, "Traceback: ValueError: once")
    h.launcher.finish_task(first)

    second = h.run(1, 1)  # restart 1 of max_restarts=1, from the newest checkpoint
    assert (second.latest_checkpoint, second.latest_checkpoint_steps) == ("ck-5", 5)
    wait_for(lambda: h.trial(1).restarts == 1, what="the pass that resubmitted it committed")
    h.trial_state(1, TrialState.QUEUED)
    assert h.trial(1).restarts == 1 and "once" in (h.trial(1).error or "")
    h.launcher.start(second)
    h.launcher.exit(second, RunStatus.ERROR, "Traceback: ValueError: twice")
    h.launcher.finish_task(second)

    h.trial_state(1, TrialState.ERROR)  # restarts (2) > max_restarts (1)
    assert h.trial(1).restarts == 2 and "twice" in (h.trial(1).error or "")
    assert any("run 1 failed" in line.line for line in h.store.logs(1))
    h.launcher.complete(h.run(2, 0))  # the searcher heard ERRORED and created the next trial
    h.ends(ExperimentState.COMPLETED)


def test_a_lost_worker_follows_the_restart_rule(harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory(_config(max_restarts=1))
    first = h.run(1, 0)
    h.launcher.start(first)
    h.launcher.fail_task(first, "KilledWorker: worker died")  # no exited event: the process is gone
    second = h.run(1, 1)
    assert "KilledWorker" in (h.trial(1).error or "") and "died or was lost" in (h.trial(1).error or "")
    h.launcher.start(second)
    h.launcher.fail_task(second, "KilledWorker: again")
    h.trial_state(1, TrialState.ERROR)
    h.ends(ExperimentState.ERROR)


# --- waiting for events ---------------------------------------------------------------------------


def test_a_run_is_finalized_only_after_all_its_events_arrived(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory()
    spec = h.first_run()
    h.launcher.start(spec)
    h.launcher.send(spec, Log((LogLine(1.0, "late line"),)), deliver=False)  # still in the scheduler
    h.launcher.exit(spec)
    h.launcher.finish_task(spec)
    h.settle()
    assert h.trial(spec.trial_id).state == TrialState.ACTIVE  # waits for the announced event
    h.launcher._handler(  # type: ignore[misc]
        encode(RunEvent(spec.trial_id, spec.run_id, 2, Log((LogLine(1.0, "late line"),))))
    )
    h.ends(ExperimentState.COMPLETED)
    assert [line.line for line in h.store.logs(spec.trial_id)] == ["late line"]


def test_missing_events_are_given_up_on_after_10s(harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory()
    spec = h.first_run()
    h.launcher.start(spec)
    h.launcher.exit(spec, extra=1)  # announces an event that never comes
    h.launcher.finish_task(spec)
    h.settle()  # the deadline is set when the loop sees the task end, at the clock's time then
    h.clock.advance(9.0)
    h.settle()
    assert h.trial(spec.trial_id).state == TrialState.ACTIVE
    h.clock.advance(1.5)
    h.ends(ExperimentState.COMPLETED)


def test_a_missing_exited_event_falls_back_to_the_task_result_after_5s(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory()
    spec = h.first_run()
    h.launcher.start(spec)
    h.launcher.results[spec.run_key] = Exited(RunStatus.COMPLETED, events_sent=1).summary()
    h.launcher.finish_task(spec)  # the exited event is never delivered
    h.settle()
    h.clock.advance(4.0)
    h.settle()
    assert h.trial(spec.trial_id).state == TrialState.ACTIVE
    h.clock.advance(1.5)
    h.ends(ExperimentState.COMPLETED)


def test_malformed_events_are_logged_and_ignored(
    harness_factory: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    h = harness_factory()
    spec = h.first_run()
    with caplog.at_level(logging.WARNING, logger="det_jupyter.engine.controller"):
        assert h.launcher._handler is not None
        h.launcher._handler({"type": "teleport", "trial_id": spec.trial_id, "run_id": 0, "seq": 1})
        h.launcher._handler(["not", "a", "dict"])
        h.settle()
    assert "unknown event type 'teleport'" in caplog.text
    h.launcher._seq[spec.run_key] = 1  # the unknown event counted towards events_sent
    h.launcher.complete(spec)
    h.ends(ExperimentState.COMPLETED)


# --- pause / activate / kill ----------------------------------------------------------------------


def test_pause_stops_runs_and_activate_resubmits_with_restarts_untouched(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory()
    spec = h.first_run()
    h.launcher.start(spec)
    h.launcher.checkpoint(spec, 5, "ck-5")
    h.request(ControlAction.PAUSE)
    assert h.launcher.stops == [spec.run_key] and h.state() == ExperimentState.PAUSED
    h.launcher.exit(spec)  # checkpointed and returned
    h.launcher.finish_task(spec)
    h.trial_state(spec.trial_id, TrialState.PAUSED)

    h.request(ControlAction.ACTIVATE)
    again = h.run(spec.trial_id, 1)
    assert again.latest_checkpoint == "ck-5" and h.trial(spec.trial_id).restarts == 0
    h.launcher.complete(again)
    h.ends(ExperimentState.COMPLETED)


def test_pause_while_winding_down_then_activate_resubmits(harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory()
    spec = h.first_run()
    h.launcher.start(spec)
    h.request(ControlAction.PAUSE)
    h.request(ControlAction.ACTIVATE)  # the run is still stopping
    assert h.launcher.run_of(spec.trial_id, 1) is None
    h.launcher.exit(spec)
    h.launcher.finish_task(spec)
    again = h.run(spec.trial_id, 1)
    assert h.trial(spec.trial_id).restarts == 0
    h.launcher.complete(again)
    h.ends(ExperimentState.COMPLETED)


def test_kill_cancels_queued_runs_and_stops_running_ones(harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory(_config(max_trials=2, concurrent=2))
    running, queued = h.run(1, 0), h.run(2, 0)
    h.launcher.start(running)
    h.request(ControlAction.KILL)
    assert h.launcher.cancels == [queued.run_key] and h.launcher.stops == [running.run_key]
    h.trial_state(2, TrialState.CANCELED)
    h.launcher.exit(running)
    h.launcher.finish_task(running)
    h.ends(ExperimentState.CANCELED)
    assert h.trial(1).state == TrialState.CANCELED


def test_a_stronger_stop_overrides_a_weaker_one_but_not_the_reverse(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory()
    spec = h.first_run()
    h.launcher.start(spec)
    h.request(ControlAction.PAUSE)
    h.request(ControlAction.KILL)  # kill > pause: asked again
    assert h.launcher.stops == [spec.run_key, spec.run_key]
    h.launcher.exit(spec)
    h.launcher.finish_task(spec)
    h.ends(ExperimentState.CANCELED)
    assert h.trial(spec.trial_id).state == TrialState.CANCELED  # not PAUSED


def test_a_run_ignoring_should_stop_is_cut_off_after_stop_grace(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory(stop_grace=30.0)
    spec = h.first_run()
    h.launcher.start(spec)
    h.request(ControlAction.KILL)
    h.clock.advance(29.0)
    h.settle()
    assert h.launcher.restarted == []
    h.clock.advance(2.0)
    wait_for(lambda: h.launcher.restarted == ["tcp://w1"], timeout=10, what="worker restart")
    assert spec.run_key in h.launcher.cancels
    h.ends(ExperimentState.CANCELED)
    assert any("did not stop within 30s" in line.line for line in h.store.logs(spec.trial_id))


# --- resume and GC --------------------------------------------------------------------------------


def test_resume_resubmits_non_terminal_trials_from_their_latest_checkpoint(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory()
    spec = h.first_run()
    h.launcher.start(spec)
    h.launcher.checkpoint(spec, 5, "ck-5")
    h.settle()
    h.controller._done = True  # the controller's thread ends without finalizing (its process "died")
    assert h.controller.join(timeout=10)
    assert h.state() == ExperimentState.ACTIVE

    launcher = FakeLauncher()
    h.controller = h.start(launcher)
    h.launcher = launcher
    again = h.run(spec.trial_id, 1)
    assert (again.latest_checkpoint, again.latest_checkpoint_steps) == ("ck-5", 5)
    h.launcher.complete(again)
    h.ends(ExperimentState.COMPLETED)
    assert len(h.store.list_trials(h.exp_id)) == 1  # the searcher state was reloaded, not restarted


def test_gc_keeps_the_newest_checkpoint_of_a_running_trial(harness_factory: Callable[..., Harness]) -> None:
    policy = {"save_experiment_best": 0, "save_trial_best": 0, "save_trial_latest": 0}
    h = harness_factory(_config(checkpoint_storage=policy))
    spec = h.first_run()
    h.launcher.start(spec)
    h.launcher.checkpoint(spec, 5, "ck-5")
    h.launcher.checkpoint(spec, 10, "ck-10")
    h.clock.advance(2.0)
    wait_for(
        lambda: [c.uuid for c in h.store.checkpoints(trial_id=spec.trial_id)] == ["ck-10"],
        timeout=10,
        what="ck-5 deleted, ck-10 kept",
    )
    h.launcher.exit(spec)
    h.launcher.finish_task(spec)
    h.ends(ExperimentState.COMPLETED)
    assert h.store.checkpoints(trial_id=spec.trial_id) == []  # terminal: the policy keeps none


def test_nan_validation_ranks_worst_and_is_stored_as_none(harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory()
    spec = h.first_run()
    h.launcher.start(spec)
    h.launcher.validate(spec, 5, None)  # NaN left the worker as None (metric-value policy)
    h.launcher.validate(spec, 10, 0.75)
    h.launcher.exit(spec)
    h.launcher.finish_task(spec)
    h.ends(ExperimentState.COMPLETED)
    trial = h.trial(spec.trial_id)
    assert (trial.best_validation, trial.latest_validation) == (0.75, 0.75)
    assert not math.isnan(trial.best_validation or 0.0)


def _ledger(h: Harness) -> dict[str, Any]:
    state = h.store.get_searcher_state(h.exp_id)
    assert state is not None
    return state["ledger"]  # type: ignore[no-any-return]


def test_exits_are_saved_lazily_then_within_the_save_interval(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory(_config(max_trials=3, concurrent=0))
    wait_for(lambda: len(h.launcher.runs()) == 3, what="3 runs")
    spec = h.launcher.run_of(1)
    assert spec is not None
    h.launcher.complete(spec)
    h.trial_state(spec.trial_id, TrialState.COMPLETED)
    h.settle()
    assert _ledger(h)["exited"] == 0  # no Create followed: the save waits (the store can rebuild it)
    h.clock.advance(1.0)
    wait_for(lambda: _ledger(h)["exited"] == 1, what="the lazy save")


def test_a_costly_searcher_save_waits_longer_before_the_next_lazy_one(
    harness_factory: Callable[..., Harness],
) -> None:
    """A search whose state took 1 s to save (as a huge one would) saves lazily at most every
    SAVE_COST_FACTOR s, not every 0.5 s; saves the store cannot rebuild still happen at once."""
    import det_jupyter.engine.controller as controller_module

    h = harness_factory(_config(max_trials=3, concurrent=0))
    wait_for(lambda: len(h.launcher.runs()) == 3, what="3 runs")
    h.settle()  # nothing changed since: no save runs (and measures its cost) until the exit below
    h.controller._searcher_save_cost = 1.0  # what the last save "took" (set, not measured)
    spec = h.launcher.run_of(1)
    assert spec is not None
    h.launcher.complete(spec)
    h.trial_state(spec.trial_id, TrialState.COMPLETED)
    h.clock.advance(1.0)
    h.settle()
    assert _ledger(h)["exited"] == 0  # 1 s after the exit: 1 < 20 x 1 s, the lazy save still waits
    h.clock.advance(controller_module.SAVE_COST_FACTOR * 1.0)
    wait_for(lambda: _ledger(h)["exited"] == 1, what="the lazy save after 20 x its cost")


def test_a_controller_dying_before_the_lazy_save_resumes_with_the_right_trials(
    harness_factory: Callable[..., Harness],
) -> None:
    """Trials ended, then the controller died inside the save interval: the resumed searcher replays
    their exits from the store, so the search ends with the trials it created and no more."""
    h = harness_factory(_config(max_trials=4, concurrent=0, max_restarts=0))
    wait_for(lambda: len(h.launcher.runs()) == 4, what="4 runs")
    one, two, three = (h.run(t, 0) for t in (1, 2, 3))
    h.launcher.complete(one)
    h.launcher.start(two)
    h.launcher.exit(two, RunStatus.ERROR, "Traceback: boom")
    h.launcher.finish_task(two)
    h.launcher.start(three)
    h.launcher.checkpoint(three, 5, "ck-5")
    h.trial_state(1, TrialState.COMPLETED)
    h.trial_state(2, TrialState.ERROR)
    h.settle()
    assert _ledger(h)["live"] == [1, 2, 3, 4]  # the window: ended in the store, live in the searcher
    h.controller._done = True  # its process "died" before the lazy save
    assert h.controller.join(timeout=10)

    launcher = FakeLauncher()
    h.controller = h.start(launcher)
    h.launcher = launcher
    wait_for(lambda: _ledger(h)["live"] == [3, 4], what="the exits replayed and saved")
    assert (_ledger(h)["exited"], _ledger(h)["errored"]) == (2, 1)
    again = h.run(3, 1)
    assert again.latest_checkpoint == "ck-5"
    h.launcher.complete(again)
    h.launcher.complete(h.run(4, 1))
    h.ends(ExperimentState.COMPLETED)
    trials = h.store.list_trials(h.exp_id)
    assert [t.state for t in trials] == [
        TrialState.COMPLETED,
        TrialState.ERROR,
        TrialState.COMPLETED,
        TrialState.COMPLETED,
    ]
    assert _ledger(h)["exited"] == 4 and h.store.get_experiment(h.exp_id).progress == 1.0


def test_stop_saves_what_the_lazy_save_held_back(harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory(_config(max_trials=2, concurrent=0))
    wait_for(lambda: len(h.launcher.runs()) == 2, what="2 runs")
    spec = h.launcher.run_of(1)
    assert spec is not None
    h.launcher.complete(spec)
    h.trial_state(1, TrialState.COMPLETED)
    h.settle()
    h.controller.stop(timeout=10)
    assert h.controller.finished and _ledger(h)["live"] == [2]
    assert h.state() == ExperimentState.ACTIVE


# --- the submission window ------------------------------------------------------------------------


class WindowedLauncher(FakeLauncher):
    """A FakeLauncher that reports ``slots`` and, like the Dask one, holds runs back until flush()."""

    def __init__(self, slots: int) -> None:
        super().__init__()
        self.slots = slots
        self.held: list[tuple[TrialSpec, Callable[[str], None]]] = []
        self.batches: list[int] = []  # runs handed over per flush
        self.most_live = 0

    def capacity(self) -> int | None:
        return self.slots

    def submit(self, spec: TrialSpec, blob: bytes, digest: str, on_done: Callable[[str], None]) -> None:
        self.held.append((spec, on_done))

    def flush(self) -> None:
        if not self.held:
            return
        held, self.held = self.held, []
        for spec, on_done in held:
            super().submit(spec, b"", "", on_done)
        self.batches.append(len(held))
        self.most_live = max(self.most_live, len(self.live()))

    def live(self) -> list[TrialSpec]:
        return [s for s in self.runs() if s.run_key not in self._ends]


def test_a_large_search_keeps_a_bounded_window_of_runs_and_still_runs_every_trial(
    harness_factory: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 trials created at once, 2 slots, window 8 (MIN_WINDOW lowered): never more than 8 runs
    submitted, refills in batches, every trial completes; a controller that dies midway is resumed
    and keeps the same bound."""
    import det_jupyter.engine.controller as controller_module

    monkeypatch.setattr(controller_module, "MIN_WINDOW", 8)
    launcher = WindowedLauncher(slots=2)
    h = harness_factory(_config(max_trials=40, concurrent=0, max_restarts=0), launcher=launcher)

    def play(until_done: int) -> None:
        done = 0
        while done < until_done:
            live = wait_for(launcher.live, what="a submitted run")
            assert isinstance(live, list)
            assert len(live) <= 8
            launcher.complete(live[0])
            h.trial_state(live[0].trial_id, TrialState.COMPLETED)
            done += 1

    play(15)
    assert launcher.most_live == 8 and launcher.batches[0] == 8
    assert max(launcher.batches[1:]) > 1  # refills come in batches, not one run per ended run
    submitted = {s.trial_id for s in launcher.runs()}
    waiting = [t for t in h.store.list_trials(h.exp_id) if t.id not in submitted]
    assert len(waiting) == 40 - len(submitted) > 0 and {t.state for t in waiting} == {TrialState.QUEUED}
    h.controller._done = True  # dies with runs in flight and trials still waiting for the window
    assert h.controller.join(timeout=10)
    launcher = WindowedLauncher(slots=2)
    h.launcher, h.controller = launcher, h.start(launcher)
    play(len([t for t in h.store.list_trials(h.exp_id) if not t.state.is_terminal]))
    h.ends(ExperimentState.COMPLETED)
    trials = h.store.list_trials(h.exp_id)
    assert len(trials) == 40 and {t.state for t in trials} == {TrialState.COMPLETED}
    assert launcher.most_live <= 8
    assert sum(t.restarts for t in trials) == 0  # an interrupted run is not a fault
