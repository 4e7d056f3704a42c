"""The trial context user code receives, and the worker-side helpers around it (output capture, entry points).

Everything here runs in-process: a :class:`ListSink` stands in for the Dask event topic.
"""

from __future__ import annotations

import io
import math
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import det_jupyter.worker.context as context_module
from det_jupyter.checkpoints import CheckpointStorage
from det_jupyter.worker.context import (
    ListSink,
    StopFlag,
    TrialContext,
    TrialSpec,
    local_context,
    metric_value,
)
from det_jupyter.worker.runtime import _captured_output, _newest_checkpoint, call_entrypoint


def _spec(tmp_path: Path, **overrides: Any) -> TrialSpec:
    values: dict[str, Any] = {
        "experiment_id": 3,
        "trial_id": 4,
        "run_id": 1,
        "hparams": {"lr": 0.1, "layers": {"n": 2}},
        "metric": "val_loss",
        "smaller_is_better": True,
        "time_metric": "batches",
        "max_time": 100,
        "storage_url": str(tmp_path / "checkpoints"),
    }
    values.update(overrides)
    return TrialSpec(**values)


def _context(
    tmp_path: Path, *, flush_interval: float = 3600.0, **overrides: Any
) -> tuple[TrialContext, ListSink]:
    sink = ListSink()
    return TrialContext(_spec(tmp_path, **overrides), sink, flush_interval=flush_interval), sink


def _log_lines(sink: ListSink) -> list[str]:
    return [line for ev in sink.events if ev["type"] == "log" for _, line in ev["lines"]]


# --- local_context and reporting ---------------------------------------------------------------------


def test_local_context_runs_user_code_in_the_kernel(tmp_path: Path) -> None:
    ctx = local_context(
        {"lr": 0.01},
        metric="val_acc",
        smaller_is_better=False,
        time_metric="epochs",
        max_time=7,
        checkpoint_dir=str(tmp_path),
        data={"url": "s3://x"},
    )
    assert ctx.hparams == {"lr": 0.01}
    assert ctx.data == {"url": "s3://x"}
    assert (ctx.searcher.metric, ctx.searcher.smaller_is_better) == ("val_acc", False)
    assert (ctx.searcher.time_metric, ctx.searcher.max_time, ctx.searcher.max_length) == ("epochs", 7, 7)
    assert ctx.distributed.is_chief and ctx.distributed.size == 1
    assert isinstance(ctx.sink, ListSink)

    for step in (1, 2, 3):
        ctx.report_training_metrics(step, {"loss": np.float32(1.0 / step), "lr": 0.01})
    ctx.report_validation_metrics(3, {"val_acc": 0.75, "val_loss": np.float64(0.25)})

    assert ctx.sink.training == [
        {"steps": 1, "metrics": {"loss": 1.0, "lr": 0.01}},
        {"steps": 2, "metrics": {"loss": 0.5, "lr": 0.01}},
        {"steps": 3, "metrics": {"loss": pytest.approx(1 / 3), "lr": 0.01}},
    ]
    assert ctx.sink.validation == [{"steps": 3, "metrics": {"val_acc": 0.75, "val_loss": 0.25}}]
    assert type(ctx.sink.training[0]["metrics"]["loss"]) is float  # converted from numpy when flushed


def test_training_metrics_are_buffered_and_flushed_before_a_validation(tmp_path: Path) -> None:
    ctx, sink = _context(tmp_path)
    ctx.report_training_metrics(1, {"loss": 0.9})
    ctx.report_training_metrics(2, {"loss": 0.8})
    assert sink.events == []  # buffered, nothing sent yet

    ctx.report_validation_metrics(2, {"val_loss": 0.7})
    assert len(sink.events) == 1  # one event: training first, then the validation the searcher waits for
    records = sink.events[0]["records"]
    assert [(r[0], r[1], r[2]) for r in records] == [
        ("training", 1, {"loss": 0.9}),
        ("training", 2, {"loss": 0.8}),
        ("validation", 2, {"val_loss": 0.7}),
    ]
    assert all(isinstance(r[3], float) for r in records)  # report timestamps


