"""PyTorch adapter: subclass :class:`TorchTrial`, or save models yourself with :func:`save_model`.

Trial class (the runtime calls ``IrisTrial.run_trial(ctx)``; ``Checkpoint.load()`` calls
``IrisTrial.load_checkpoint(path, hparams)``)::

    from det_jupyter.torch import TorchTrial

    class IrisTrial(TorchTrial):
        def build_model(self):
            return nn.Sequential(nn.Linear(4, self.hparams["hidden"]), nn.ReLU(), nn.Linear(self.hparams["hidden"], 3))

        def build_training_data(self):
            return DataLoader(train_set, batch_size=self.hparams["global_batch_size"], shuffle=True)

        def build_validation_data(self):
            return DataLoader(val_set, batch_size=64)

Core API (your own loop; mark the checkpoint's format so ``Checkpoint.load()`` needs no code)::

    import det_jupyter.torch as det_torch

    with ctx.checkpoint.save(steps, metadata={"format": det_torch.FORMAT}) as path:
        det_torch.save_model(model, path)

Loop semantics of :meth:`TorchTrial.run_trial` (see :mod:`det_jupyter.frameworks._common`):

- **Device**: ``cuda`` when ``torch.cuda.is_available()`` (the worker's ``CUDA_VISIBLE_DEVICES`` pins
  its GPU), else ``cpu``; every tensor in a batch (nested tuples, lists, dicts) is moved there.
- **Length**: ``ctx.searcher.max_time`` units of ``ctx.searcher.time_metric``: ``batches``, ``epochs``
  (full passes over ``build_training_data()``) or ``records`` (sum of batch sizes, the leading dimension
  of the first tensor in each batch; training stops at the first batch that reaches ``max_time``). Any
  other ``time_metric`` counts epochs. With an endless training iterable (no ``len()``, never ends),
  ``records_per_epoch`` marks where an epoch ends.
- **Training metrics**, every batch at ``steps`` = batches trained: what ``train_batch`` returns
  (``loss`` when it returns a tensor; tensors are detached, never synced per step) plus ``lr``. With
  ``scheduling_unit: n``, one report per ``n`` batches instead, at the unit's last batch, each metric
  the mean over the unit's batches (and one for a partial unit when training finishes).
- **Validation**: every ``min_validation_period`` (each time progress crosses a multiple of it; none
  means once per epoch) and at the end; with ``perform_initial_validation: true`` also once before the
  first batch of a trial starting from zero (``steps`` 0; a warm start measures the weights it loaded).
  Metrics are ``evaluate_batch``'s, averaged over the validation
  set weighted by batch size (defaults: ``val_loss``, ``val_accuracy``), plus ``batches``,
  ``epochs`` (float: completed epochs + fraction of the current one) and ``records``.
- **Checkpoints**: every ``min_checkpoint_period`` (none means only at the end), at the end, when
  ``ctx.should_stop()`` turns true (checked after every batch; the loop then returns without an extra
  validation), and after a validation as ``checkpoint_policy`` says: ``best`` (Determined's default)
  when it is the trial's best so far by ``searcher.metric``, ``all`` after every one, ``none`` never.
  Nothing is saved if no batch was trained since the last checkpoint. Training waits only
  for a host copy of the state; the files are written and committed on a background thread
  (``checkpoint_in_background``), and the trial returns only after its last checkpoint is committed.
- **Restore**: model, optimizer, LR scheduler, progress and RNG state come back from the newest
  checkpoint; an interrupted epoch re-draws the same shuffle order and skips its trained batches, so a
  resumed trial trains exactly the batches an uninterrupted one would.

Several slots (``resources.slots_per_trial: N``; every rank runs :meth:`TorchTrial.run_trial`, see
:mod:`det_jupyter.frameworks._torch_ddp`):

- ``torch.distributed`` is initialised (gloo on CPU, NCCL on the worker's GPU) and the model is wrapped
  in ``DistributedDataParallel`` after the restore; ``train_batch`` gets the wrapped model,
  ``evaluate_batch`` the module itself.
- One step trains one **global batch** of ``hparams["global_batch_size"]`` records (without that
  hyperparameter: the training DataLoader's ``batch_size``), ``global / N`` on each rank; a global batch
  N does not divide is refused, naming the hyperparameter and the fix. A DataLoader over a map-style
  dataset is rebuilt with a ``DistributedSampler`` (shuffled if yours was, seeded with the trial's seed
  and the epoch) and the per-rank batch, so the ranks' batches together are the global batch;
  other iterables are read whole on every rank, each batch cut in N parts.
- ``batches``, ``records`` and ``epochs`` count global batches and records: lengths, periods and ASHA
  rungs mean what they mean with one slot, and an unshuffled trial reports the same curve as with one.
- Training metrics are the mean over the ranks (one gather every 32 batches, not per step); a
  validation adds every rank's sums and counts over a share of the validation set (no record twice),
  so it equals the one-process validation.
- Only the chief reports and checkpoints (the unwrapped module's weights and ``module.pkl``, which load
  in one process); every rank restores from the chief's newest checkpoint; ``ctx.should_stop()`` is the
  chief's flag, so every rank stops at the same batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from det_jupyter.errors import CheckpointError
from det_jupyter.frameworks._common import read_state
from det_jupyter.frameworks._torch_files import (
    MODEL_FILE,
    MODULE_FILE,
    STATE_DICT_FILE,
    load_structure,
    save_module,
    save_structure,
)
from det_jupyter.frameworks._torch_loop import TorchLoop
from det_jupyter.worker.context import TrialContext, local_context

__all__ = ["FORMAT", "MODEL_FILE", "MODULE_FILE", "STATE_DICT_FILE", "TorchTrial", "load_model", "save_model"]

FORMAT = "torch-module"
"""The checkpoint metadata ``format`` that makes ``Checkpoint.load()`` call :func:`load_model`."""


def save_model(model: nn.Module, path: str | os.PathLike[str], *, state_dict: bool = True) -> None:
    """Save a module into a directory, its weights written once: ``state_dict.pt`` + ``module.pkl``.

    ``state_dict.pt`` holds the weights (``model.state_dict()``); ``torch.load(..., weights_only=True)``
    reads it without running pickled code, and ``load_model(path, model=MyNet())`` loads it into a
    module you build. ``module.pkl`` holds the module's *structure* pickled with cloudpickle, each
    parameter and buffer replaced by a reference to its ``state_dict`` key (so it is small and the
    weights are not written twice): a class defined in a notebook (``__main__``) or inside a function
    travels *by value*, and :func:`load_model` rebuilds the module with none of your code. Classes from
    an importable module are pickled by reference (the module must be importable where you load; or
    call ``cloudpickle.register_pickle_by_value(module)`` first).

    Args:
        model: the module to save (on any device).
        path: a directory (created if needed), typically the one ``ctx.checkpoint.save`` yields.
        state_dict: True (default): the format above. False: the older single file ``model.pt``
            (``torch.save`` of the whole module by value), which only :func:`load_model` without
            ``model=`` can read.

    Example:
        >>> import det_jupyter.torch as det_torch
        >>> with ctx.checkpoint.save(steps, metadata={"format": det_torch.FORMAT}) as path:  # doctest: +SKIP
        ...     det_torch.save_model(model, path)
    """
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    if not state_dict:
        save_module(model, directory / MODEL_FILE)
        return
    weights = model.state_dict()
    torch.save(weights, directory / STATE_DICT_FILE)
    save_structure(model, directory / MODULE_FILE)


def load_model(
    path: str | os.PathLike[str], map_location: Any = None, *, model: nn.Module | None = None
) -> nn.Module:
    """Load a module saved by :func:`save_model` (or by :class:`TorchTrial`), ready to predict.

    Reads every format det_jupyter has written: ``state_dict.pt`` + ``module.pkl`` (the default), and
    the older ``model.pt`` (the whole module; with or without ``state_dict.pt`` beside it).

    Args:
        path: the checkpoint directory, or its ``module.pkl`` / ``model.pt`` file.
        map_location: where to put the weights; ``None`` means CPU (pass ``"cuda"`` for the GPU).
        model: a module you built (same architecture): the weights are loaded into it from
            ``state_dict.pt`` with ``weights_only=True``, so no pickled code runs.

    Returns:
        The module in ``eval()`` mode.

    Example:
        >>> model = det_jupyter.torch.load_model(checkpoint_dir)  # doctest: +SKIP
        >>> model(torch.randn(2, 4)).argmax(-1)                   # doctest: +SKIP
        >>> safe = det_jupyter.torch.load_model(checkpoint_dir, model=MyNet())  # no pickled code  # doctest: +SKIP
    """
    given = Path(path)
    directory = given if given.is_dir() else given.parent
    location = map_location or "cpu"
    if model is not None:
        weights_file = directory / STATE_DICT_FILE
        if not weights_file.exists():
            raise CheckpointError(
                f"load_model({str(path)!r}, model=...): no {STATE_DICT_FILE} there (saved with "
                "save_model(..., state_dict=False)?); call load_model(path) without model= to unpickle "
                f"the whole module from {MODEL_FILE}, which runs pickled code"
            )
        weights = torch.load(weights_file, map_location=location, weights_only=True)
        model.load_state_dict(weights)
        return model.to(location).eval()
    if given.is_dir():
        file = given / MODULE_FILE if (given / MODULE_FILE).exists() else given / MODEL_FILE
    else:
        file = given
    if not file.exists():
        raise CheckpointError(
            f"load_model({str(path)!r}): no {MODEL_FILE} or {MODULE_FILE} there; save with "
            "det_jupyter.torch.save_model, or load a TorchTrial checkpoint with its class: "
            "MyTrial.load_checkpoint(path, hparams)"
        )
    if file.name == MODULE_FILE:
        weights = torch.load(directory / STATE_DICT_FILE, map_location=location, weights_only=True)
        loaded = load_structure(file, weights)
    else:
        loaded = torch.load(file, map_location=location, weights_only=False)
    if not isinstance(loaded, nn.Module):
        raise CheckpointError(
            f"load_model({str(path)!r}): {file.name} holds a {type(loaded).__name__}, not a module"
        )
    return loaded.eval()


class TorchTrial:
    """Subclass it, override the ``build_*`` methods; :meth:`run_trial` runs the whole training loop.

    Attributes:
        context: the :class:`~det_jupyter.worker.context.TrialContext`.
        hparams: this trial's hyperparameters (``context.hparams``).
        data: the config's ``data`` section (``context.data``).
        device: where the model and batches live (``cuda`` if available, else ``cpu``).
        lr_scheduler_step: class attribute, ``"batch"`` (default) or ``"epoch"``: when to call
            ``scheduler.step()``.
        save_whole_model: class attribute; also pickle the module's structure by value into each
            checkpoint (``module.pkl``, its tensors taken from ``state_dict.pt``: the weights are
            written once) so :func:`load_model` can load it without the trial class. Default True;
            False skips the pickle (for a module cloudpickle cannot pickle). The state_dict is always saved.
        checkpoint_in_background: class attribute; block training only for a host copy of the
            weights and optimizer state and write the files on a background thread (default True). A
            checkpoint counts once committed; set False to write in the training thread (no extra host
            memory for the copy).

    Example:
        >>> class IrisTrial(TorchTrial):
        ...     def build_model(self):
        ...         return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
        ...     def build_training_data(self):
        ...         return DataLoader(train_set, batch_size=self.hparams["global_batch_size"], shuffle=True)
        ...     def build_validation_data(self):
        ...         return DataLoader(val_set, batch_size=64)
        >>> IrisTrial.run_trial(local_context({"global_batch_size": 16}, time_metric="epochs", max_time=2))  # doctest: +SKIP
    """

    lr_scheduler_step: ClassVar[Literal["batch", "epoch"]] = "batch"
    save_whole_model: ClassVar[bool] = True
    checkpoint_in_background: ClassVar[bool] = True

    def __init__(self, context: TrialContext) -> None:
        self.context = context
        self.hparams: dict[str, Any] = context.hparams
        self.data: dict[str, Any] = context.data
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    # --- what users override ---------------------------------------------------------------------

    def build_model(self) -> nn.Module:
        """Return the model (required). It is moved to :attr:`device` for you."""
        raise NotImplementedError(f"{type(self).__name__} must define build_model(self) -> torch.nn.Module")

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """Return the optimizer; default ``Adam(lr=hparams.get("learning_rate", 1e-3))``."""
        return torch.optim.Adam(model.parameters(), lr=float(self.hparams.get("learning_rate", 1e-3)))

    def build_lr_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        """Return a ``torch.optim.lr_scheduler`` scheduler, or ``None`` (default) for a constant LR."""
        return None

    def build_training_data(self) -> Iterable[Any]:
        """Return the training batches (required): a DataLoader or any re-iterable of batches."""
        raise NotImplementedError(f"{type(self).__name__} must define build_training_data(self)")

    def build_validation_data(self) -> Iterable[Any]:
        """Return the validation batches (required): a DataLoader or any re-iterable of batches."""
        raise NotImplementedError(f"{type(self).__name__} must define build_validation_data(self)")

    def train_batch(self, model: nn.Module, batch: Any, optimizer: torch.optim.Optimizer) -> Any:
        """Train on one batch (already on :attr:`device`): forward, backward, optimizer step.

        Returns the loss tensor, or a dict of metrics (tensors or numbers) to report. The default
        expects ``(inputs, targets)`` batches and minimises cross-entropy.
        """
        inputs, targets = _pair(batch, "train_batch")
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        optimizer.step()
        return {"loss": loss}

    def evaluate_batch(self, model: nn.Module, batch: Any) -> dict[str, Any]:
        """Metrics of one validation batch (model in eval mode, under ``torch.no_grad()``).

        The loop averages each metric over the validation set, weighted by batch size. The default
        expects ``(inputs, targets)`` batches and returns ``val_loss`` (cross-entropy) and
        ``val_accuracy``.
        """
        inputs, targets = _pair(batch, "evaluate_batch")
        logits = model(inputs)
        return {
            "val_loss": nn.functional.cross_entropy(logits, targets),
            "val_accuracy": (logits.argmax(dim=-1) == targets).float().mean(),
        }

    # --- what the runtime and Checkpoint.load() call ---------------------------------------------

    @classmethod
    def run_trial(cls, ctx: TrialContext) -> None:
        """Train one trial under ``ctx`` (the runtime calls this; so can you, with ``local_context``).

        Example:
            >>> from det_jupyter.demo import IrisTrial
            >>> hp = {"global_batch_size": 16, "learning_rate": 0.05, "hidden": 8, "activation": "relu"}
            >>> ctx = local_context(hp, metric="val_accuracy", smaller_is_better=False, max_time=16)
            >>> IrisTrial.run_trial(ctx)
            >>> last = ctx.sink.validation[-1]
            >>> last["steps"], 0.0 <= last["metrics"]["val_accuracy"] <= 1.0
            (16, True)
            >>> with ctx.checkpoint.restore() as path:
            ...     model = IrisTrial.load_checkpoint(path, hp)
            >>> tuple(model(torch.zeros(2, 4)).shape)
            (2, 3)
        """
        TorchLoop(cls(ctx)).run()

    @classmethod
    def load_checkpoint(
        cls, path: str | os.PathLike[str], hparams: dict[str, Any], map_location: Any = None
    ) -> nn.Module:
        """Rebuild the model with :meth:`build_model` and load a checkpoint's weights, ready to predict.

        Args:
            path: a checkpoint directory written by :meth:`run_trial`.
            hparams: the trial's hyperparameters (``build_model`` may read them).
            map_location: device for the model; ``None`` means CPU.

        Returns:
            The model in ``eval()`` mode.

        Example:
            >>> model = IrisTrial.load_checkpoint(path, {"global_batch_size": 16})  # doctest: +SKIP

            (run end to end under :meth:`run_trial`'s example)
        """
        directory = Path(path)
        _, _, data = read_state(directory)
        trial = cls(local_context(hparams, checkpoint_dir=str(directory), data=data))
        model = trial.build_model()
        state = torch.load(directory / STATE_DICT_FILE, map_location="cpu", weights_only=False)
        model.load_state_dict(state)
        return model.to(map_location or "cpu").eval()


def _pair(batch: Any, method: str) -> tuple[Any, Any]:
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise TypeError(
        f"the default TorchTrial.{method} expects (inputs, targets) batches, got {type(batch).__name__}; "
        f"override {method}(self, model, batch{', optimizer' if method == 'train_batch' else ''})"
    )
