"""The same trials as an undisturbed run (issue 9): a random search with a fixed ``experiment_seed``
runs once undisturbed and once disturbed on the master: a trial's worker process SIGKILLed, then the
master itself SIGKILLed and the next one started with ``ensure_master()`` (what any submit, attach,
the CLI or the server does). The disturbed run must have the same trials (request id → hparams), every
trial at its final steps, no (trial, kind, steps) twice, each rerun losing at most one checkpoint
period, and ``restarts`` spent only for the trial fault (the killed worker: 1 for that trial; the
master's death: 0). Kill points are drawn from a seeded RNG; the test waits on conditions only.

It also measures time to recover (printed, never asserted): master SIGKILL → next master serving →
every interrupted trial ACTIVE again; worker SIGKILL → the trial's rerun ACTIVE (``started_at`` of the
new run, written by the controller when the run's ``started`` event arrives).
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

import det_jupyter
from det_jupyter import ExperimentState, TrialState
from det_jupyter.master import ensure_master, running_master
from det_jupyter.master.files import pid_alive
from tests.conftest import wait_for
from tests.engine_tests.test_fault_storms import (  # noqa: F401 (master_home is a fixture)
    PERIOD,
    assert_sound,
    master_home,
    periodic_trial,
    search_config,
)

pytestmark = pytest.mark.slow

MAX_TIME = 18
STEP_SECONDS = 0.1


def trial_past(exp: Any, request_id: int, step: int) -> Any:
    """The trial row of ``request_id`` once the store shows a training report at ``step`` or later."""
    for row in exp.store.list_trials(exp.id):
        if row.request_id == request_id:
            steps = exp.store.metrics(trial_id=row.id, kind="training")
            return row if any(m.steps >= step for m in steps) else None
    return None


def by_request(exp: Any) -> dict[int, dict[str, Any]]:
    """request id → hyperparameters."""
    return {row.request_id: row.hparams for row in exp.store.list_trials(exp.id)}


def back_active(exp: Any, trial_id: int, after_run: int) -> float | None:
    """``started_at`` of the trial's run after ``after_run`` once that run is ACTIVE (or already done)."""
    row = exp.store.get_trial(trial_id)
    if row.run_id > after_run and row.state in (TrialState.ACTIVE, TrialState.COMPLETED):
        return row.started_at
    return None


@pytest.mark.parametrize("seed", [11, 12])
def test_a_disturbed_run_has_the_same_trials_as_an_undisturbed_one(
    master_home: Path,  # noqa: F811 (the imported fixture)
    tmp_path: Path,
    seed: int,
) -> None:
    cfg = search_config(
        "same-trials",
        max_trials=3,
        max_time=MAX_TIME,
        step_seconds=STEP_SECONDS,
        seed=seed,
        run_dir=tmp_path,
    )

    calm = det_jupyter.create_experiment(cfg, periodic_trial)
    assert calm.wait(timeout=120) == ExperimentState.COMPLETED, calm.error
    assert_sound(calm, tmp_path, max_time=MAX_TIME, trials=3)
    undisturbed = by_request(calm)

    rng = random.Random(seed)
    worker_kill_at = rng.randint(PERIOD + 1, 3 * PERIOD - 1)  # after a checkpoint, mid-period or not
    master_kill_at = rng.randint(PERIOD + 1, 3 * PERIOD - 1)
    figures: dict[str, Any] = {
        "seed": seed,
        "worker_kill_at_step": worker_kill_at,
        "master_kill_at_step": master_kill_at,
    }
    exp = det_jupyter.create_experiment(cfg, periodic_trial)

    # 1. SIGKILL the worker process running request 1, once it has trained past worker_kill_at
    target = wait_for(lambda: trial_past(exp, 1, worker_kill_at), 60, what=f"request 1 past {worker_kill_at}")
    row = exp.store.get_trial(target.id)
    pid = int((tmp_path / f"{target.id}-{row.run_id}").read_text())
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)
    started = wait_for(lambda: back_active(exp, target.id, row.run_id), 60, what="rerun ACTIVE")
    figures["worker_kill_to_rerun_active_s"] = round(float(started) - killed_at, 3)  # type: ignore[arg-type]

    # 2. SIGKILL the master once request 3 has trained past master_kill_at (a trial runs for sure)
    wait_for(lambda: trial_past(exp, 3, master_kill_at), 60, what=f"request 3 past {master_kill_at}")
    old = running_master()
    assert old is not None
    interrupted = {t.id: t.run_id for t in exp.store.list_trials(exp.id) if not t.state.is_terminal}
    killed_at = time.time()
    os.kill(old.pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(old.pid), 10, what="master dead")
    assert not exp.state.is_terminal
    figures["orphan_workers_alive"] = sum(pid_alive(w["pid"], w["create_time"]) for w in old.workers)
    new = ensure_master()
    serving = time.time()
    assert new.pid != old.pid
    assert not any(pid_alive(w["pid"], w["create_time"]) for w in old.workers)  # the orphans are gone
    starts = {
        trial_id: wait_for(
            lambda t=trial_id, r=run: back_active(exp, t, r), 60, what=f"trial {trial_id} ACTIVE"
        )
        for trial_id, run in interrupted.items()
    }
    figures["master_kill_to_next_master_serving_s"] = round(serving - killed_at, 3)
    figures["master_kill_to_trials_active_s"] = [round(float(s) - killed_at, 3) for s in starts.values()]  # type: ignore[arg-type]
    figures["trials_interrupted_by_master_kill"] = len(interrupted)

    assert exp.wait(timeout=180) == ExperimentState.COMPLETED, exp.error
    lost = assert_sound(exp, tmp_path, max_time=MAX_TIME, trials=3)
    trials = exp.trials()
    assert by_request(exp) == undisturbed  # the same trials, the same hparams
    assert {t.id: t.restarts for t in trials} == {t.id: int(t.id == target.id) for t in trials}
    figures["steps_rerun_per_fault"] = [s for runs in lost.values() for s in runs]
    figures["checkpoint_period"] = PERIOD
    print("disturbed run:", json.dumps(figures))
