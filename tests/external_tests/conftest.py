"""Fixtures of the external-cluster tests: real dask scheduler / worker processes (see ``procs.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from external_tests.procs import DaskProcesses

collect_ignore = ["fake_nvml"]  # a stand-in for the pynvml module, loaded by worker processes, not tests


@pytest.fixture
def dask_procs(tmp_path: Path) -> Iterator[DaskProcesses]:
    """A fresh scheduler (started) on loopback; the test adds workers. Every process ends with the test."""
    procs = DaskProcesses(tmp_path)
    try:
        procs.start_scheduler()
        yield procs
    finally:
        procs.close()