def test_training_metrics_flush_when_the_interval_has_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(
        context_module, "time", types.SimpleNamespace(monotonic=lambda: now[0], time=time.time)
    )
    ctx, sink = _context(tmp_path, flush_interval=5.0)
    ctx.report_training_metrics(1, {"loss": 1.0})
    now[0] += 4.9
    ctx.report_training_metrics(2, {"loss": 0.5})
    assert sink.events == []
    now[0] += 0.2  # 5.1 s since the context was made
    ctx.report_training_metrics(3, {"loss": 0.25})
    assert [r["steps"] for r in sink.training] == [1, 2, 3]
    ctx.report_training_metrics(4, {"loss": 0.2})  # the interval starts again at the flush
    assert len(sink.events) == 1
    ctx._close()  # the runtime flushes what is left when user code returns
    assert [r["steps"] for r in sink.training] == [1, 2, 3, 4]
    assert len(sink.events) == 2


def test_validation_must_carry_the_searcher_metric(tmp_path: Path) -> None:
    ctx, sink = _context(tmp_path, metric="val_acc")
    ctx.report_training_metrics(1, {"loss": 0.5})
    with pytest.raises(ValueError) as info:
        ctx.report_validation_metrics(10, {"val_loss": 0.3, "accuracy": 0.9})
    message = str(info.value)
    assert "'val_acc'" in message
    assert "steps=10" in message
    assert "['accuracy', 'val_loss']" in message  # what was reported instead
    assert "searcher.metric" in message  # the fix
    ctx._close()
    assert sink.validation == []
    assert [r["steps"] for r in sink.training] == [1]  # the bad call dropped nothing else


@pytest.mark.parametrize("steps", [-1, 1.5, True, "3", None])
@pytest.mark.parametrize("method", ["report_training_metrics", "report_validation_metrics"])
def test_bad_steps_are_refused_with_the_value(tmp_path: Path, method: str, steps: Any) -> None:
    ctx, sink = _context(tmp_path)
    with pytest.raises(ValueError, match=rf"{method}\(steps={steps!r}\).*non-negative int"):
        getattr(ctx, method)(steps, {"val_loss": 1.0})
    ctx._close()
    assert sink.events == []


@pytest.mark.parametrize("metrics", [{}, [("loss", 1.0)], 0.5, None])
@pytest.mark.parametrize("method", ["report_training_metrics", "report_validation_metrics"])
def test_bad_metrics_are_refused_with_the_value(tmp_path: Path, method: str, metrics: Any) -> None:
    ctx, sink = _context(tmp_path)
    with pytest.raises(ValueError) as info:
        getattr(ctx, method)(5, metrics)
    assert f"{method}(steps=5)" in str(info.value)
    assert "non-empty dict" in str(info.value)
    assert f"(got {metrics!r})" in str(info.value)
    ctx._close()
    assert sink.events == []


def test_a_value_that_is_no_number_fails_the_report(tmp_path: Path) -> None:
    ctx = local_context({}, checkpoint_dir=str(tmp_path))
    with pytest.raises(TypeError, match="type object"):
        ctx.report_training_metrics(1, {"loss": object()})


# --- metric_value ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected", "kind"),
    [
        (3, 3, int),
        (-2, -2, int),
        (0.5, 0.5, float),
        (float("nan"), None, type(None)),
        (float("inf"), None, type(None)),
        (-math.inf, None, type(None)),
        (np.float32(0.5), 0.5, float),
        (np.float64(2.25), 2.25, float),
        (np.int64(7), 7, int),
        (np.float64("nan"), None, type(None)),
        (np.array(1.5), 1.5, float),
        (True, True, bool),
        (False, False, bool),
        ("resnet", "resnet", str),
        (None, None, type(None)),
    ],
)
def test_metric_value_converts_numbers(value: Any, expected: Any, kind: type) -> None:
    got = metric_value(value)
    assert got == expected
    assert type(got) is kind


def test_metric_value_of_0d_torch_tensors() -> None:
    import torch

    assert metric_value(torch.tensor(1.5)) == 1.5
    assert type(metric_value(torch.tensor(1.5))) is float
    assert metric_value(torch.tensor(4)) == 4
    assert type(metric_value(torch.tensor(4))) is int
    assert metric_value(torch.tensor(float("nan"))) is None
    with pytest.raises(TypeError, match="type Tensor is not a number"):
        metric_value(torch.tensor([1.0, 2.0]))


@pytest.mark.parametrize(
    ("value", "type_name"),
    [(object(), "object"), ([1.0], "list"), ({"a": 1}, "dict"), (np.array([1.0, 2.0]), "ndarray")],
)
def test_metric_value_refuses_what_is_not_a_number(value: Any, type_name: str) -> None:
    with pytest.raises(TypeError) as info:
        metric_value(value)
    assert f"of type {type_name} is not a number" in str(info.value)
    assert "0-d tensors" in str(info.value)


