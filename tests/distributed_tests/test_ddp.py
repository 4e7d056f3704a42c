"""A 2-slot gloo DDP trial trains a real model; its loss curve matches one process with the same global batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import det_jupyter

pytestmark = pytest.mark.slow

STEPS = 30


def ddp_regression(ctx: Any) -> None:
    """A small MLP on a fixed regression set; each rank trains on its shard of every global batch."""
    import torch
    import torch.distributed as dist

    from det_jupyter.worker.distributed import init_torch_distributed

    device = init_torch_distributed()  # gloo on CPU; a no-op with one slot
    rank, size = ctx.distributed.rank, ctx.distributed.size
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(480, 8, generator=gen)
    y = (x @ torch.randn(8, 1, generator=gen)).tanh() + 0.05 * torch.randn(480, 1, generator=gen)
    torch.manual_seed(0)
    model: torch.nn.Module = torch.nn.Sequential(
        torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)
    ).to(device)
    if size > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    global_batch = int(ctx.hparams["global_batch_size"])
    per_rank = global_batch // size
    for step in range(1, STEPS + 1):
        if ctx.should_stop():
            return
        start = ((step - 1) * global_batch) % len(x)
        lo = start + rank * per_rank
        loss = torch.nn.functional.mse_loss(model(x[lo : lo + per_rank]), y[lo : lo + per_rank])
        opt.zero_grad()
        loss.backward()  # DDP averages the gradients over the ranks: the global batch's gradient
        opt.step()
        mean = loss.detach().clone()
        if size > 1:
            dist.all_reduce(mean)
            mean /= size
        if ctx.distributed.is_chief:
            ctx.report_training_metrics(step, {"loss": float(mean)})
    if ctx.distributed.is_chief:
        ctx.report_validation_metrics(STEPS, {"val_loss": float(mean)})


def _run(client: Any, slots: int) -> list[float]:
    config = {
        "name": f"ddp-{slots}",
        "searcher": {"name": "single", "metric": "val_loss", "time_metric": "batches", "max_time": STEPS},
        "hyperparameters": {"global_batch_size": 32},
        "resources": {"slots_per_trial": slots},
        "max_restarts": 0,
    }
    exp = det_jupyter.create_experiment(config, ddp_regression, cluster=client)
    assert exp.wait(timeout=300).value == "COMPLETED", [(t.error, t.logs()) for t in exp.trials()]
    (trial,) = exp.trials()
    training = trial.metrics("training")
    assert training["steps"].tolist() == list(range(1, STEPS + 1))
    return [float(v) for v in training["loss"]]


def test_two_slot_ddp_matches_one_process_with_the_same_global_batch(client: Any, det_home: Path) -> None:
    one = _run(client, 1)
    two = _run(client, 2)
    assert one[-1] < 0.5 * one[0]  # it learns
    assert two == pytest.approx(one, rel=1e-4, abs=1e-6)
