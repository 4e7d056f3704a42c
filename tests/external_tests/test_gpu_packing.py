"""GPU packing (#11.4): small trials share a GPU.

No GPU here: NVML is faked at its edge (``fake_nvml/pynvml.py``, the only fake), the admission rule and
the embedded cluster's worker processes per GPU are real; fractional slots run for real on a worker that
declares ``--resources GPU=1`` without having one (Dask's resource accounting is what packs them).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from distributed import Client

import det_jupyter
from det_jupyter import ExperimentState, TrialState
from det_jupyter.engine.cluster import PackingWarning, cluster_summary, local_cluster
from det_jupyter.worker.gpu import CUDA_CONTEXT_MB, gpu_inventory, pack_gpus
from external_tests.nvml import gpus_json, use_fake_nvml
from external_tests.procs import DaskProcesses

pytestmark = pytest.mark.slow


def test_slots_are_admitted_by_free_gpu_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_nvml(monkeypatch, gpus_json(0.5, 40, 79.5))  # empty, half used, full
    inventory = gpu_inventory()  # det_jupyter's real NVML reading, over the fake library
    assert [(g.index, g.name, g.memory_total_mb) for g in inventory] == [
        (i, "Fake H100", 81920.0) for i in range(3)
    ]
    packed = pack_gpus(inventory, 4)
    assert [p.slots for p in packed] == [4, 2, 0]
    share = 81920.0 / 4
    assert all(p.memory_fraction == pytest.approx((share - CUDA_CONTEXT_MB) / 81920.0) for p in packed)
    assert packed[0].reason == "" and "room for 2 of 4 slots" in packed[1].reason
    assert [p.slots for p in pack_gpus(inventory, 1)] == [1, 1, 1]  # unpacked: one slot each, no cap
    assert all(p.memory_fraction is None for p in pack_gpus(inventory, 1))
    with pytest.raises(ValueError, match="slots_per_gpu"):
        pack_gpus(inventory, 0)


def pinned_pair(ctx: Any) -> None:
    """Both trials must run at once (a rendezvous on files), each says where it runs."""
    folder = Path(ctx.hparams["dir"])
    (folder / f"running-{ctx.trial_id}").touch()
    deadline = time.monotonic() + 90
    while len(list(folder.glob("running-*"))) < ctx.hparams["together"]:
        if time.monotonic() > deadline:
            raise TimeoutError("the other trials never ran at the same time")
        time.sleep(0.02)
    print(f"pid={os.getpid()} CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}")
    ctx.report_validation_metrics(1, {"val_loss": 0.0})


def test_embedded_cluster_runs_slots_per_gpu_processes_on_one_gpu(
    det_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_fake_nvml(monkeypatch, gpus_json(1.0, 79.5))  # GPU 1 is full: it gets no worker
    with pytest.warns(PackingWarning, match="GPU 1: .*room for 0 of 2 slots"):
        cluster = local_cluster(slots_per_gpu=2, dashboard=False)
    try:
        with Client(cluster, set_as_default=False) as client:
            assert sorted(cluster.worker_spec) == ["gpu-0-0", "gpu-0-1"]
            summary = cluster_summary(client)
            assert [w["cuda_visible_devices"] for w in summary["workers"]] == ["0", "0"]
            assert summary["slots"]["GPU"] == 2
            caps = client.run(lambda dask_worker: dask_worker.plugins["det-jupyter-gpu"].memory_fraction)
            assert sorted(caps.values()) == [pytest.approx((40960 - CUDA_CONTEXT_MB) / 81920, abs=1e-4)] * 2
            cfg = {
                "searcher": {"name": "grid", "metric": "val_loss"},
                "hyperparameters": {
                    "dir": str(tmp_path),
                    "together": 2,
                    "i": {"type": "categorical", "vals": [0, 1]},
                },
            }
            exp = det_jupyter.create_experiment(cfg, pinned_pair, cluster=client)
            assert exp.wait(timeout=180) == ExperimentState.COMPLETED, exp.error
            lines = sorted(line for t in exp.trials() for line in t.logs() if line.startswith("pid="))
            assert len(lines) == 2 and len({line.split()[0] for line in lines}) == 2  # two processes
            assert all(line.endswith("CUDA_VISIBLE_DEVICES=0") for line in lines)  # one GPU
    finally:
        cluster.close()


def concurrency_probe(ctx: Any) -> None:
    """Rendezvous with ``together`` trials (if > 1), then sample how many run at once for a while."""
    folder = Path(ctx.hparams["dir"])
    mine = folder / f"running-{ctx.trial_id}"
    mine.touch()
    try:
        deadline = time.monotonic() + 90
        while len(list(folder.glob("running-*"))) < ctx.hparams["together"]:
            if time.monotonic() > deadline:
                raise TimeoutError("the other trials never ran at the same time")
            time.sleep(0.02)
        most = 0
        for _ in range(20):
            most = max(most, len(list(folder.glob("running-*"))))
            time.sleep(0.05)
        ctx.report_validation_metrics(1, {"val_loss": 0.0, "concurrent": most})
    finally:
        mine.unlink()


def test_fractional_slots_pack_trials_on_one_gpu_worker(
    det_home: Path, tmp_path: Path, dask_procs: DaskProcesses
) -> None:
    dask_procs.start_worker("gpu-box", "--nthreads", "4", "--resources", "GPU=1")  # no real GPU
    client = dask_procs.client

    def run(slots: float, together: int, folder: Path) -> Any:
        folder.mkdir()
        cfg = {
            "searcher": {"name": "grid", "metric": "val_loss"},
            "resources": {"slots_per_trial": slots},
            "hyperparameters": {"dir": str(folder), "together": together,
                                "i": {"type": "categorical", "vals": [0, 1, 2, 3]}},
        }  # fmt: skip
        exp = det_jupyter.create_experiment(cfg, concurrency_probe, cluster=client)
        assert exp.wait(timeout=180) == ExperimentState.COMPLETED, exp.error
        assert [t.state for t in exp.trials()] == [TrialState.COMPLETED] * 4
        return exp

    quarter = run(0.25, 4, tmp_path / "quarter")  # four {GPU: 0.25} trials at once on one GPU=1 worker
    assert list(quarter.metrics("validation")["concurrent"]) == [4, 4, 4, 4]
    half = run(0.5, 1, tmp_path / "half")  # {GPU: 0.5}: never more than two at once
    assert max(half.metrics("validation")["concurrent"]) <= 2


def test_a_fraction_no_worker_can_pack_is_a_warning(det_home: Path, dask_procs: DaskProcesses) -> None:
    dask_procs.start_worker("one-thread", "--nthreads", "1", "--resources", "GPU=1")
    cfg = {"searcher": {"name": "single", "metric": "val_loss"}, "resources": {"slots_per_trial": 0.25}}
    with pytest.warns(PackingWarning, match="no worker can run two such trials at once"):
        exp = det_jupyter.create_experiment(cfg, concurrency_probe, cluster=dask_procs.client, activate=False)
    exp.kill()


def test_memory_cap_is_applied_when_cuda_initialises() -> None:
    code = (
        "from det_jupyter.worker.gpu import install_memory_cap\n"
        "install_memory_cap(0.3)\n"
        "import torch\n"
        "queued = [c[0].__qualname__ for c in torch.cuda._queued_calls]\n"
        "assert any('install_memory_cap' in q for q in queued), queued\n"
        "if torch.cuda.is_available():\n"
        "    torch.cuda.init()\n"
        "    total = torch.cuda.get_device_properties(0).total_memory\n"
        "    try:\n"
        "        torch.empty(int(total * 0.5), dtype=torch.uint8, device='cuda')\n"
        "        raise SystemExit('allocated past the cap')\n"
        "    except torch.OutOfMemoryError:\n"
        "        print('capped')\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
