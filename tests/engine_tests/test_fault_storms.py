"""Pause / activate storms (issue 9): many control requests fired at random points at a running
experiment, in master mode (the default) and in-process.

The trial is the worst case for a pause: it checks ``ctx.should_stop()`` before each step and returns
*without* checkpointing, so a pause loses the steps since its last checkpoint (every ``PERIOD`` steps).
After the storm (seeded RNG; some requests back-to-back, the last an activate) the experiment must end
COMPLETED with every trial, no (trial, kind, steps) twice, ``restarts`` 0 (a pause is not a fault) and
each rerun re-running at most one checkpoint period. The helpers here (lost work, duplicates, the
master home) are shared with ``tests/master_tests/test_disturbed_run.py``.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import det_jupyter
from det_jupyter import ExperimentState, TrialState
from tests.conftest import wait_for
from tests.master_tests.helpers import master_mode_home

PERIOD = 3
"""Checkpoint period of :func:`periodic_trial` (steps)."""


def periodic_trial(ctx: Any) -> None:
    """``max_time`` steps of ``step_seconds``; validation + checkpoint every ``period`` steps and at the
    end; on ``should_stop()`` it returns at once without a checkpoint (what a pause may cost).

    Prints ``run R starts at step S``; writes its worker's pid to ``run_dir/<trial>-<run>`` (the
    disturbed run kills that process) and the last step it finished to ``run_dir/<trial>-<run>.step``
    (what the trial really computed, including reports still buffered when it died).
    """
    import os as _os
    import time as _time
    from pathlib import Path as _Path

    start = 0
    with ctx.checkpoint.restore() as path:
        if path is not None:
            start = int((path / "step").read_text())
    print(f"run {ctx.run_id} starts at step {start}")
    mine = _Path(ctx.hparams["run_dir"]) / f"{ctx.trial_id}-{ctx.run_id}"
    mine.write_text(str(_os.getpid()))
    period, last = ctx.hparams["period"], ctx.searcher.max_time
    for step in range(start + 1, last + 1):
        if ctx.should_stop():
            return
        _time.sleep(ctx.hparams["step_seconds"])
        ctx.report_training_metrics(step, {"loss": 1.0 / step})
        mine.with_suffix(".step").write_text(str(step))
        if step % period == 0 or step == last:
            ctx.report_validation_metrics(step, {"val_loss": abs(ctx.hparams["x"]) + 1.0 / step})
            with ctx.checkpoint.save(step) as out:
                (out / "step").write_text(str(step))


def search_config(
    name: str, *, max_trials: int, max_time: int, step_seconds: float, seed: int, run_dir: Path
) -> dict[str, Any]:
    """A random search over ``x`` with a fixed ``experiment_seed``, for :func:`periodic_trial`."""
    return {
        "name": name,
        "searcher": {"name": "random", "metric": "val_loss", "max_trials": max_trials, "max_time": max_time,
                     "time_metric": "batches", "max_concurrent_trials": 2},
        "hyperparameters": {"x": {"type": "double", "minval": -1, "maxval": 1}, "period": PERIOD,
                            "step_seconds": step_seconds, "run_dir": str(run_dir)},
        "reproducibility": {"experiment_seed": seed},
        "max_restarts": 2,
    }  # fmt: skip


def duplicated_points(exp: Any) -> list[tuple[Any, ...]]:
    """(trial, kind, steps) that ``exp.metrics()`` shows more than once."""
    frame = exp.metrics()
    keys = list(zip(frame["trial_id"], frame["kind"], frame["steps"], strict=True))
    return [k for k, n in Counter(keys).items() if n > 1]


def run_starts(trial: Any) -> dict[int, int]:
    """run_id → the step it restored from (its ``run R starts at step S`` line)."""
    starts: dict[int, int] = {}
    for line in trial.logs():
        words = line.split()
        if len(words) == 6 and words[0] == "run" and words[2:5] == ["starts", "at", "step"]:
            starts[int(words[1])] = int(words[5])
    return starts


def lost_work(exp: Any, run_dir: Path) -> dict[int, list[int]]:
    """Per trial, the steps each later run re-ran: the last step earlier runs finished (their
    ``.step`` files) minus the step the run restored from. One entry per run after the first.
    """
    out: dict[int, list[int]] = {}
    for trial in exp.trials():
        starts = run_starts(trial)
        done = {run: int((run_dir / f"{trial.id}-{run}.step").read_text() or 0) for run in starts
                if (run_dir / f"{trial.id}-{run}.step").exists()}  # fmt: skip
        first = min(starts, default=0)
        lost = []
        for run_id, start in sorted(starts.items()):
            if run_id == first:
                continue
            before = max((steps for run, steps in done.items() if run < run_id), default=0)
            assert before >= start, (trial.id, run_id, before, start)  # never resumed past what ran
            lost.append(before - start)
        out[trial.id] = lost
    return out


def assert_sound(exp: Any, run_dir: Path, *, max_time: int, trials: int) -> dict[int, list[int]]:
    """COMPLETED with every trial COMPLETED at its final steps, no point twice, every rerun losing at
    most one checkpoint period; returns the lost work per trial."""
    assert exp.state == ExperimentState.COMPLETED, exp.error
    found = exp.trials()
    assert len(found) == trials and {t.state for t in found} == {TrialState.COMPLETED}
    assert duplicated_points(exp) == []
    expected_validations = sorted({*range(PERIOD, max_time + 1, PERIOD), max_time})
    for t in found:
        assert list(t.metrics("training")["steps"]) == list(range(1, max_time + 1)), t.id
        assert list(t.metrics("validation")["steps"]) == expected_validations, t.id
    lost = lost_work(exp, run_dir)
    assert all(steps <= PERIOD for runs in lost.values() for steps in runs), lost
    return lost


@pytest.fixture
def master_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh home in master mode (2 CPU workers); every master started there (also one a test starts
    after killing the first) is stopped, or killed with its workers, at the end even on failure."""
    with master_mode_home(tmp_path / "h", monkeypatch) as path:
        yield path


