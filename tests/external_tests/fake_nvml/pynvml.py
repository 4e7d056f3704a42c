"""A stand-in for ``pynvml`` (nvidia-ml-py) describing GPUs from ``$FAKE_NVML_GPUS``: the one thing
the GPU tests fake, on a machine without GPUs. JSON: ``[{"name": ..., "total_mb": ..., "used_mb": ...}]``.

Put its folder first on ``PYTHONPATH`` (worker processes) or in ``sys.modules["pynvml"]`` (this process).
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace
from typing import Any


class NVMLError(Exception):
    pass


def _gpus() -> list[dict[str, Any]]:
    return list(json.loads(os.environ.get("FAKE_NVML_GPUS", "[]")))


def nvmlInit() -> None:
    if not _gpus():
        raise NVMLError("no fake GPUs")


def nvmlShutdown() -> None:
    pass


def nvmlDeviceGetCount() -> int:
    return len(_gpus())


def nvmlDeviceGetHandleByIndex(index: int) -> int:
    return index


def nvmlDeviceGetMemoryInfo(handle: int) -> Any:
    gpu = _gpus()[handle]
    total, used = int(gpu["total_mb"] * 2**20), int(gpu["used_mb"] * 2**20)
    return SimpleNamespace(total=total, used=used, free=total - used)


def nvmlDeviceGetUtilizationRates(handle: int) -> Any:
    return SimpleNamespace(gpu=0, memory=0)


def nvmlDeviceGetName(handle: int) -> str:
    return str(_gpus()[handle]["name"])


def nvmlDeviceGetUUID(handle: int) -> str:
    return f"GPU-fake-{handle}"
