"""The embedded cluster: slots as Dask resources, GPU pinning per worker, NVML degrading cleanly.

CI has no GPU, so GPU workers are made by naming GPU indices (what NVML discovery feeds in); the
pinning itself (CUDA_VISIBLE_DEVICES per worker process, {"GPU": 1} per worker) is real. The same
test file runs unchanged on a GPU machine, where ``test_gpu_trial_runs_on_cuda`` also runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from distributed import Client

import det_jupyter
from det_jupyter.engine.cluster import cluster_summary, local_cluster, slot_resource
from det_jupyter.errors import ClusterError
from det_jupyter.worker.gpu import gpu_inventory, visible_gpu_indices

pytestmark = pytest.mark.slow


def report_pinning(ctx: Any) -> None:
    ctx.log(f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}")
    ctx.report_validation_metrics(1, {"val_loss": float(ctx.hparams["i"])})


def test_gpu_workers_are_pinned_one_gpu_each(det_home: Path) -> None:
    real = [g.index for g in gpu_inventory()]
    if len(real) == 1:  # a one-GPU machine cannot pin two workers to distinct GPUs
        pytest.skip("needs 0 (pinning without NVML, as in CI) or >= 2 GPUs")
    gpus = real[:2] or [0, 1]
    cluster = local_cluster(gpus=gpus, dashboard=False)
    try:
        with Client(cluster, set_as_default=False) as client:
            summary = cluster_summary(client)
            pins = sorted(w["cuda_visible_devices"] for w in summary["workers"])
            assert pins == [str(i) for i in gpus]
            assert all(w["resources"] == {"GPU": 1.0} for w in summary["workers"])
            assert summary["slots"]["GPU"] == 2
            assert slot_resource(client, 1) == "GPU"
            assert slot_resource(client, 2) == "GPU"  # a gang of 2 ranks, one per worker
            with pytest.raises(ClusterError, match="slots_per_trial=3 needs 3 GPU slots"):
                slot_resource(client, 3)
            cfg = {
                "searcher": {"name": "grid", "metric": "val_loss", "max_time": 1, "time_metric": "batches"},
                "hyperparameters": {"i": {"type": "categorical", "vals": [0, 1, 2, 3]}},
            }
            exp = det_jupyter.create_experiment(cfg, report_pinning, cluster=client)
            assert exp.wait(timeout=120).value == "COMPLETED"
            seen = {line for t in exp.trials() for line in t.logs()}
            assert seen == {f"CUDA_VISIBLE_DEVICES={i}" for i in gpus}
    finally:
        cluster.close()


def test_cpu_fallback_has_one_slot_per_worker(dask_client: Any) -> None:
    summary = cluster_summary(dask_client)
    assert len(summary["workers"]) == 2
    assert all(w["resources"] == {"CPU": 1.0} and w["cuda_visible_devices"] == "" for w in summary["workers"])
    assert slot_resource(dask_client, 1) == "CPU"
    with pytest.raises(
        ClusterError, match="needs a worker with 1 GPU slot"
    ):  # slot_type: gpu on a CPU cluster
        slot_resource(dask_client, 1, "gpu")


def test_nvml_without_a_gpu_reports_nothing_instead_of_failing() -> None:
    gpus = gpu_inventory()
    assert isinstance(gpus, list)
    assert all(g.memory_total_mb > 0 and g.name for g in gpus)


def test_visible_gpu_indices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_gpu_indices() is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    assert visible_gpu_indices() == [1, 3]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpu_indices() == []


def cuda_trial(ctx: Any) -> None:
    import torch

    assert torch.cuda.is_available(), "trial worker sees no GPU"
    x = torch.randn(256, 256, device="cuda")
    ctx.log(f"device={torch.cuda.get_device_name(0)} count={torch.cuda.device_count()}")
    ctx.report_validation_metrics(1, {"val_loss": float((x @ x).abs().mean().item())})


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_inventory(), reason="needs an NVIDIA GPU (run on the device machine)")
def test_gpu_trial_runs_on_cuda(det_home: Path) -> None:
    gpus = gpu_inventory()
    with pytest.raises(ClusterError, match="do not exist; NVML sees"):
        local_cluster(gpus=[len(gpus) + 7], dashboard=False)
    cluster = local_cluster(dashboard=False)  # NVML discovery: one worker per GPU
    try:
        with Client(cluster, set_as_default=False) as client:
            summary = cluster_summary(client)
            assert len(summary["workers"]) == len(gpus)
            assert all(len(w["gpus"]) == 1 for w in summary["workers"])  # each worker sees only its own GPU
            cfg = {"searcher": {"name": "random", "metric": "val_loss", "max_trials": 2, "max_time": 1,
                                "time_metric": "batches"}}  # fmt: skip
            exp = det_jupyter.create_experiment(cfg, cuda_trial, cluster=client)
            assert exp.wait(timeout=300).value == "COMPLETED", [t.error for t in exp.trials()]
            lines = [line for t in exp.trials() for line in t.logs()]
            assert all("count=1" in line for line in lines) and len(lines) == 2
            print(lines, summary["workers"][0]["gpus"])
    finally:
        cluster.close()
