"""Training workloads shared by the benchmarks: the same loop run bare, as a TorchTrial, as Core API code.

Each benchmark that ships these to Dask workers registers this module for pickling by value
(``cloudpickle.register_pickle_by_value``), as det_jupyter does for notebook code, so workers need
no ``bench/`` on their path.

Timing is identical on every side: :class:`TimedBatches` is the training data. It yields ``steps``
batches (cycling over a few pre-made ones, already on the device) and records the time when batch
``warmup`` is handed out and when it is exhausted, so the measured window holds exactly
``steps - warmup`` trained batches (with their reports) and nothing else: no model build, no
validation, no final checkpoint. It has no ``len()``, so every loop runs it to exhaustion.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

__all__ = [
    "MODELS",
    "TimedBatches",
    "bare_loop",
    "bare_task",
    "core_train",
    "make_batches",
    "make_model",
    "trial_class",
]

MODELS = {
    # name: (input shape, batch size on CPU, batch size on GPU)
    "mlp": ((784,), 64, 512),
    "cnn": ((3, 32, 32), 64, 256),
}


def make_model(name: str, *, width: int | None = None) -> Any:
    from torch import nn

    if name == "mlp":
        h = width or 256
        return nn.Sequential(nn.Linear(784, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 10))
    if name == "cnn":  # a small CIFAR-shaped CNN
        return nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10),
        )  # fmt: skip
    if name == "big":  # ~100 MB of fp32 weights (checkpoint benchmarks)
        return nn.Sequential(nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 2048), nn.ReLU(),
                             nn.Linear(2048, 10))  # fmt: skip
    raise ValueError(name)


def make_batches(name: str, batch: int, device: str, count: int = 16, seed: int = 0) -> list[Any]:
    import torch

    gen = torch.Generator().manual_seed(seed)
    shape = MODELS[name][0] if name in MODELS else (4096,)
    out = []
    for _ in range(count):
        x = torch.randn(batch, *shape, generator=gen)
        y = torch.randint(0, 10, (batch,), generator=gen)
        out.append((x.to(device), y.to(device)))
    return out


class TimedBatches:
    """Training data that times itself: ``steps`` batches per epoch, cycling over ``batches``."""

    last: TimedBatches | None = None
    """The most recently made instance (in this process)."""

    def __init__(self, batches: list[Any], steps: int, warmup: int) -> None:
        TimedBatches.last = self
        self.batches, self.steps, self.warmup = batches, steps, warmup
        self.batch_size = int(batches[0][0].shape[0])
        self.t_start: float | None = None
        self.t_end: float | None = None
        self.cpu_start: float | None = None  # process CPU time (every thread: det_jupyter's too)
        self.cpu_end: float | None = None
        self.epoch_ends: list[float] = []

    def __iter__(self) -> Iterator[Any]:
        sync = _sync_fn(self.batches[0][0])
        for i in range(self.steps):
            if i == self.warmup and self.t_start is None:
                sync()
                self.t_start = time.perf_counter()
                self.cpu_start = time.process_time()
            yield self.batches[i % len(self.batches)]
        sync()
        self.t_end = time.perf_counter()
        self.cpu_end = time.process_time()
        self.epoch_ends.append(self.t_end)

    @property
    def seconds(self) -> float:
        assert self.t_start is not None and self.t_end is not None
        return self.t_end - self.t_start

    @property
    def samples_per_s(self) -> float:
        return (self.steps - self.warmup) * self.batch_size / self.seconds

    @property
    def samples_per_cpu_s(self) -> float:
        """Samples per second of this process's CPU time (all threads) in the window.

        Other processes' load on a shared machine stretches wall time, not this; what det_jupyter adds
        in its own threads (report buffering, flushes, checkpoint writers) counts. Waits do not.
        """
        assert self.cpu_start is not None and self.cpu_end is not None
        return (self.steps - self.warmup) * self.batch_size / max(self.cpu_end - self.cpu_start, 1e-9)


def _sync_fn(tensor: Any) -> Any:
    """Synchronise the device at the window's edges only (a no-op on CPU)."""
    import torch

    if tensor.is_cuda:
        return torch.cuda.synchronize
    return lambda: None


