"""The training loop behind :meth:`TorchTrial.run_trial <det_jupyter.frameworks.torch.TorchTrial.run_trial>`.

Kept apart from the public class so that ``torch.py`` reads as the user's contract and this file as
the mechanics: device moves, restore, the batch loop, validation, checkpoints, RNG state. When to
validate, checkpoint, report and finish is :class:`~det_jupyter.frameworks._common.Schedule`'s to say.

Checkpoints block the loop only for a snapshot (device→host copies of the weights, optimizer and RNG
state); serialising and writing the files and the atomic commit run on a writer thread (one write in
flight at a time), unless the trial sets ``checkpoint_in_background = False``. A checkpoint still counts
only once committed: its event is sent after the commit, the loop waits for the write in flight before
starting the next one and before returning (so a trial never reports its exit before its last
checkpoint), and a failed write fails the trial at that point, like a failed synchronous save.

With several slots (``ctx.distributed.size > 1``) every rank runs this loop: the model is wrapped in
``DistributedDataParallel`` after the restore, data and metrics go through
:mod:`~det_jupyter.frameworks._torch_ddp`, every rank takes the same decisions at the same batches
(same progress, the chief's stop flag), and only the chief reports and writes checkpoints (the
unwrapped module's weights, so they load in one process).
"""

from __future__ import annotations

import copy
import io
import pickle
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from det_jupyter.frameworks._common import (
    Decision,
    Progress,
    Schedule,
    TrainingMeans,
    is_warm_start,
    read_best_validation,
    read_state,
    trial_owner,
    write_state,
)
from det_jupyter.frameworks._torch_ddp import RankReports, Ranks, batch_size
from det_jupyter.frameworks._torch_files import MODULE_FILE, STATE_DICT_FILE, save_structure

if TYPE_CHECKING:
    from det_jupyter.frameworks.torch import TorchTrial

TRAINER_FILE = "trainer.pt"
"""Optimizer, LR scheduler and RNG states: what resuming needs beyond the weights."""

_END = object()


def to_device(obj: Any, device: torch.device) -> Any:
    """Move every tensor in a batch (nested tuples, lists, dicts, namedtuples) to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj if obj.device == device else obj.to(device, non_blocking=True)
    if type(obj) is tuple:  # the common (inputs, targets), already on the device: as it is
        for value in obj:
            if not (isinstance(value, torch.Tensor) and value.device == device):
                return tuple([to_device(v, device) for v in obj])
        return obj
    if type(obj) is list:
        return [to_device(v, device) for v in obj]
    if isinstance(obj, Mapping):
        return type(obj)({k: to_device(v, device) for k, v in obj.items()})  # type: ignore[call-arg]
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(to_device(v, device) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


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


_UNPICKLABLE = (pickle.PicklingError, TypeError, AttributeError)


def host_copy(obj: Any) -> Any:
    """A copy of a (nested) state with every tensor copied to host memory: a snapshot training cannot touch."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, Mapping):
        return type(obj)({k: host_copy(v) for k, v in obj.items()})  # type: ignore[call-arg]
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(host_copy(v) for v in obj)
    return copy.deepcopy(obj)


