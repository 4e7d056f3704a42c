"""What :class:`~det_jupyter.frameworks.torch.TorchTrial` does differently with several slots (DDP).

A trial with ``resources.slots_per_trial: N > 1`` runs :meth:`TorchTrial.run_trial` once per rank
(``ctx.distributed.size == N``). :class:`Ranks` is the loop's view of them:

- **Global batch** (Determined's ``global_batch_size``): one training step trains one global batch,
  ``global_batch_size / N`` records on each rank (:func:`per_rank_batch_size` refuses a global batch
  that N does not divide). Progress counts global batches and records, so lengths, periods and rung
  boundaries mean what they mean with one slot.
- **Training data** (:meth:`Ranks.shard_training`): a ``DataLoader`` over a map-style dataset is rebuilt
  with a ``DistributedSampler`` (shuffled as the original was, seeded with the trial's seed and the
  epoch) and the per-rank batch; its other settings (``collate_fn``, workers, ``drop_last``...) stay.
  With that sampler, rank ``r``'s batch ``k`` holds positions ``k * global + r, + N, ...`` of the
  epoch's order, so the N ranks' batches ``k`` together are exactly the global batch ``k``. Anything
  else (a list of batches, an ``IterableDataset``, a custom sampler) is iterated whole on every rank
  and each batch is cut along its first dimension: rank ``r`` trains on part ``r``.
- **Validation data** (:meth:`Ranks.shard_validation`): a map-style ``DataLoader``'s records are dealt
  out ``r, r + N, ...`` with no padding (a ``DistributedSampler`` would repeat records to even the
  ranks out); other iterables deal out whole batches. Each rank sums its metrics weighted by batch
  size; :meth:`Ranks.reduce_validation` adds the sums and counts of all ranks, so the validation is
  the one-process validation of the whole set.
- **Training metrics** (:class:`RankReports`): every rank's reports are averaged over the ranks (the
  global batch's loss) and the chief reports them; the values cross ranks in one gather every
  :data:`REPORT_WINDOW` batches and before every validation, checkpoint and end, not per batch.

Example (one process: nothing changes):
    >>> from det_jupyter.worker.context import local_context
    >>> ranks = Ranks(local_context({"global_batch_size": 8}), "MyTrial")
    >>> ranks.size, ranks.per_rank_batch
    (1, 8)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, RandomSampler, SequentialSampler

from det_jupyter.errors import ConfigError, FieldError
from det_jupyter.worker.context import TrialContext

__all__ = ["REPORT_WINDOW", "RankReports", "Ranks", "per_rank_batch_size"]

REPORT_WINDOW = 32
"""Training reports buffered on every rank before one gather sends their rank means to the chief."""


def batch_size(batch: Any) -> int | None:
    """The leading dimension of the first tensor or array in a batch, or ``None`` if it has none."""
    if type(batch) is tuple and batch and isinstance(batch[0], torch.Tensor) and batch[0].ndim:
        return int(batch[0].shape[0])  # the common (inputs, targets) batch
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


def per_rank_batch_size(global_batch: int, size: int, trial: str) -> int:
    """``global_batch / size``, refusing a global batch that ``size`` slots cannot share evenly.

    Example:
        >>> per_rank_batch_size(32, 2, "MyTrial")
        16
        >>> per_rank_batch_size(30, 4, "MyTrial")
        Traceback (most recent call last):
        ...
        det_jupyter.errors.ConfigError: invalid experiment config:
          hyperparameters.global_batch_size: MyTrial trains on 4 slots (resources.slots_per_trial), which cannot share a global batch of 30 records evenly (30 / 4 is not a whole number). Fix: make global_batch_size a multiple of 4 (e.g. 28 or 32), or change resources.slots_per_trial
    """
    if global_batch < size or global_batch % size:
        below, above = (global_batch // size) * size, (global_batch // size + 1) * size
        example = f"{below} or {above}" if below else str(above)
        raise ConfigError(
            FieldError(
                "hyperparameters.global_batch_size",
                f"{trial} trains on {size} slots (resources.slots_per_trial), which cannot share a global "
                f"batch of {global_batch} records evenly ({global_batch} / {size} is not a whole number)",
                f"make global_batch_size a multiple of {size} (e.g. {example}), or change "
                "resources.slots_per_trial",
            )
        )
    return global_batch // size


class Ranks:
    """A trial's ranks as its training loop sees them (``ctx.distributed``; size 1 is a no-op).

    Args:
        ctx: the rank's trial context.
        trial: the trial class's name, for messages.
        loader_batch: the batch size of the training ``DataLoader``, when ``global_batch_size`` is not
            a hyperparameter (one slot trains on the loader's batches, so that is the global batch).
    """

    def __init__(self, ctx: TrialContext, trial: str, loader_batch: int | None = None) -> None:
        self.ctx = ctx
        self.dist = ctx.distributed
        self.size = int(self.dist.size)
        self.rank = int(self.dist.rank)
        self.is_chief = bool(self.dist.is_chief)
        self.trial = trial
        hparam = ctx.hparams.get("global_batch_size")
        self.global_batch: int | None = int(hparam) if hparam is not None else loader_batch
        self.per_rank_batch: int | None = None
        if self.global_batch is not None:
            self.per_rank_batch = (
                per_rank_batch_size(self.global_batch, self.size, trial)
                if self.size > 1
                else self.global_batch
            )
        self._train: _Shards | None = None

    @property
    def distributed(self) -> bool:
        """True with more than one rank."""
        return self.size > 1

    # --- data ------------------------------------------------------------------------------------

    def shard_training(self, data: Iterable[Any]) -> Iterable[Any]:
        """This rank's part of every global batch (see the module docstring); ``data`` as is with one rank."""
        if not self.distributed:
            return data
        loader = _map_style_loader(data)
        if loader is not None and isinstance(loader.sampler, (RandomSampler, SequentialSampler)):
            if self.per_rank_batch is None:
                self.global_batch = int(loader.batch_size or 1)
                self.per_rank_batch = per_rank_batch_size(self.global_batch, self.size, self.trial)
            sampler: DistributedSampler[Any] = DistributedSampler(
                loader.dataset,  # type: ignore[arg-type]
                num_replicas=self.size,
                rank=self.rank,
                shuffle=isinstance(loader.sampler, RandomSampler),
                seed=int(self.ctx.seed),
                drop_last=bool(loader.drop_last),  # then floor(records / global batch) steps, as one slot
            )
            self._train = _Shards(
                _rebuild(loader, self.per_rank_batch, sampler, drop_last=bool(loader.drop_last)),
                sampler,
                len(loader.dataset),  # type: ignore[arg-type]
                self.global_batch or 1,
                bool(loader.drop_last),
            )
        else:
            self._train = _Shards(_Cut(data, self.rank, self.size), None, None, self.global_batch or 1, False)
            if self.is_chief:
                self.ctx.log(
                    f"{self.trial}.build_training_data() is not a DataLoader over a map-style dataset with a "
                    f"plain sampler: every rank reads every batch and trains on its 1/{self.size} of it"
                )
        return self._train

    def shard_validation(self, data: Iterable[Any]) -> Iterable[Any]:
        """This rank's share of the validation records, no record twice; ``data`` as is with one rank."""
        if not self.distributed:
            return data
        loader = _map_style_loader(data)
        if loader is not None and loader.batch_size is not None:
            indices = list(range(self.rank, len(loader.dataset), self.size))  # type: ignore[arg-type]
            return _rebuild(loader, int(loader.batch_size), indices, drop_last=False)
        return _EveryNth(data, self.rank, self.size)

    def set_epoch(self, epoch: int) -> None:
        """Seed the training sampler's order for ``epoch`` (the same order on every rank)."""
        if self._train is not None and self._train.sampler is not None:
            self._train.sampler.set_epoch(epoch)

    def records(self, batch_in_epoch: int, batch: Any, fallback: int) -> int:
        """Records the *global* batch at 0-based index ``batch_in_epoch`` of the epoch trained.

        With one rank: the batch's own size. With a sampler: all of the global batch except the
        records the sampler repeats at the epoch's end to even the ranks out.
        """
        shards = self._train
        if shards is None:
            return batch_size(batch) or fallback
        if shards.dataset_length is not None:
            if shards.drop_last:
                return shards.global_batch
            return min(shards.global_batch, shards.dataset_length - batch_in_epoch * shards.global_batch)
        assert isinstance(shards.data, _Cut)
        return shards.data.last_size or fallback

    # --- metrics ---------------------------------------------------------------------------------

    def reduce_validation(self, sums: Mapping[str, Any], total: int) -> tuple[dict[str, float], int]:
        """Every rank's metric sums and record counts added up (on every rank)."""
        local = {key: float(value) for key, value in sums.items()}
        if not self.distributed:
            return local, total
        merged: dict[str, float] = {}
        count = 0
        for rank_sums, rank_total in self.dist.allgather((local, int(total))):
            for key, value in rank_sums.items():
                merged[key] = merged.get(key, 0.0) + value
            count += rank_total
        return merged, count

    def agree_on_checkpoint(self) -> None:
        """Restore every rank from the chief's idea of the newest checkpoint."""
        if not self.distributed:
            return
        latest, steps = self.dist.broadcast((self.ctx.checkpoint.latest, self.ctx.checkpoint.latest_steps))
        self.ctx.checkpoint.latest, self.ctx.checkpoint.latest_steps = latest, steps

    def log(self, message: str) -> None:
        """A line in the trial's log, from the chief only (the ranks run the same loop)."""
        if self.is_chief:
            self.ctx.log(message)


class RankReports:
    """Training reports of all ranks, averaged over the ranks and reported by the chief.

    :meth:`add` buffers one report (tensors stay on their device); :meth:`flush` (a collective: every
    rank calls it at the same points) turns the buffer into host numbers with one copy, gathers them
    on the chief and reports each step's mean over the ranks. With one rank, :meth:`add` reports at once.
    """

    def __init__(self, ranks: Ranks) -> None:
        self.ranks = ranks
        self._pending: list[tuple[int, dict[str, Any]]] = []

    @property
    def full(self) -> bool:
        return len(self._pending) >= REPORT_WINDOW

    def add(self, steps: int, metrics: Mapping[str, Any]) -> None:
        if not self.ranks.distributed:
            self.ranks.ctx.report_training_metrics(steps, metrics)
            return
        self._pending.append((steps, dict(metrics)))

    def flush(self) -> None:
        if not self.ranks.distributed:
            return
        pending, self._pending = self._pending, []
        local = _to_host(pending)
        gathered = self.ranks.dist.gather(local)
        if gathered is None:  # not the chief
            return
        for i, (steps, metrics) in enumerate(local):
            mean: dict[str, Any] = {}
            for key, value in metrics.items():
                values = [rank[i][1].get(key) for rank in gathered]
                if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                    mean[key] = sum(values) / len(values)
                else:  # str, bool, None: the chief's
                    mean[key] = value
            self.ranks.ctx.report_training_metrics(steps, mean)


def _to_host(pending: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
    """The buffered reports with every tensor as a Python number: one device→host copy in all."""
    tensors = [v for _, metrics in pending for v in metrics.values() if isinstance(v, torch.Tensor)]
    numbers = iter(
        torch.stack([t.detach().double().reshape(()) for t in tensors]).tolist() if tensors else []
    )
    out: list[tuple[int, dict[str, Any]]] = []
    for steps, metrics in pending:
        row: dict[str, Any] = {}
        for key, value in metrics.items():
            if isinstance(value, torch.Tensor):
                row[key] = next(numbers)
            elif isinstance(value, np.generic):
                row[key] = value.item()
            else:
                row[key] = value
        out.append((steps, row))
    return out


class _Shards:
    """The rank's training iterable, with what the loop needs to count global progress."""

    def __init__(
        self,
        data: Iterable[Any],
        sampler: DistributedSampler[Any] | None,
        dataset_length: int | None,
        global_batch: int,
        drop_last: bool,
    ) -> None:
        self.data = data
        self.sampler = sampler
        self.dataset_length = dataset_length
        self.global_batch = global_batch
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[Any]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]


class _Cut:
    """Every batch of ``data``, cut along the first dimension into ``size`` parts; part ``rank``."""

    def __init__(self, data: Iterable[Any], rank: int, size: int) -> None:
        self.data, self.rank, self.size = data, rank, size
        self.last_size: int | None = None

    def __iter__(self) -> Iterator[Any]:
        for batch in self.data:
            self.last_size = batch_size(batch)
            yield _part(batch, self.rank, self.size)

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]


