"""NVIDIA GPU discovery, GPU packing and per-process memory caps, degrading cleanly without a GPU.

``nvidia-ml-py`` provides the ``pynvml`` module. With no driver, ``nvmlInit`` raises an
``NVMLError`` in under a millisecond; every function here then reports no GPUs instead of failing.

GPU packing (several trials on one GPU) is decided here, as pure functions over the NVML inventory:
:func:`pack_gpus` admits ``slots_per_gpu`` slots on a GPU as far as its *free* memory holds them, and
gives each slot's worker process a memory fraction that :func:`install_memory_cap` applies to PyTorch's
caching allocator (``torch.cuda.set_per_process_memory_fraction``) when the process initialises CUDA.

Example:
    >>> gpus = gpu_inventory()   # [] on a machine without NVIDIA GPUs
    >>> all(g.memory_total_mb > 0 for g in gpus)
    True
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

__all__ = [
    "CUDA_CONTEXT_MB",
    "GpuInfo",
    "GpuSlots",
    "gpu_inventory",
    "install_memory_cap",
    "pack_gpus",
    "visible_gpu_indices",
]

log = logging.getLogger(__name__)

CUDA_CONTEXT_MB = 512.0
"""GPU memory a process's CUDA context takes besides what its allocator holds (about; varies by GPU
and CUDA version): counted once per packed process, outside its memory cap."""


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as NVML sees it, with its utilisation at the time of the call."""

    index: int
    uuid: str
    name: str
    memory_total_mb: float
    memory_used_mb: float
    utilization_percent: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return asdict(self)


def gpu_inventory() -> list[GpuInfo]:
    """All GPUs on this machine (ignoring ``CUDA_VISIBLE_DEVICES``), or ``[]`` without NVML."""
    try:
        import pynvml
    except ImportError:  # nvidia-ml-py missing: no GPU support
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                util = float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except pynvml.NVMLError:
                util = float("nan")
            name = pynvml.nvmlDeviceGetName(handle)
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            out.append(
                GpuInfo(
                    index=i,
                    uuid=uuid.decode() if isinstance(uuid, bytes) else str(uuid),
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    memory_total_mb=mem.total / 2**20,
                    memory_used_mb=mem.used / 2**20,
                    utilization_percent=util,
                )
            )
        return out
    except pynvml.NVMLError:
        return []
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def visible_gpu_indices() -> list[int] | None:
    """The GPU indices ``CUDA_VISIBLE_DEVICES`` allows, or ``None`` when it is unset (all GPUs)."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return [int(v) for v in value.split(",") if v.strip().lstrip("-").isdigit() and int(v) >= 0]


@dataclass(frozen=True)
class GpuSlots:
    """How many trial slots (worker processes) one GPU admits, and each one's memory cap.

    Attributes:
        index: the GPU's NVML index.
        slots: slots admitted (``0``: the GPU has no room, see ``reason``).
        memory_fraction: the share of the GPU's memory each slot's process may allocate
            (``None``: no cap, one slot owns the GPU).
        reason: why fewer slots than asked were admitted (``""`` when all were).
    """

    index: int
    slots: int
    memory_fraction: float | None
    reason: str = ""


def pack_gpus(
    gpus: Sequence[GpuInfo], slots_per_gpu: int, *, context_mb: float = CUDA_CONTEXT_MB
) -> list[GpuSlots]:
    """Admit ``slots_per_gpu`` trial slots per GPU, as far as each GPU's free memory holds them.

    A slot is a ``1/slots_per_gpu`` share of the GPU's memory; a GPU admits as many slots as its free
    memory (NVML, now) holds, within a tenth of a share (the driver and a display keep a little), so a
    GPU half used by someone else admits half its slots, and a full one none. Each packed slot's process
    gets a cap of its share less a CUDA context (:data:`CUDA_CONTEXT_MB`), so neighbours cannot starve
    each other. ``slots_per_gpu == 1`` is the unpacked default: one slot per GPU, no cap, whatever is free.

    Example:
        >>> gpu = GpuInfo(0, "GPU-0", "H100", memory_total_mb=81920, memory_used_mb=40960, utilization_percent=0)
        >>> packed = pack_gpus([gpu], 4)[0]
        >>> packed.slots, round(packed.memory_fraction, 3), packed.reason
        (2, 0.244, '40960 MiB of 81920 MiB free: room for 2 of 4 slots')
        >>> pack_gpus([gpu], 1)
        [GpuSlots(index=0, slots=1, memory_fraction=None, reason='')]
    """
    if isinstance(slots_per_gpu, bool) or not isinstance(slots_per_gpu, int) or slots_per_gpu < 1:
        raise ValueError(f"slots_per_gpu must be a whole number >= 1 (got {slots_per_gpu!r})")
    out = []
    for gpu in gpus:
        if slots_per_gpu == 1:
            out.append(GpuSlots(gpu.index, 1, None))
            continue
        share = gpu.memory_total_mb / slots_per_gpu
        free = max(gpu.memory_total_mb - gpu.memory_used_mb, 0.0)
        slots = min(slots_per_gpu, math.floor(free / share + 0.1))
        fraction = max(share - context_mb, share / 2) / gpu.memory_total_mb
        reason = (
            ""
            if slots == slots_per_gpu
            else f"{free:.0f} MiB of {gpu.memory_total_mb:.0f} MiB free: room for {slots} of {slots_per_gpu} slots"
        )
        out.append(GpuSlots(gpu.index, slots, fraction, reason))
    return out


def install_memory_cap(fraction: float) -> None:
    """Cap PyTorch's CUDA caching allocator in this process at ``fraction`` of each visible GPU.

    Applied when the process initialises CUDA (``torch.cuda``'s lazy-init queue), so importing this
    needs no torch and touches no GPU: if torch is not imported yet, the cap is queued right after its
    import. Allocations past the cap raise PyTorch's out-of-memory error in this process only.
    Without CUDA (a CPU build of torch), nothing ever applies it.

    Example:
        >>> install_memory_cap(0.25)   # doctest: +SKIP
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"a GPU memory fraction must be in (0, 1] (got {fraction!r})")

    def queue(torch: ModuleType) -> None:
        def apply() -> None:
            for device in range(torch.cuda.device_count()):
                torch.cuda.set_per_process_memory_fraction(float(fraction), device)
            log.info("GPU memory capped at %.3f of each visible GPU", fraction)

        torch.cuda._lazy_call(apply)

    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "cuda"):
        queue(torch)
    else:
        _after_import("torch", queue)


class _AfterImport(importlib.abc.MetaPathFinder):
    """A one-shot import hook: after module ``name`` has executed, call ``callback(module)``."""

    def __init__(self, name: str, callback: Callable[[ModuleType], None]) -> None:
        self.name = name
        self.callback = callback

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        loader = spec.loader if spec is not None else None
        exec_module = getattr(loader, "exec_module", None)
        if loader is None or exec_module is None:
            return spec
        callback = self.callback

        def exec_then_callback(module: ModuleType) -> None:
            exec_module(module)
            try:
                callback(module)
            except Exception as exc:  # never break the user's import
                log.warning("after importing %s: %s", fullname, exc)

        loader.exec_module = exec_then_callback  # type: ignore[method-assign]
        return spec


def _after_import(name: str, callback: Callable[[ModuleType], None]) -> None:
    sys.meta_path.insert(0, _AfterImport(name, callback))
