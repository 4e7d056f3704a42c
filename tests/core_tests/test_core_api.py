"""Determined's Core API shape on det_jupyter's trial context, without a cluster: every call a Core API
script makes, what it sends, and what each bad input does."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import det_jupyter as det
from det_jupyter.worker.bridge import BridgeServer
from det_jupyter.worker.context import local_context, running


def test_notebook_ctx_and_core_init_are_the_same_object() -> None:
    ctx = local_context({"lr": 0.1}, metric="loss")
    with running(ctx), det.core.init() as core_context:
        assert core_context is ctx
        info = det.get_cluster_info()
    assert info is not None and info.trial.hparams == {"lr": 0.1} and info.latest_checkpoint is None
    assert info.slot_ids == [0] and info.container_rank == 0 and len(info.container_addrs) == 1
    assert det.get_cluster_info() is None  # outside the trial again


def test_train_context_reports_reach_the_same_sink_as_the_short_names() -> None:
    ctx = local_context({}, metric="val_loss")
    ctx.train.report_training_metrics(steps_completed=10, metrics={"loss": 0.5})
    ctx.report_training_metrics(20, {"loss": 0.4})
    ctx.train.report_validation_metrics(steps_completed=20, metrics={"val_loss": 0.3})
    ctx.train.report_metrics("inference", steps_completed=20, metrics={"latency": 3.0})
    assert [r["steps"] for r in ctx.sink.training] == [10, 20, 20]
    assert ctx.sink.training[-1]["metrics"] == {"inference/latency": 3.0}
    assert ctx.sink.validation == [{"steps": 20, "metrics": {"val_loss": 0.3}}]
    with pytest.raises(ValueError, match="lacks the searcher metric 'val_loss'"):
        ctx.train.report_validation_metrics(steps_completed=30, metrics={"acc": 1.0})
    with pytest.raises(ValueError, match="between 0 and 1"):
        ctx.train.report_progress(1.5)


def test_store_path_restore_path_upload_download(tmp_path: Path) -> None:
    ctx = local_context({}, checkpoint_dir=str(tmp_path / "ckpts"))
    with ctx.checkpoint.store_path({"steps_completed": 4, "epoch": 1}) as (path, storage_id):
        (path / "state.txt").write_text("4")
    assert ctx.checkpoint.latest == storage_id
    with ctx.checkpoint.restore_path(storage_id) as restored:
        assert (restored / "state.txt").read_text() == "4"
    meta = ctx.checkpoint.get_metadata(storage_id)
    assert meta["steps_completed"] == 4 and meta["epoch"] == 1
    src = tmp_path / "src"
    src.mkdir()
    (src / "w.bin").write_bytes(b"abc")
    uploaded = ctx.checkpoint.upload(src, {"steps_completed": 8})
    ctx.checkpoint.download(uploaded, tmp_path / "dst")
    assert (tmp_path / "dst" / "w.bin").read_bytes() == b"abc"
    saved = [e for e in ctx.sink.events if e["type"] == "checkpoint"]
    assert [(e["uuid"], e["steps"]) for e in saved] == [(storage_id, 4), (uploaded, 8)]
    with pytest.raises(ValueError, match="steps_completed"), ctx.checkpoint.store_path({"epoch": 2}):
        pass
    with pytest.raises(FileNotFoundError, match="not a directory"):
        ctx.checkpoint.upload(tmp_path / "missing", {"steps_completed": 1})


def test_preempt_and_searcher_operations() -> None:
    ctx = local_context({}, metric="loss", max_time=50)
    assert ctx.preempt.should_preempt() is False
    ctx._stop.set()
    assert ctx.preempt.should_preempt() is True and ctx.should_stop() is True
    ops = list(ctx.searcher.operations())
    assert [op.length for op in ops] == [50]
    ctx.report_validation_metrics(50, {"loss": 0.2})
    ops[0].report_completed(0.2)  # already reported at the operation's length: not sent twice
    assert len(ctx.sink.validation) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_distributed_collectives_over_loopback_ranks() -> None:
    size, port = 3, _free_port()
    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def rank(r: int) -> None:
        try:
            dist = det.core.DistributedContext(
                rank=r,
                size=size,
                local_rank=r % 2,
                local_size=2,
                cross_rank=r // 2,
                cross_size=2,
                chief_ip="127.0.0.1",
                pub_port=port,
            )
            results[r] = (
                dist.allgather(r * 10),
                dist.gather(f"r{r}"),
                dist.broadcast("chief" if r == 0 else "ignored"),
                dist.allgather_local(r),
                dist.broadcast_local(r),
            )
            dist.close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert results[0] == ([0, 10, 20], ["r0", "r1", "r2"], "chief", [0, 1], 0)
    assert results[1] == ([0, 10, 20], None, "chief", [0, 1], 0)
    assert results[2] == ([0, 10, 20], None, "chief", [2], 2)


def test_distributed_context_rejects_bad_ranks() -> None:
    with pytest.raises(ValueError, match="0 <= rank < size"):
        det.core.DistributedContext(rank=2, size=2, chief_ip="127.0.0.1")
    with pytest.raises(ValueError, match="needs chief_ip"):
        det.core.DistributedContext(rank=0, size=2)


SCRIPT = textwrap.dedent(
    """
    import sys, time
    import det_jupyter as det

    info = det.get_cluster_info()
    with det.core.init() as core_context:
        core_context.train.report_training_metrics(steps_completed=1, metrics={"loss": info.trial.hparams["lr"]})
        with core_context.checkpoint.store_path({"steps_completed": 1}) as (path, storage_id):
            (path / "w").write_text("1")
        print("saved", storage_id, flush=True)
        while not core_context.preempt.should_preempt():
            time.sleep(0.02)
        print("preempted", flush=True)
    """
)


def test_a_command_process_reaches_its_trial_through_the_bridge(tmp_path: Path, wait_for: Any) -> None:
    parent = local_context({"lr": 0.25}, metric="loss", checkpoint_dir=str(tmp_path / "ckpts"))
    with BridgeServer(parent) as bridge:
        import os

        env = {**os.environ, **bridge.env()}
        proc = subprocess.Popen(
            [sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        wait_for(
            lambda: any(e["type"] == "checkpoint" for e in parent.sink.events), timeout=60, what="checkpoint"
        )
        parent._stop.set()  # the searcher / a pause: relayed to the process's should_preempt()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "preempted" in out
    assert parent.sink.training == [{"steps": 1, "metrics": {"loss": 0.25}}]
    seqs = [e["seq"] for e in parent.sink.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # renumbered into the parent's run
    (ckpt,) = [e for e in parent.sink.events if e["type"] == "checkpoint"]
    assert (tmp_path / "ckpts" / ckpt["uuid"] / "w").read_text() == "1"