# --- the storm --------------------------------------------------------------------------------------

REQUESTS = 20
MAX_TIME = 45


def storm(exp: Any, seed: int) -> dict[str, Any]:
    """Fire ``REQUESTS`` alternating pause / activate requests at random points (seeded): about a third
    back-to-back, the rest 0.05–0.5 s apart. Returns what was fired and when."""
    rng = random.Random(seed)
    fired = {"requests": 0, "back_to_back": 0, "while_running": 0}
    for i in range(REQUESTS):
        if i and rng.random() < 0.35:
            fired["back_to_back"] += 1
        elif i:
            time.sleep(rng.uniform(0.05, 0.5))  # the random injection point (not a wait for a condition)
        fired["while_running"] += not exp.state.is_terminal
        if i % 2 == 0:
            exp.pause()
        else:
            exp.activate()
        fired["requests"] += 1
    return fired


def run_storm(exp: Any, run_dir: Path, seed: int, mode: str) -> None:
    started = time.monotonic()

    def both_training() -> bool:
        trials = exp.trials()
        return len(trials) == 2 and all(len(t.metrics("training")) >= 2 for t in trials)

    wait_for(both_training, 60, what="both trials training")
    fired = storm(exp, seed)
    assert exp.wait(timeout=120) == ExperimentState.COMPLETED, exp.error
    lost = assert_sound(exp, run_dir, max_time=MAX_TIME, trials=2)
    trials = exp.trials()
    assert [t.restarts for t in trials] == [0, 0]  # a pause is not a fault
    pauses = (REQUESTS + 1) // 2
    reruns = {t.id: len(lost[t.id]) for t in trials}
    assert all(n <= pauses for n in reruns.values()), reruns  # at most one rerun per pause
    assert all(sum(steps) <= PERIOD * pauses for steps in lost.values())
    assert fired["while_running"] == REQUESTS  # the storm hit a running experiment, every request
    figures = {
        "mode": mode,
        "seed": seed,
        **fired,
        "reruns_per_trial": list(reruns.values()),
        "steps_rerun_per_trial": [sum(v) for v in lost.values()],
        "max_steps_rerun_by_one_run": max((s for v in lost.values() for s in v), default=0),
        "checkpoint_period": PERIOD,
        "seconds": round(time.monotonic() - started, 1),
    }
    print("pause/activate storm:", json.dumps(figures))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_a_pause_activate_storm_on_the_master_loses_nothing(
    master_home: Path, tmp_path: Path, seed: int
) -> None:
    cfg = search_config(
        "storm", max_trials=2, max_time=MAX_TIME, step_seconds=0.08, seed=seed, run_dir=tmp_path
    )
    exp = det_jupyter.create_experiment(cfg, periodic_trial)
    run_storm(exp, tmp_path, seed, "master")


@pytest.mark.slow
def test_a_pause_activate_storm_in_process_loses_nothing(
    det_home: Path, tmp_path: Path, dask_client: Any
) -> None:
    cfg = search_config("storm", max_trials=2, max_time=MAX_TIME, step_seconds=0.08, seed=3, run_dir=tmp_path)
    exp = det_jupyter.create_experiment(cfg, periodic_trial, cluster=dask_client)
    run_storm(exp, tmp_path, 3, "inprocess")
