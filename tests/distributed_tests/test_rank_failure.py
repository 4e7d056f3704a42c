"""One rank failing fails the whole run; the trial restarts from its checkpoint (max_restarts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import det_jupyter

pytestmark = pytest.mark.slow


def fails_once_on_rank_1(ctx: Any) -> None:
    dist = ctx.distributed
    with ctx.checkpoint.restore() as path:
        start = int((path / "step.txt").read_text()) if path is not None else 0
    print(f"rank {dist.rank} starts at step {start} (run {ctx.run_id})")
    for step in range(start + 1, 7):
        if ctx.should_stop():
            return
        total = sum(dist.allgather(step))  # every rank takes part in every step
        if dist.is_chief:
            ctx.report_training_metrics(step, {"loss": 1.0 / total})
        if step == 3 and dist.is_chief:
            with ctx.checkpoint.save(step) as out:
                (out / "step.txt").write_text(str(step))
        dist.allgather(None)  # the checkpoint is committed before any rank moves on
        if step == 4 and dist.rank == 1 and ctx.run_id == 0:
            raise RuntimeError("rank 1 fails once, at step 4")
    if dist.is_chief:
        ctx.report_validation_metrics(6, {"val_loss": 0.5})


def test_a_failing_rank_restarts_the_trial_from_its_checkpoint(client: Any, det_home: Path) -> None:
    config = {
        "name": "rank-fails",
        "searcher": {"name": "single", "metric": "val_loss", "time_metric": "batches", "max_time": 6},
        "resources": {"slots_per_trial": 2},
        "max_restarts": 1,
    }
    exp = det_jupyter.create_experiment(config, fails_once_on_rank_1, cluster=client)
    assert exp.wait(timeout=240).value == "COMPLETED", [t.error for t in exp.trials()]
    (trial,) = exp.trials()
    assert trial.state.value == "COMPLETED" and trial.restarts == 1
    lines = trial.logs()
    text = "\n".join(lines)
    assert "[rank=1] RuntimeError: rank 1 fails once, at step 4" in text, text
    assert (
        "rank 0 starts at step 3 (run 1)" in lines and "[rank=1] rank 1 starts at step 3 (run 1)" in lines
    ), text
    # the rerun's reports replace what the failed run reported past its checkpoint
    assert trial.metrics("training")["steps"].tolist() == [1, 2, 3, 4, 5, 6]
