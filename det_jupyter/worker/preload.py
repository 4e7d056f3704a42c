"""Dask worker preload: pin a worker to its GPUs, cap its GPU memory, report them.

Start GPU workers of an external cluster with it::

    dask worker tcp://scheduler:8786 --resources GPU=1 --preload det_jupyter.worker.preload

It runs in the worker process before the worker registers with the scheduler (and before anything
touches CUDA), and:

- **pins GPUs**: sets ``CUDA_VISIBLE_DEVICES`` to as many GPUs as the worker's ``--resources GPU=N``
  declares (rounded up), taken from ``DET_JUPYTER_GPUS`` (a comma list of NVML indices or GPU UUIDs,
  the pool the workers of a host share) or, failing that, the index in the worker's ``--name``
  (``gpu-3`` → GPU 3), or else every GPU NVML sees. Workers on one host never take the same GPU slot:
  each claims its slots with a lock file (``flock``, released when the process ends) in
  ``$DET_JUPYTER_GPU_LOCKS`` (default ``/tmp/det-jupyter-gpu-locks-<uid>``). A
  ``CUDA_VISIBLE_DEVICES`` the worker was started with (Slurm, Kubernetes' device plugin) is kept.
- **packs**: with ``DET_JUPYTER_SLOTS_PER_GPU=K``, up to K workers of a host share one GPU (as far as
  its free memory holds them, :func:`~det_jupyter.worker.gpu.pack_gpus`), each with a memory cap.
- **caps memory**: ``DET_JUPYTER_GPU_MEMORY_FRACTION=F`` (or the packing share) caps PyTorch's
  allocator in the process at F of the GPU (applied when the process initialises CUDA).
- **reports**: the named plugin ``det-jupyter-gpu`` holds what it chose (:meth:`GpuPlugin.describe`:
  pinned GPUs with their NVML name, memory and utilisation); a line goes to the worker's log.

A worker that cannot get its GPUs (all slots taken, a bad ``DET_JUPYTER_GPUS``) closes with its nanny,
its log saying why (it offers no GPU meanwhile). A worker that declares no ``GPU`` resource is left alone. Without NVML (no driver, no GPU) nothing is
pinned and the worker says so in its log.

Example:
    >>> choose_gpus(1, pool=None, worker_name="gpu-2", found=[0, 1, 2, 3])
    [2]
    >>> choose_gpus(2, pool="1,3", worker_name="w", found=[0, 1, 2, 3])
    [1, 3]
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from distributed import WorkerPlugin

from det_jupyter.worker.gpu import GpuInfo, gpu_inventory, install_memory_cap, pack_gpus

__all__ = [
    "GPUS_ENV",
    "LOCKS_ENV",
    "MEMORY_FRACTION_ENV",
    "SLOTS_PER_GPU_ENV",
    "GpuPlugin",
    "choose_gpus",
    "dask_setup",
]

log = logging.getLogger("det_jupyter.worker.preload")

GPUS_ENV = "DET_JUPYTER_GPUS"
"""The GPUs (NVML indices or UUIDs, comma-separated) the workers of a host may pin."""
SLOTS_PER_GPU_ENV = "DET_JUPYTER_SLOTS_PER_GPU"
"""How many worker processes (trial slots) may share one GPU (default 1)."""
MEMORY_FRACTION_ENV = "DET_JUPYTER_GPU_MEMORY_FRACTION"
"""Cap PyTorch's allocator at this fraction of the GPU in each worker process (``0`` or unset: no
cap, unless packing sets one)."""
LOCKS_ENV = "DET_JUPYTER_GPU_LOCKS"
"""Directory of the per-host GPU slot lock files."""

_NAME_INDEX = re.compile(r"gpu-?(\d+)$", re.IGNORECASE)


def choose_gpus(
    count: int,
    *,
    pool: str | None,
    worker_name: str,
    found: Sequence[int],
    uuids: dict[str, int] | None = None,
) -> list[int]:
    """The GPU indices a worker asking for ``count`` GPUs may take, in preference order.

    ``pool`` (``DET_JUPYTER_GPUS``) lists indices or UUIDs; else a worker named ``...gpu-N`` takes
    ``N`` (and the next ones when ``count > 1``); else every GPU found. The caller claims ``count`` of
    them (see :class:`GpuPlugin`).

    Raises:
        ValueError: the pool names a GPU that does not exist.

    Example:
        >>> choose_gpus(1, pool="GPU-b", worker_name="w", found=[0, 1], uuids={"GPU-a": 0, "GPU-b": 1})
        [1]
    """
    if pool:
        chosen = []
        for item in (p.strip() for p in pool.split(",")):
            if not item:
                continue
            index = int(item) if item.isdigit() else (uuids or {}).get(item)
            if index is None or (found and index not in found):
                raise ValueError(
                    f"{GPUS_ENV}={pool!r} names GPU {item!r}, which NVML does not see on this host "
                    f"(GPUs: {list(found)}{', UUIDs: ' + ', '.join(uuids) if uuids else ''})"
                )
            chosen.append(index)
        return chosen
    named = _NAME_INDEX.search(worker_name)
    if named is not None:
        first = int(named.group(1))
        return [first + i for i in range(max(count, 1))]
    return list(found)


class GpuPlugin(WorkerPlugin):
    """The GPUs a worker pinned, its memory cap, and the lock files that hold its GPU slots.

    Added to the worker by :func:`dask_setup` under the name ``det-jupyter-gpu``; the locks are held
    for the worker process's life (the kernel drops them when it ends, however it ends).
    """

    name = "det-jupyter-gpu"

    def __init__(self, gpus: list[int], memory_fraction: float | None, source: str) -> None:
        self.gpus = gpus
        self.memory_fraction = memory_fraction
        self.source = source
        self._locks: list[IO[bytes]] = []

    def describe(self) -> dict[str, Any]:
        """What this worker pinned, how it chose, and its GPUs as NVML sees them now."""
        info = {g.index: g for g in gpu_inventory()}
        return {
            "gpus": self.gpus,
            "source": self.source,
            "memory_fraction": self.memory_fraction,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "nvml": [info[i].to_dict() for i in self.gpus if i in info],
        }

    def teardown(self, worker: Any) -> None:
        for handle in self._locks:
            with contextlib.suppress(OSError):
                handle.close()
        self._locks.clear()


def _lock_dir() -> Path:
    path = Path(os.environ.get(LOCKS_ENV) or f"/tmp/det-jupyter-gpu-locks-{os.getuid()}")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _try_lock(path: Path) -> IO[bytes] | None:
    handle = path.open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def _claim(
    candidates: list[int], count: int, slots: dict[int, int], gpus: dict[int, GpuInfo]
) -> tuple[list[int], list[IO[bytes]]]:
    """Claim ``count`` GPUs from ``candidates``: a free slot lock on each (``slots[i]`` slots on GPU i)."""
    chosen: list[int] = []
    locks: list[IO[bytes]] = []
    folder = _lock_dir()
    for index in candidates:
        if len(chosen) == count:
            break
        key = gpus[index].uuid if index in gpus else str(index)
        for slot in range(slots.get(index, 1)):
            handle = _try_lock(folder / f"{key}.{slot}.lock")
            if handle is not None:
                chosen.append(index)
                locks.append(handle)
                break
    return chosen, locks


def _env_float(name: str) -> float | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} must be a number in (0, 1]") from None
    if not 0 <= number <= 1:
        raise ValueError(f"{name}={value!r} must be a number in (0, 1] (0: no cap)")
    return number or None


def _slots_per_gpu() -> int:
    value = os.environ.get(SLOTS_PER_GPU_ENV, "1").strip() or "1"
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{SLOTS_PER_GPU_ENV}={value!r} must be a whole number >= 1")
    return int(value)


def setup_gpus(worker_name: str, declared: float) -> GpuPlugin:
    """Pin this process to ``ceil(declared)`` GPUs and install its memory cap; the plugin recording it.

    Raises:
        RuntimeError: every GPU slot this worker may take is held by another worker of the host.
    """
    fraction = _env_float(MEMORY_FRACTION_ENV)
    preset = os.environ.get("CUDA_VISIBLE_DEVICES")
    inventory = gpu_inventory()
    if preset is not None:
        plugin = GpuPlugin(
            [int(v) for v in preset.split(",") if v.strip().isdigit()], fraction, "CUDA_VISIBLE_DEVICES"
        )
    elif not inventory:
        log.warning(
            "det_jupyter: this worker declares GPU=%g but NVML finds no GPU; nothing pinned", declared
        )
        return GpuPlugin([], None, "no GPU")
    else:
        count = max(1, math.ceil(declared))
        per_gpu = _slots_per_gpu()
        packing = {s.index: s for s in pack_gpus(inventory, per_gpu)}
        by_index = {g.index: g for g in inventory}
        pool = os.environ.get(GPUS_ENV)
        candidates = choose_gpus(
            count,
            pool=pool,
            worker_name=worker_name,
            found=list(by_index),
            uuids={g.uuid: g.index for g in inventory},
        )
        slots = {i: packing[i].slots if i in packing else 1 for i in candidates}
        chosen, locks = _claim(candidates, count, slots, by_index)
        if len(chosen) < count:
            for handle in locks:
                handle.close()
            why = "; ".join(packing[i].reason for i in candidates if i in packing and packing[i].reason)
            raise RuntimeError(
                f"det_jupyter: worker {worker_name!r} asks for {count} GPU(s) but only {len(chosen)} of "
                f"{candidates} {'have' if len(chosen) != 1 else 'has'} a free slot on this host (other workers hold "
                f"them{'; ' + why if why else ''}). Start fewer GPU workers, set {GPUS_ENV} to other GPUs, or "
                f"{SLOTS_PER_GPU_ENV}=K to let K workers share a GPU"
            )
        if fraction is None and per_gpu > 1:
            fraction = min(packing[i].memory_fraction or 1.0 for i in chosen)
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in chosen)
        source = GPUS_ENV if pool else "worker name" if _NAME_INDEX.search(worker_name) else "first free"
        plugin = GpuPlugin(chosen, fraction, source)
        plugin._locks = locks
    if plugin.memory_fraction is not None:
        install_memory_cap(plugin.memory_fraction)
    info = {g.index: g for g in inventory}
    names = ", ".join(
        f"{i} ({info[i].name}, {info[i].memory_total_mb - info[i].memory_used_mb:.0f} of "
        f"{info[i].memory_total_mb:.0f} MiB free)"
        if i in info
        else str(i)
        for i in plugin.gpus
    )
    cap = f", memory cap {plugin.memory_fraction:.3f}" if plugin.memory_fraction else ""
    log.warning(
        "det_jupyter: worker %s pinned to GPU %s by %s%s", worker_name, names or "-", plugin.source, cap
    )
    return plugin


_background: set[asyncio.Future[None]] = set()


async def _close_once_running(worker: Any, reason: str) -> None:
    """Close the worker and its nanny once it has started (a worker closing while it starts would
    leave its nanny up, which starts another)."""
    from distributed.core import Status

    for _ in range(1200):  # up to a minute, in steps of the event loop
        if worker.status == Status.running:
            break
        await asyncio.sleep(0.05)
    await worker.close(reason=reason, nanny=True)


async def dask_setup(worker: Any) -> None:
    """Dask's preload hook (``dask worker --preload det_jupyter.worker.preload``): see the module doc."""
    declared = float(worker.state.total_resources.get("GPU", 0) or 0)
    if declared <= 0:
        return
    try:
        plugin = setup_gpus(str(worker.name), declared)
    except (RuntimeError, ValueError) as exc:
        # Dask only logs a preload's exception and starts the worker all the same: a GPU worker
        # without its GPU must not take GPU trials, so it closes (with its nanny) and says why.
        log.error("%s", exc)
        worker.state.total_resources["GPU"] = worker.state.available_resources["GPU"] = 0
        _background.add(asyncio.ensure_future(_close_once_running(worker, f"det_jupyter preload: {exc}")))
        raise
    await worker.plugin_add(plugin=plugin, name=GpuPlugin.name, catch_errors=False)