def module_host_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of a module whose parameters and buffers are host copies (one device→host copy each).

    Raises whatever ``copy.deepcopy`` raises for a module that cannot be copied.
    """
    memo: dict[int, Any] = {}
    for p in model.parameters():
        memo[id(p)] = torch.nn.Parameter(p.detach().to("cpu", copy=True), requires_grad=p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = b.detach().to("cpu", copy=True)
    return copy.deepcopy(model, memo)


@dataclass
class _Snapshot:
    """Everything one checkpoint writes, detached from the live model and optimizer."""

    steps: int
    metadata: dict[str, Any]
    state_dict: dict[str, Any]
    trainer: dict[str, Any]
    progress: Progress
    validated_at: int | None
    best_validation: float | None
    module: torch.nn.Module | None = None  # host copy, pickled by value when written
    module_bytes: bytes | None = None  # ... or already pickled, where the module could not be copied
    module_error: str | None = None


class _Writer:
    """Runs checkpoint writes on a daemon thread, one at a time; re-raises a failed write on :meth:`wait`."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, fn: Callable[[], None]) -> None:
        self.wait()
        self._thread = threading.Thread(
            target=self._run, args=(fn,), name="det-checkpoint-writer", daemon=True
        )
        self._thread.start()

    def _run(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as exc:  # handed to the training thread at its next wait()
            self._error = exc

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


class TorchLoop:
    """Runs one trial: restore, train until the searcher's length, validate and checkpoint on schedule."""

    def __init__(self, trial: TorchTrial) -> None:
        self.trial = trial
        self.ctx = trial.context
        name = type(trial).__name__
        self.ranks = Ranks(self.ctx, name)
        if self.ranks.distributed:
            from det_jupyter.worker.distributed import init_torch_distributed

            trial.device = init_torch_distributed()  # gloo on CPU, NCCL on the worker's GPU
        self.device = _indexed(trial.device)  # cuda -> cuda:N, so batches already there skip .to()
        seed_everything(self.ctx.seed)
        self.model = trial.build_model().to(self.device)
        self.train_model: torch.nn.Module = self.model  # DDP-wrapped with several ranks (see _run)
        self.optimizer = trial.build_optimizer(self.model)
        self.scheduler = trial.build_lr_scheduler(self.optimizer)
        if trial.lr_scheduler_step not in ("batch", "epoch"):
            raise ValueError(
                f"{type(trial).__name__}.lr_scheduler_step={trial.lr_scheduler_step!r}: use 'batch' or 'epoch'"
            )
        self.train_data = self.ranks.shard_training(
            _reiterable(trial.build_training_data(), "build_training_data")
        )
        self.val_data = self.ranks.shard_validation(
            _reiterable(trial.build_validation_data(), "build_validation_data")
        )
        self.reports = RankReports(self.ranks)
        self.epoch_length = _length(self.train_data)
        self.progress = Progress()
        self.validated_at: int | None = None
        self.best_validation: float | None = None
        self._means: TrainingMeans | None = None  # with a scheduling_unit: the unit's reports so far
        self.epoch_rng: dict[str, Any] | None = None
        self._writer = _Writer() if getattr(trial, "checkpoint_in_background", True) else None

    def run(self) -> None:
        try:
            self._run()
        except BaseException:
            self._wait_for_writes(while_failing=True)
            raise
        self._wait_for_writes()

    def _wait_for_writes(self, *, while_failing: bool = False) -> None:
        """Let the checkpoint in flight commit (its event is sent then) before the run ends."""
        if self._writer is None:
            return
        try:
            self._writer.wait()
        except Exception as exc:
            if not while_failing:
                raise
            self.ranks.log(f"the checkpoint being written when the trial failed was not committed: {exc!r}")

    def _run(self) -> None:
        resume = self._restore()
        if self.ranks.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device] if self.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=ids)  # rank 0's weights
        schedule = Schedule(self.ctx, self.progress, self.validated_at, self.best_validation)
        self.schedule = schedule
        self._fallback_size = int(self.trial.hparams.get("global_batch_size", 1))  # a batch without a size
        if schedule.scheduling_unit is not None:
            self._means = TrainingMeans()
        self.model.train()
        if self._act(schedule.decide(self.progress, stop_requested=self.ctx.should_stop())):
            return
        if schedule.initial_validation:  # perform_initial_validation, before the first batch
            self._act(Decision(validate=True))
        batches = self._resume_iterator(resume)
        while True:
            if batches is None:
                self.epoch_rng = rng_state()  # the epoch's shuffle order follows from it (see restore)
                batches = self._epoch_batches()
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

    def _epoch_batches(self) -> Iterator[Any]:
        self.ranks.set_epoch(self.progress.epochs)  # a DistributedSampler's order: seed + epoch
        return iter(self.train_data)

    def _train_batch(self, batch: Any) -> None:
        p = self.progress
        size = self.ranks.records(p.batch_in_epoch, batch, self._fallback_size)  # global records
        out = self.trial.train_batch(self.train_model, to_device(batch, self.device), self.optimizer)
        if isinstance(out, Mapping):
            metrics = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in out.items()}
        else:
            metrics = {"loss": out.detach() if isinstance(out, torch.Tensor) else out}
        if "lr" not in metrics:
            metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        p.batches += 1
        p.batch_in_epoch += 1
        p.records += size
        if self._means is None:
            self.reports.add(self.progress.batches, metrics)
        else:  # scheduling_unit: one report per unit, the mean over its batches
            self._means.add(metrics)
            if self.schedule.report_due(self.progress):
                self.reports.add(self.progress.batches, self._means.take())
        if self.reports.full:
            self.reports.flush()  # several ranks: one gather per window, on every rank at this batch
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
        if decision.finish and self._means is not None and self._means.pending:
            # the partial unit's report, before the validation and checkpoint that end training
            self.reports.add(self.progress.batches, self._means.take())
        if decision.validate or decision.checkpoint or decision.finish:
            self.reports.flush()  # training reports before the validation / checkpoint after them
        checkpoint = decision.checkpoint
        if decision.validate:
            checkpoint = self._validate() or checkpoint  # checkpoint_policy: all / best
        if checkpoint:
            self._save()
        if decision.stopped:
            self.ranks.log(f"stopping at batch {self.progress.batches}: the trial was asked to stop")
        return decision.finish

    def _validate(self) -> bool:
        """Validate, report, and say whether the checkpoint policy wants a checkpoint now."""
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
        sums, total = self.ranks.reduce_validation(sums, total)  # several ranks: the whole set's sums
        if total == 0:
            raise ValueError(f"{type(self.trial).__name__}.build_validation_data() yielded no batches")
        metrics: dict[str, Any] = {key: value / total for key, value in sums.items()}
        metrics.update(self.progress.metrics(self.epoch_length))
        if self.ranks.is_chief:
            self.ctx.report_validation_metrics(self.progress.batches, metrics)
        return self.schedule.validated(self.progress, metrics)

    # --- checkpoints -----------------------------------------------------------------------------

    def _save(self) -> None:
        if not self.ranks.is_chief:  # the chief's checkpoint holds the (identical) state of every rank
            self.schedule.checkpointed(self.progress)
            return
        snapshot = self._snapshot()  # the only part that blocks training in the background mode
        if self._writer is None:
            self._write(snapshot)
        else:
            self._writer.submit(lambda: self._write(snapshot))
        self.schedule.checkpointed(self.progress)

    def _snapshot(self) -> _Snapshot:
        from det_jupyter.frameworks.torch import FORMAT

        background = self._writer is not None
        snap = _Snapshot(
            steps=self.progress.batches,
            metadata={"format": FORMAT, "framework": "torch", **self.progress.metrics(self.epoch_length)},
            state_dict={},
            trainer={
                "optimizer": self.optimizer.state_dict(),
                "lr_scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                "rng": rng_state(),
                "epoch_rng": self.epoch_rng if self.progress.batch_in_epoch else None,
            },
            progress=self.progress.copy(),
            validated_at=self.schedule.validated_at,
            best_validation=self.schedule.best,
        )
        if not background:
            snap.state_dict, snap.module = self.model.state_dict(), self.model
            return snap
        snap.trainer = host_copy(snap.trainer)
        if self.trial.save_whole_model:
            try:
                snap.module = module_host_copy(self.model)
            except Exception:  # a module deepcopy refuses: pickle it now, write the bytes later
                buffer = io.BytesIO()
                try:
                    save_structure(self.model, buffer)  # small: the weights go to state_dict.pt
                    snap.module_bytes = buffer.getvalue()
                except _UNPICKLABLE as exc:
                    snap.module_error = str(exc)
        if snap.module is not None:
            snap.state_dict = snap.module.state_dict()  # the same host tensors: copied once
        else:
            snap.state_dict = host_copy(self.model.state_dict())
        return snap

    def _write(self, snap: _Snapshot) -> None:
        with self.ctx.checkpoint.save(snap.steps, metadata=snap.metadata) as path:
            torch.save(snap.state_dict, path / STATE_DICT_FILE)
            torch.save(snap.trainer, path / TRAINER_FILE)
            write_state(
                path,
                snap.progress,
                validated_at=snap.validated_at,
                data=self.ctx.data,
                owner=trial_owner(self.ctx),
                best_validation=snap.best_validation,
            )
            if self.trial.save_whole_model:
                error = snap.module_error
                if snap.module_bytes is not None:
                    (path / MODULE_FILE).write_bytes(snap.module_bytes)
                elif snap.module is not None:
                    try:  # the structure only: its tensors are the state_dict.pt just written
                        save_structure(snap.module, path / MODULE_FILE)
                    except _UNPICKLABLE as exc:
                        error = str(exc)
                if error is not None:
                    self.ctx.log(
                        f"checkpoint at batch {snap.steps}: the model could not be pickled by value "
                        f"({error}); saved its state_dict only (load it with the trial class)"
                    )

    def _restore(self) -> dict[str, Any] | None:
        self.ranks.agree_on_checkpoint()  # every rank resumes from the chief's newest checkpoint
        with self.ctx.checkpoint.restore() as path:
            if path is None:
                return None
            state = torch.load(path / STATE_DICT_FILE, map_location=self.device, weights_only=False)
            self.model.load_state_dict(state)
            trainer = torch.load(path / TRAINER_FILE, map_location="cpu", weights_only=False)
            self.optimizer.load_state_dict(trainer["optimizer"])
            if self.scheduler is not None and trainer["lr_scheduler"] is not None:
                self.scheduler.load_state_dict(trainer["lr_scheduler"])
            warm = is_warm_start(path, trial_owner(self.ctx))
            self.progress, self.validated_at, _ = read_state(path, trial_owner(self.ctx))
            self.best_validation = read_best_validation(path, trial_owner(self.ctx))
        if warm:  # another trial's checkpoint: its weights, a fresh count (and data order)
            self.ranks.log(f"warm start from checkpoint {self.ctx.checkpoint.latest}: training from batch 0")
            return None
        self.ranks.log(
            f"resumed from checkpoint {self.ctx.checkpoint.latest} at batch {self.progress.batches}"
        )
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
            batches = self._epoch_batches()
            for _ in range(self.progress.batch_in_epoch):
                if next(batches, _END) is _END:
                    raise ValueError(
                        f"cannot resume at batch {self.progress.batch_in_epoch} of epoch "
                        f"{self.progress.epochs + 1}: build_training_data() now yields fewer batches"
                    )
        set_rng_state(trainer["rng"])
        return batches


def _indexed(device: torch.device) -> torch.device:
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return device


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
