"""The training loop behind :meth:`TorchTrial.run_trial <det_jupyter.frameworks.torch.TorchTrial.run_trial>`.

Kept apart from the public class so that ``torch.py`` reads as the user's contract and this file as
the mechanics: device moves, restore, the batch loop, validation, checkpoints, RNG state.
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from det_jupyter.frameworks._common import Decision, Progress, Schedule, read_state, write_state

if TYPE_CHECKING:
    from det_jupyter.frameworks.torch import TorchTrial

STATE_DICT_FILE = "state_dict.pt"
MODEL_FILE = "model.pt"
TRAINER_FILE = "trainer.pt"
"""Optimizer, LR scheduler and RNG states: what resuming needs beyond the weights."""

_END = object()


def to_device(obj: Any, device: torch.device) -> Any:
    """Move every tensor in a batch (nested tuples, lists, dicts, namedtuples) to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return type(obj)({k: to_device(v, device) for k, v in obj.items()})  # type: ignore[call-arg]
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(to_device(v, device) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def batch_size(batch: Any) -> int | None:
    """The leading dimension of the first tensor or array in a batch, or ``None`` if it has none."""
    if isinstance(batch, (torch.Tensor, np.ndarray)):
        return int(batch.shape[0]) if batch.ndim else None
    values = (
        batch.values() if isinstance(batch, Mapping) else batch if isinstance(batch, (list, tuple)) else ()
    )
    for value in values:
        size = batch_size(value)
        if size is not None:
            return size
    return None


def rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save_module(model: torch.nn.Module, file: Path) -> None:
    """Pickle the whole module *by value* (cloudpickle), so loading needs none of the user's code."""
    import cloudpickle

    torch.save(model, file, pickle_module=cloudpickle)


class TorchLoop:
    """Runs one trial: restore, train until the searcher's length, validate and checkpoint on schedule."""

    def __init__(self, trial: TorchTrial) -> None:
        self.trial = trial
        self.ctx = trial.context
        self.device = trial.device
        seed_everything(self.ctx.seed)
        self.model = trial.build_model().to(self.device)
        self.optimizer = trial.build_optimizer(self.model)
        self.scheduler = trial.build_lr_scheduler(self.optimizer)
        if trial.lr_scheduler_step not in ("batch", "epoch"):
            raise ValueError(
                f"{type(trial).__name__}.lr_scheduler_step={trial.lr_scheduler_step!r}: use 'batch' or 'epoch'"
            )
        self.train_data = _reiterable(trial.build_training_data(), "build_training_data")
        self.val_data = _reiterable(trial.build_validation_data(), "build_validation_data")
        self.epoch_length = _length(self.train_data)
        self.progress = Progress()
        self.validated_at: int | None = None
        self.epoch_rng: dict[str, Any] | None = None

    def run(self) -> None:
        resume = self._restore()
        schedule = Schedule(self.ctx, self.progress, self.validated_at)
        self.schedule = schedule
        self.model.train()
        if self._act(schedule.decide(self.progress, stop_requested=self.ctx.should_stop())):
            return
        batches = self._resume_iterator(resume)
        while True:
            if batches is None:
                self.epoch_rng = rng_state()  # the epoch's shuffle order follows from it (see restore)
                batches = iter(self.train_data)
            batch = next(batches, _END)
            if batch is _END:
                if self.progress.batch_in_epoch == 0:
                    raise ValueError(
                        f"{type(self.trial).__name__}.build_training_data() yielded no batches in epoch "
                        f"{self.progress.epochs + 1}; return a non-empty DataLoader or list of batches"
                    )
                self._end_epoch()
                batches = None
            else:
                self._train_batch(batch)
                if self._epoch_complete():
                    self._end_epoch()
                    batches = None
            if self._act(schedule.decide(self.progress, stop_requested=self.ctx.should_stop())):
                return

    # --- steps -----------------------------------------------------------------------------------

    def _train_batch(self, batch: Any) -> None:
        size = batch_size(batch) or int(self.trial.hparams.get("global_batch_size", 1))
        out = self.trial.train_batch(self.model, to_device(batch, self.device), self.optimizer)
        metrics = dict(out) if isinstance(out, Mapping) else {"loss": out}
        metrics = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in metrics.items()}
        metrics.setdefault("lr", self.optimizer.param_groups[0]["lr"])
        self.progress.batches += 1
        self.progress.batch_in_epoch += 1
        self.progress.records += size
        self.ctx.report_training_metrics(self.progress.batches, metrics)
        if self.scheduler is not None and self.trial.lr_scheduler_step == "batch":
            self.scheduler.step()

    def _epoch_complete(self) -> bool:
        if self.epoch_length is not None:
            return self.progress.batch_in_epoch >= self.epoch_length
        per_epoch = self.ctx.spec.records_per_epoch  # endless streams: an epoch is this many records
        return per_epoch is not None and self.progress.records - self.progress.epochs * per_epoch >= per_epoch

    def _end_epoch(self) -> None:
        self.progress.end_epoch()
        if self.scheduler is not None and self.trial.lr_scheduler_step == "epoch":
            self.scheduler.step()

    def _act(self, decision: Decision) -> bool:
        if decision.validate:
            self._validate()
        if decision.checkpoint:
            self._save()
        if decision.stopped:
            self.ctx.log(f"stopping at batch {self.progress.batches}: the trial was asked to stop")
        return decision.finish

    def _validate(self) -> None:
        self.model.eval()
        sums: dict[str, Any] = {}
        total = 0
        with torch.no_grad():
            for batch in self.val_data:
                size = batch_size(batch) or 1
                out = self.trial.evaluate_batch(self.model, to_device(batch, self.device))
                for key, value in out.items():
                    value = value.detach().double() if isinstance(value, torch.Tensor) else float(value)
                    sums[key] = sums.get(key, 0.0) + value * size
                total += size
        self.model.train()
        if total == 0:
            raise ValueError(f"{type(self.trial).__name__}.build_validation_data() yielded no batches")
        metrics = {key: float(value / total) for key, value in sums.items()}
        metrics.update(self.progress.metrics(self.epoch_length))
        self.ctx.report_validation_metrics(self.progress.batches, metrics)
        self.schedule.validated(self.progress)

    # --- checkpoints -----------------------------------------------------------------------------

    def _save(self) -> None:
        from det_jupyter.frameworks.torch import FORMAT

        meta = {"format": FORMAT, "framework": "torch", **self.progress.metrics(self.epoch_length)}
        with self.ctx.checkpoint.save(self.progress.batches, metadata=meta) as path:
            torch.save(self.model.state_dict(), path / STATE_DICT_FILE)
            trainer = {
                "optimizer": self.optimizer.state_dict(),
                "lr_scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                "rng": rng_state(),
                "epoch_rng": self.epoch_rng if self.progress.batch_in_epoch else None,
            }
            torch.save(trainer, path / TRAINER_FILE)
            write_state(path, self.progress, validated_at=self.schedule.validated_at, data=self.ctx.data)
            if self.trial.save_whole_model:
                try:
                    save_module(self.model, path / MODEL_FILE)
                except (pickle.PicklingError, TypeError, AttributeError) as exc:
                    (path / MODEL_FILE).unlink(missing_ok=True)
                    self.ctx.log(
                        f"checkpoint at batch {self.progress.batches}: the model could not be pickled by value "
                        f"({exc}); saved its state_dict only (load it with the trial class)"
                    )
        self.schedule.checkpointed(self.progress)

    def _restore(self) -> dict[str, Any] | None:
        with self.ctx.checkpoint.restore() as path:
            if path is None:
                return None
            state = torch.load(path / STATE_DICT_FILE, map_location=self.device, weights_only=False)
            self.model.load_state_dict(state)
            trainer = torch.load(path / TRAINER_FILE, map_location="cpu", weights_only=False)
            self.optimizer.load_state_dict(trainer["optimizer"])
            if self.scheduler is not None and trainer["lr_scheduler"] is not None:
                self.scheduler.load_state_dict(trainer["lr_scheduler"])
            self.progress, self.validated_at, _ = read_state(path)
        self.ctx.log(f"resumed from checkpoint {self.ctx.checkpoint.latest} at batch {self.progress.batches}")
        return dict(trainer)

    def _resume_iterator(self, trainer: dict[str, Any] | None) -> Iterator[Any] | None:
        """Re-create the interrupted epoch's iterator and skip the batches already trained in it.

        The RNG state from the epoch's start is restored first, so a shuffling DataLoader draws the same
        order as before; then the state at the checkpoint, so training continues as if never stopped.
        """
        if trainer is None:
            return None
        batches = None
        if self.progress.batch_in_epoch and trainer.get("epoch_rng") is not None:
            set_rng_state(trainer["epoch_rng"])
            self.epoch_rng = trainer["epoch_rng"]
            batches = iter(self.train_data)
            for _ in range(self.progress.batch_in_epoch):
                if next(batches, _END) is _END:
                    raise ValueError(
                        f"cannot resume at batch {self.progress.batch_in_epoch} of epoch "
                        f"{self.progress.epochs + 1}: build_training_data() now yields fewer batches"
                    )
        set_rng_state(trainer["rng"])
        return batches


def _reiterable(data: Iterable[Any], method: str) -> Iterable[Any]:
    if isinstance(data, Iterator):
        raise TypeError(
            f"{method}() returned a one-pass iterator ({type(data).__name__}); return something that can be "
            "iterated once per epoch: a torch DataLoader, a list of batches, or an object with __iter__"
        )
    return data


def _length(data: Iterable[Any]) -> int | None:
    try:
        return len(data)  # type: ignore[arg-type]
    except TypeError:
        return None
