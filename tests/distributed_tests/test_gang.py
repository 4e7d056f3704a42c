"""Multi-slot trials on a real multi-process cluster: gang scheduling, rendezvous, refusal with numbers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import det_jupyter
from det_jupyter.errors import ClusterError

pytestmark = pytest.mark.slow


def allgather_ranks(ctx: Any) -> None:
    dist = ctx.distributed
    ranks = dist.allgather(dist.rank)
    print(
        f"rank {dist.rank}/{dist.size} saw {ranks} RANK={os.environ['RANK']} WORLD_SIZE={os.environ['WORLD_SIZE']}"
    )
    info = det_jupyter.get_cluster_info()
    assert info is not None and info.container_rank == dist.rank and len(info.container_addrs) == dist.size
    for step in range(1, 6):
        if ctx.should_stop():  # the chief's answer on every rank
            break
        total = sum(dist.allgather(step))
        if dist.is_chief:
            ctx.report_training_metrics(step, {"loss": 1.0 / total})
    if dist.is_chief:
        ctx.report_validation_metrics(5, {"val_loss": float(ctx.hparams["i"])})


def _config(slots: int, trials: int = 2) -> dict[str, Any]:
    return {
        "name": f"gang-{slots}",
        "searcher": {
            "name": "grid",
            "metric": "val_loss",
            "max_concurrent_trials": trials,
            "time_metric": "batches",
            "max_time": 5,
        },
        "hyperparameters": {"i": {"type": "categorical", "vals": list(range(trials))}},
        "resources": {"slots_per_trial": slots},
        "max_restarts": 0,
    }


def test_two_two_slot_trials_on_three_slots_both_complete(client: Any, det_home: Path) -> None:
    exp = det_jupyter.create_experiment(_config(2), allgather_ranks, cluster=client)
    assert exp.wait(timeout=240).value == "COMPLETED", [t.error for t in exp.trials()]
    trials = exp.trials()
    assert [t.state.value for t in trials] == ["COMPLETED", "COMPLETED"]
    for trial in trials:
        lines = trial.logs()
        assert any(line.startswith("[rank=1] rank 1/2 saw [0, 1] RANK=1 WORLD_SIZE=2") for line in lines), (
            lines
        )
        assert any(line.startswith("rank 0/2 saw [0, 1] RANK=0") for line in lines), lines
        assert trial.metrics("training")["loss"].tolist() == pytest.approx([1 / (2 * s) for s in range(1, 6)])


def test_a_trial_larger_than_the_cluster_is_refused_with_the_numbers(client: Any, det_home: Path) -> None:
    with pytest.raises(ClusterError) as err:
        det_jupyter.create_experiment(_config(4, trials=1), allgather_ranks, cluster=client)
    message = str(err.value)
    assert "slots_per_trial=4 needs 4 CPU slots" in message
    assert "the cluster has 3: 1 on worker w0, 1 on worker w1, 1 on worker w2" in message.replace(
        "w1, 1 on worker w0", "w0, 1 on worker w1"
    ) or sorted(message.split(": ", 1)[1].split(";")[0].split(", ")) == [
        "1 on worker w0",
        "1 on worker w1",
        "1 on worker w2",
    ]
    assert det_jupyter.list_experiments() == []