class _EveryNth:
    """Batches ``rank``, ``rank + size``, ... of ``data``."""

    def __init__(self, data: Iterable[Any], rank: int, size: int) -> None:
        self.data, self.rank, self.size = data, rank, size

    def __iter__(self) -> Iterator[Any]:
        for i, batch in enumerate(self.data):
            if i % self.size == self.rank:
                yield batch


def _part(obj: Any, rank: int, size: int) -> Any:
    if isinstance(obj, torch.Tensor):
        return torch.tensor_split(obj, size)[rank] if obj.ndim else obj
    if isinstance(obj, np.ndarray):
        return np.array_split(obj, size)[rank] if obj.ndim else obj
    if isinstance(obj, Mapping):
        return type(obj)({k: _part(v, rank, size) for k, v in obj.items()})  # type: ignore[call-arg]
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_part(v, rank, size) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_part(v, rank, size) for v in obj)
    return obj


def _map_style_loader(data: Iterable[Any]) -> DataLoader[Any] | None:
    if isinstance(data, DataLoader) and not isinstance(data.dataset, IterableDataset):
        with contextlib.suppress(TypeError):
            len(data.dataset)  # type: ignore[arg-type]
            return data
    return None


def _rebuild(
    loader: DataLoader[Any], batch: int, sampler: Iterable[int], *, drop_last: bool
) -> DataLoader[Any]:
    """``loader`` with another batch size and sampler, its other settings kept."""
    workers = int(loader.num_workers)
    extra: dict[str, Any] = {}
    if workers:
        extra = {
            "prefetch_factor": loader.prefetch_factor,
            "persistent_workers": loader.persistent_workers,
            "worker_init_fn": loader.worker_init_fn,
            "multiprocessing_context": loader.multiprocessing_context,
            "timeout": loader.timeout,
        }
    return DataLoader(
        loader.dataset,
        batch_size=batch,
        sampler=sampler,  # type: ignore[arg-type]
        num_workers=workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=drop_last,
        generator=loader.generator,
        **extra,
    )