def _train_step(model: Any, batch: Any, optimizer: Any) -> Any:
    import torch.nn.functional as F

    x, y = batch
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


def _setup(params: dict[str, Any]) -> tuple[Any, Any, Any]:
    import torch

    device = params.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = make_model(params["model"]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = TimedBatches(
        make_batches(params["model"], params["batch"], device), params["steps"], params["warmup"]
    )
    return model, optimizer, data


def bare_loop(params: dict[str, Any]) -> dict[str, float]:
    """(a) the loop with no det_jupyter at all."""
    model, optimizer, data = _setup(params)
    model.train()
    for batch in data:
        _train_step(model, batch, optimizer)
    assert data.t_start is not None and data.t_end is not None
    return {"samples_per_s": data.samples_per_s, "seconds": data.seconds, "t_start": data.t_start,
            "t_end": data.t_end, "samples": (data.steps - data.warmup) * data.batch_size}  # fmt: skip


def bare_task(params: dict[str, Any]) -> dict[str, float]:
    """The bare loop as a plain Dask task (the anchor of a real trial on the same worker)."""
    import os

    import torch

    torch.set_num_threads(int(params.get("threads") or 1))
    out = bare_loop(params)
    out["pid"] = os.getpid()
    return out


def core_train(ctx: Any) -> None:
    """(c) Core API: the bare loop plus ``report_training_metrics`` every step, a validation at the end."""
    import torch

    params = dict(ctx.hparams)
    torch.set_num_threads(int(params.get("threads") or 1))
    model, optimizer, data = _setup(params)
    model.train()
    step = 0
    for batch in data:
        loss = _train_step(model, batch, optimizer)
        step += 1
        ctx.report_training_metrics(step, {"loss": loss.detach()})
        if ctx.should_stop():
            break
    ctx.report_validation_metrics(
        step, {"val_loss": float(loss.detach()), "samples_per_s": data.samples_per_s}
    )
    core_train.last_data = data  # type: ignore[attr-defined]


def _trial_class() -> Any:
    from det_jupyter.torch import TorchTrial

    class BenchTorchTrial(TorchTrial):
        """(b) the same model, optimizer and data through TorchTrial (default train_batch: the same step)."""

        last_data: TimedBatches | None = None
        save_whole_model = True

        def build_model(self) -> Any:
            import torch

            torch.set_num_threads(int(self.hparams.get("threads") or 1))
            torch.manual_seed(0)
            return make_model(self.hparams["model"])

        def build_optimizer(self, model: Any) -> Any:
            import torch

            return torch.optim.Adam(model.parameters(), lr=1e-3)

        def build_training_data(self) -> Any:
            p = self.hparams
            data = TimedBatches(
                make_batches(p["model"], p["batch"], str(self.device)), p["steps"], p["warmup"]
            )
            type(self).last_data = data
            self._timed = data
            return data

        def build_validation_data(self) -> Any:
            p = self.hparams
            return make_batches(p["model"], p["batch"], str(self.device), count=1, seed=1)

        def evaluate_batch(self, model: Any, batch: Any) -> dict[str, Any]:
            out = super().evaluate_batch(model, batch)
            if self._timed.t_end is not None:  # perf_counter is CLOCK_MONOTONIC: comparable across processes
                out["samples_per_s"] = self._timed.samples_per_s
                out["t_start"], out["t_end"] = self._timed.t_start, self._timed.t_end
            return out

    return BenchTorchTrial


_TRIAL_CLASS: Any = None


def trial_class() -> Any:
    """The TorchTrial subclass (built on first use: importing det_jupyter.torch imports torch)."""
    global _TRIAL_CLASS
    if _TRIAL_CLASS is None:
        _TRIAL_CLASS = _trial_class()
    return _TRIAL_CLASS
