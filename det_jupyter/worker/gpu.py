"""NVIDIA GPU discovery and utilisation through NVML, degrading cleanly where there is no GPU.

``nvidia-ml-py`` provides the ``pynvml`` module. With no driver, ``nvmlInit`` raises an
``NVMLError`` in under a millisecond; every function here then reports no GPUs instead of failing.

Example:
    >>> gpus = gpu_inventory()   # [] on a machine without NVIDIA GPUs
    >>> all(g.memory_total_mb > 0 for g in gpus)
    True
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["GpuInfo", "gpu_inventory", "visible_gpu_indices"]


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