# --- checkpoints -------------------------------------------------------------------------------------


def test_checkpoint_save_and_restore_round_trip(tmp_path: Path) -> None:
    ctx, sink = _context(tmp_path)
    assert ctx.checkpoint.latest is None and ctx.checkpoint.latest_steps == 0
    with ctx.checkpoint.restore() as path:
        assert path is None  # a fresh start

    ctx.report_training_metrics(5, {"loss": 0.5})
    with ctx.checkpoint.save(steps=5, metadata={"framework": "torch", "epoch": np.int64(1)}) as path:
        (path / "model.pt").write_bytes(b"weights-5")
    first = ctx.checkpoint.latest
    assert first is not None and ctx.checkpoint.latest_steps == 5

    storage = CheckpointStorage(str(tmp_path / "checkpoints"))
    assert storage.exists(first)
    meta = storage.metadata(first)
    assert meta["steps"] == 5 and meta["framework"] == "torch" and meta["epoch"] == 1
    assert (meta["experiment_id"], meta["trial_id"], meta["hparams"]) == (
        3,
        4,
        {"lr": 0.1, "layers": {"n": 2}},
    )
    assert storage.read_latest(3, 4) == (first, 5)

    # the buffered training metrics went out before the checkpoint event
    assert [ev["type"] for ev in sink.events] == ["metrics", "checkpoint"]
    event = sink.events[1]
    assert (event["uuid"], event["steps"], event["resources"]) == (first, 5, {"model.pt": 9})
    assert event["metadata"] == {"framework": "torch", "epoch": 1}
    assert type(event["metadata"]["epoch"]) is int  # msgpack-safe

    with ctx.checkpoint.save(steps=10) as path:
        (path / "model.pt").write_bytes(b"weights-10")
    second = ctx.checkpoint.latest
    assert second not in (None, first) and ctx.checkpoint.latest_steps == 10
    assert storage.read_latest(3, 4) == (second, 10)
    with ctx.checkpoint.restore() as path:
        assert path is not None
        assert (path / "model.pt").read_bytes() == b"weights-10"
    assert storage.exists(first)  # the context never deletes; that is the GC policy's job


def test_checkpoint_restore_in_a_new_run_of_the_trial(tmp_path: Path) -> None:
    ctx, _ = _context(tmp_path)
    with ctx.checkpoint.save(steps=20) as path:
        (path / "state.txt").write_text("20")
    resumed, _ = _context(
        tmp_path, run_id=2, latest_checkpoint=ctx.checkpoint.latest, latest_checkpoint_steps=20
    )
    assert resumed.checkpoint.latest_steps == 20
    with resumed.checkpoint.restore() as path:
        assert path is not None and (path / "state.txt").read_text() == "20"


def test_an_exception_inside_checkpoint_save_commits_nothing(tmp_path: Path) -> None:
    ctx, sink = _context(tmp_path)
    with ctx.checkpoint.save(steps=1) as path:
        (path / "ok.txt").write_text("1")
    committed = ctx.checkpoint.latest
    events_before = list(sink.events)

    with pytest.raises(OSError, match="disk full"), ctx.checkpoint.save(steps=2) as path:
        (path / "half.bin").write_bytes(b"x" * 100)
        raise OSError("disk full")

    assert ctx.checkpoint.latest == committed and ctx.checkpoint.latest_steps == 1
    assert sink.events == events_before  # no checkpoint event
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == sorted([committed, "latest"])  # no staging left over
    assert CheckpointStorage(str(root)).read_latest(3, 4) == (committed, 1)


def test_checkpoint_save_refuses_negative_steps(tmp_path: Path) -> None:
    ctx, _ = _context(tmp_path)
    with pytest.raises(ValueError, match=r"ctx.checkpoint.save\(steps=-3\)"), ctx.checkpoint.save(steps=-3):
        pass
    assert ctx.checkpoint.latest is None


# --- stop flag and events ----------------------------------------------------------------------------


def test_should_stop_reflects_the_stop_flag(tmp_path: Path) -> None:
    flag = StopFlag()
    ctx = TrialContext(_spec(tmp_path), ListSink(), flag)
    assert not ctx.should_stop()
    setter = threading.Thread(target=flag.set)  # the controller sets it from another thread
    setter.start()
    setter.join(timeout=10)
    assert flag.is_set()
    assert ctx.should_stop()

    own = TrialContext(_spec(tmp_path), ListSink())  # no flag given: never stopped
    assert not own.should_stop()


