"""A Core API command with its own launcher on a multi-slot trial, as Determined runs one."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

import det_jupyter

pytestmark = pytest.mark.slow

TRAIN = textwrap.dedent(
    """
    import det_jupyter as det

    info = det.get_cluster_info()
    distributed = det.core.DistributedContext.from_torch_distributed()
    with det.core.init(distributed=distributed) as core_context:
        dist = core_context.distributed
        ranks = dist.allgather(dist.rank)
        print(f"rank {dist.rank} of {dist.size} saw {ranks}; container {info.container_rank} of "
              f"{len(info.container_addrs)}, slots {info.slot_ids}")
        for step in range(1, 4):
            if core_context.preempt.should_preempt():
                break
            if dist.rank == 0:
                core_context.train.report_training_metrics(steps_completed=step, metrics={"loss": 1.0 / step})
        if dist.rank == 0:
            core_context.train.report_validation_metrics(
                steps_completed=3, metrics={"val_loss": float(sum(ranks))}
            )
    """
)


def test_torch_distributed_launcher_runs_two_ranks_that_allgather(
    client: Any, det_home: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "train.py").write_text(TRAIN)
    config = {
        "name": "launcher",
        "entrypoint": "python3 -m det_jupyter.launch.torch_distributed -- python3 train.py",
        "searcher": {"name": "single", "metric": "val_loss", "time_metric": "batches", "max_time": 3},
        "resources": {"slots_per_trial": 2},
        "max_restarts": 0,
    }
    exp = det_jupyter.create_experiment(config, context=model_dir, cluster=client)
    assert exp.wait(timeout=240).value == "COMPLETED", [(t.error, t.logs()) for t in exp.trials()]
    (trial,) = exp.trials()
    lines = trial.logs()
    assert "[rank=0] rank 0 of 2 saw [0, 1]; container 0 of 2, slots [0]" in lines, lines
    assert "[rank=1] rank 1 of 2 saw [0, 1]; container 1 of 2, slots [0]" in lines, lines
    assert trial.best_validation == 1.0  # the chief reported sum(ranks)
    assert trial.metrics("training")["steps"].tolist() == [1, 2, 3]
