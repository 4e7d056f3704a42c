"""``dask worker --preload det_jupyter.worker.preload`` on real worker processes: GPU pinning, per-host
GPU slots, memory caps and NVML reports. The worker processes see fake GPUs through the fake ``pynvml``
(the only fake); everything else (preload, locks, CUDA_VISIBLE_DEVICES, the named plugin) is real."""

from __future__ import annotations

from pathlib import Path

import pytest

from det_jupyter.engine.cluster import cluster_summary
from det_jupyter.worker.gpu import CUDA_CONTEXT_MB
from external_tests.nvml import gpus_json, worker_env
from external_tests.procs import DaskProcesses

pytestmark = pytest.mark.slow

PRELOAD = ("--preload", "det_jupyter.worker.preload")


_describe = lambda dask_worker: dask_worker.plugins["det-jupyter-gpu"].describe()  # noqa: E731 (by value)


def test_preloaded_gpu_workers_pin_distinct_gpus_and_report_them(
    tmp_path: Path, dask_procs: DaskProcesses
) -> None:
    env = {**worker_env(gpus_json(2.0, 10.0)), "DET_JUPYTER_GPU_LOCKS": str(tmp_path / "locks")}
    for name in ("a", "b"):
        dask_procs.start_worker(name, "--nthreads", "1", "--resources", "GPU=1", *PRELOAD, env=env)
    described = dask_procs.client.run(_describe)
    pins = sorted(d["cuda_visible_devices"] for d in described.values())
    assert pins == ["0", "1"]  # one GPU each, claimed through the host's lock files
    assert all(d["memory_fraction"] is None and d["source"] == "first free" for d in described.values())
    assert sorted(d["nvml"][0]["memory_used_mb"] for d in described.values()) == [2048.0, 10240.0]
    summary = cluster_summary(dask_procs.client)  # what %det cluster and the sidebar show
    assert sorted(g["name"] for w in summary["workers"] for g in w["gpus"]) == ["Fake H100"] * 2

    # a third GPU worker finds both GPUs taken: it closes (with its nanny) at once, saying why and what to do
    dask_procs.start_worker("c", "--nthreads", "1", "--resources", "GPU=1", *PRELOAD, env=env, wait=False)
    dask_procs.wait_for(lambda: dask_procs.exited("c") is not None, 90, "worker c to give up")
    assert "a free slot on this host" in dask_procs.log(
        "c"
    ) and "DET_JUPYTER_SLOTS_PER_GPU" in dask_procs.log("c")


def test_preload_packs_workers_on_a_gpu_by_name_and_free_memory(
    tmp_path: Path, dask_procs: DaskProcesses
) -> None:
    env = {
        **worker_env(gpus_json(0.0, 40.0)),
        "DET_JUPYTER_GPU_LOCKS": str(tmp_path / "locks"),
        "DET_JUPYTER_SLOTS_PER_GPU": "4",
    }
    for name in ("gpu-1", "gpu-1b"):  # named for GPU 1, half used: room for 2 of its 4 slots
        dask_procs.start_worker(name, "--nthreads", "1", "--resources", "GPU=1", *PRELOAD,
                                env={**env, "DET_JUPYTER_GPUS": "1"} if name == "gpu-1b" else env)  # fmt: skip
    described = dask_procs.client.run(_describe)
    assert sorted(d["cuda_visible_devices"] for d in described.values()) == ["1", "1"]
    assert sorted(d["source"] for d in described.values()) == ["DET_JUPYTER_GPUS", "worker name"]
    share = 81920 / 4
    assert all(
        d["memory_fraction"] == pytest.approx((share - CUDA_CONTEXT_MB) / 81920) for d in described.values()
    )
    third = {**env, "DET_JUPYTER_GPUS": "1"}  # GPU 0 (empty) would take it: point it at GPU 1
    dask_procs.start_worker(
        "third", "--nthreads", "1", "--resources", "GPU=1", *PRELOAD, env=third, wait=False
    )
    dask_procs.wait_for(lambda: dask_procs.exited("third") is not None, 90, "worker third to give up")
    assert "room for 2 of 4 slots" in dask_procs.log("third")


def test_a_worker_without_gpu_resources_is_left_alone(dask_procs: DaskProcesses) -> None:
    dask_procs.start_worker("cpu", "--nthreads", "1", "--resources", "CPU=1", *PRELOAD,
                            env=worker_env(gpus_json(0.0)))  # fmt: skip
    plugins = dask_procs.client.run(lambda dask_worker: sorted(dask_worker.plugins))
    assert all("det-jupyter-gpu" not in names for names in plugins.values())
