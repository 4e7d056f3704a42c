"""What tests that start ``det-jupyter master`` processes share: stopping every master of a home, a
master-mode home fixture, and a small checkpointing trial."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from det_jupyter.master import read_info, stop_master
from det_jupyter.master.files import pid_alive
from det_jupyter.master.process import kill_orphans
from tests.conftest import wait_for


def masters_of(home: Path) -> list[psutil.Process]:
    """Live ``det_jupyter.master`` processes serving ``home``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        with contextlib.suppress(psutil.Error):
            if (
                "det_jupyter.master" in cmdline
                and str(home) in cmdline
                and proc.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(proc)
    return found


def stop_all_masters(home: Path) -> None:
    """Stop the master of ``home`` (or kill it and its workers), and any master still starting there."""
    info = read_info(home)
    with contextlib.suppress(Exception):
        stop_master(home, timeout=30)
    if info is not None:
        if pid_alive(info.pid, info.create_time):
            os.kill(info.pid, signal.SIGKILL)
            wait_for(lambda: not pid_alive(info.pid), 10, what="master killed")
        kill_orphans(info)
    for proc in masters_of(home):  # one still starting, with no master.json yet
        proc.kill()
        proc.wait(10)


@contextlib.contextmanager
def master_mode_home(path: Path, monkeypatch: pytest.MonkeyPatch, *, workers: int = 2) -> Iterator[Path]:
    """``path`` as DET_JUPYTER_HOME in master mode with ``workers`` CPU workers; every master started
    there is stopped at the end, even on failure."""
    monkeypatch.setenv("DET_JUPYTER_HOME", str(path))
    monkeypatch.setenv("DET_JUPYTER_MASTER", "process")
    monkeypatch.setenv("DET_JUPYTER_MASTER_WORKERS", str(workers))
    monkeypatch.delenv("DET_JUPYTER_CLUSTER", raising=False)
    try:
        yield path
    finally:
        stop_all_masters(path)


def stepping(ctx: Any) -> None:
    """Steps of ``hparams["step_seconds"]`` (default 0); validates and checkpoints every 2 steps; resumes
    from its checkpoint."""
    start = 0
    with ctx.checkpoint.restore() as path:
        if path is not None:
            start = int((path / "step").read_text())
    for step in range(start + 1, ctx.searcher.max_time + 1):
        time.sleep(ctx.hparams.get("step_seconds", 0.0))
        ctx.report_training_metrics(step, {"loss": 1.0 / step})
        if step % 2 == 0:
            ctx.report_validation_metrics(step, {"val_loss": abs(ctx.hparams["x"]) + 1.0 / step})
            with ctx.checkpoint.save(step) as out:
                (out / "step").write_text(str(step))
