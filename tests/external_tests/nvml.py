"""The fake NVML (``fake_nvml/pynvml.py``) for this process and for worker processes."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

FAKE_NVML_DIR = Path(__file__).parent / "fake_nvml"
GIB = 1024.0


def gpus_json(*used_of_80gib: float) -> str:
    """Fake H100s of 80 GiB with ``used`` GiB taken on each."""
    return json.dumps(
        [{"name": "Fake H100", "total_mb": 80 * GIB, "used_mb": used * GIB} for used in used_of_80gib]
    )


def use_fake_nvml(monkeypatch: pytest.MonkeyPatch, spec: str) -> Any:
    """Make ``import pynvml`` in this process return the fake, describing ``spec`` (:func:`gpus_json`)."""
    monkeypatch.setenv("FAKE_NVML_GPUS", spec)
    loaded = importlib.util.spec_from_file_location("pynvml", FAKE_NVML_DIR / "pynvml.py")
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    return module


def worker_env(spec: str) -> dict[str, str]:
    """Environment for a ``dask worker`` process that sees the fake GPUs through ``pynvml``."""
    return {"FAKE_NVML_GPUS": spec, "PYTHONPATH": str(FAKE_NVML_DIR)}