def test_events_carry_increasing_seq_and_are_counted(tmp_path: Path) -> None:
    ctx, sink = _context(tmp_path, flush_interval=0.0)
    assert ctx.events_sent == 0
    ctx.report_training_metrics(1, {"loss": 1.0})
    ctx.log("hello")
    ctx.report_validation_metrics(1, {"val_loss": 0.5})
    with ctx.checkpoint.save(steps=1) as path:
        (path / "f").write_text("x")
    ctx._close()  # nothing buffered: sends nothing

    assert [ev["type"] for ev in sink.events] == ["metrics", "log", "metrics", "checkpoint"]
    assert [ev["seq"] for ev in sink.events] == [1, 2, 3, 4]
    assert ctx.events_sent == len(sink.events) == 4
    assert all(ev["trial_id"] == 4 and ev["run_id"] == 1 for ev in sink.events)
    assert sink.events[1]["lines"][0][1] == "hello"


def test_seq_is_unique_when_several_threads_emit(tmp_path: Path) -> None:
    ctx, sink = _context(tmp_path)
    start = threading.Barrier(4)

    def log_many() -> None:
        start.wait(timeout=10)
        for i in range(200):
            ctx.log(str(i))

    threads = [threading.Thread(target=log_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(ev["seq"] for ev in sink.events) == list(range(1, 801))
    assert ctx.events_sent == 800


# --- output capture (runtime) ------------------------------------------------------------------------


def _fake_streams(monkeypatch: pytest.MonkeyPatch) -> tuple[io.StringIO, io.StringIO]:
    """Stand-ins for the worker's stdout/stderr; the router installed over them is undone afterwards.

    Called in the test body: pytest re-installs its own capture streams between a fixture's setup and
    the test call.
    """
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    return out, err


def test_captured_output_forwards_the_trial_thread_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, err = _fake_streams(monkeypatch)
    ctx, sink = _context(tmp_path)
    with _captured_output(ctx):
        print("epoch 1")
        print("warning: slow", file=sys.stderr)
        other = threading.Thread(target=lambda: print("from another thread"))
        other.start()
        other.join(timeout=10)
        sys.stdout.write("no newline yet")
    print("after the trial")
    for _ in range(600):  # enough to trigger a batch, had the capture outlived its block
        print("x", file=sys.stderr)

    assert _log_lines(sink) == ["epoch 1", "warning: slow", "no newline yet"]
    assert all(ev["type"] == "log" and ev["trial_id"] == 4 for ev in sink.events)
    assert all(isinstance(ts, float) for ev in sink.events for ts, _ in ev["lines"])
    # everything still reaches the real streams
    assert out.getvalue() == "epoch 1\nfrom another thread\nno newline yetafter the trial\n"
    assert err.getvalue() == "warning: slow\n" + "x\n" * 600


def test_captured_output_sends_big_outputs_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_streams(monkeypatch)
    ctx, sink = _context(tmp_path)
    with _captured_output(ctx):
        for i in range(500):
            print(f"line {i}")
        assert len(sink.events) >= 1  # sent while the trial still runs, not only at its end
        print("last")
    assert _log_lines(sink) == [f"line {i}" for i in range(500)] + ["last"]


def test_two_trial_threads_capture_their_own_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_streams(monkeypatch)
    contexts = [_context(tmp_path, trial_id=i) for i in (1, 2)]
    both_inside = threading.Barrier(2)

    def run(index: int) -> None:
        ctx, _ = contexts[index]
        with _captured_output(ctx):
            both_inside.wait(timeout=10)  # both captures are installed at once
            for i in range(20):
                print(f"trial {index} line {i}")
            both_inside.wait(timeout=10)

    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for index, (_, sink) in enumerate(contexts):
        assert _log_lines(sink) == [f"trial {index} line {i}" for i in range(20)]


# --- entry points and restarts (runtime) --------------------------------------------------------------


def test_call_entrypoint_on_a_function(tmp_path: Path) -> None:
    ctx, _ = _context(tmp_path)
    seen: list[Any] = []
    call_entrypoint(seen.append, ctx)
    assert seen == [ctx]


def test_call_entrypoint_on_a_trial_class(tmp_path: Path) -> None:
    ctx, _ = _context(tmp_path)

    class MyTrial:
        ran_with: list[Any] = []

        def __init__(self, *args: Any) -> None:
            raise AssertionError("a trial class is run through run_trial, not instantiated with the context")

        @classmethod
        def run_trial(cls, context: Any) -> None:
            cls.ran_with.append(context)

    call_entrypoint(MyTrial, ctx)
    assert MyTrial.ran_with == [ctx]


@pytest.mark.parametrize("entrypoint", [42, "train", None])
def test_call_entrypoint_refuses_what_cannot_run(tmp_path: Path, entrypoint: Any) -> None:
    ctx, _ = _context(tmp_path)
    with pytest.raises(TypeError) as info:
        call_entrypoint(entrypoint, ctx)
    message = str(info.value)
    assert f"entrypoint {entrypoint!r} is neither a function" in message
    assert "TorchTrial" in message


def _commit(storage: CheckpointStorage, uuid: str, steps: int, *, trial_id: int = 4) -> None:
    with storage.stage(uuid) as path:
        (path / "f").write_text(str(steps))
        storage.commit(uuid, path, {"steps": steps})
    storage.write_latest(3, trial_id, uuid, steps)


def test_newest_checkpoint_prefers_a_newer_storage_pointer(tmp_path: Path) -> None:
    storage = CheckpointStorage(str(tmp_path / "checkpoints"))
    fresh = _spec(tmp_path)
    assert _newest_checkpoint(fresh) == fresh  # no pointer: nothing changes

    _commit(storage, "old", 5)
    _commit(storage, "new", 10)
    # Dask re-ran a task whose arguments still name the older checkpoint, or none
    for stale in (_spec(tmp_path, latest_checkpoint="old", latest_checkpoint_steps=5), fresh):
        got = _newest_checkpoint(stale)
        assert (got.latest_checkpoint, got.latest_checkpoint_steps) == ("new", 10)
        assert (got.trial_id, got.run_id, got.hparams) == (stale.trial_id, stale.run_id, stale.hparams)

    for current in (
        _spec(tmp_path, latest_checkpoint="new", latest_checkpoint_steps=10),
        _spec(tmp_path, latest_checkpoint="newer", latest_checkpoint_steps=20),
    ):
        assert _newest_checkpoint(current) == current  # the spec is as new or newer: kept

    assert _newest_checkpoint(_spec(tmp_path, trial_id=99)) == _spec(tmp_path, trial_id=99)  # per trial
    storage.delete("new")  # a pointer to a deleted checkpoint is ignored
    old = _spec(tmp_path, latest_checkpoint="old", latest_checkpoint_steps=5)
    assert _newest_checkpoint(old) == old


def test_one_flusher_thread_sends_quiet_output_of_every_run_and_sleeps_between_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A print with nothing after it still reaches the log while the trial runs, through the worker
    process's one flusher thread (not a thread per run); it goes back to sleep once no trial runs."""
    from det_jupyter.worker import runtime

    _fake_streams(monkeypatch)
    flusher = runtime._QuietOutputFlusher(period=0.01, linger=0.05)
    monkeypatch.setattr(runtime, "_flusher", flusher)
    threads_before = {t.ident for t in threading.enumerate()}
    for trial_id in (1, 2, 3):
        ctx, sink = _context(tmp_path, trial_id=trial_id)
        with _captured_output(ctx):
            print(f"quiet line of trial {trial_id}")
            deadline = time.monotonic() + 10
            while not sink.events and time.monotonic() < deadline:  # a wait on a condition
                time.sleep(0.005)
            assert _log_lines(sink) == [f"quiet line of trial {trial_id}"]  # sent before the run ended
        assert _log_lines(sink) == [f"quiet line of trial {trial_id}"]  # and nothing after it
    new_threads = [t for t in threading.enumerate() if t.ident not in threads_before]
    assert [t.name for t in new_threads] == ["det-jupyter-log-flush"]  # one for all three runs
    deadline = time.monotonic() + 10
    while not flusher._sleeping and time.monotonic() < deadline:
        time.sleep(0.005)
    assert flusher._sleeping and not flusher._forwarders
    ctx, sink = _context(tmp_path, trial_id=4)
    with _captured_output(ctx):  # a trial after the sleep wakes it
        print("after the sleep")
        deadline = time.monotonic() + 10
        while not sink.events and time.monotonic() < deadline:
            time.sleep(0.005)
    assert _log_lines(sink) == ["after the sleep"]
