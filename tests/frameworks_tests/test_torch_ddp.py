"""TorchTrial's multi-slot data and metric rules (``frameworks/_torch_ddp.py``), rank by rank in one process.

Sharding needs no collective, so each rank's view is built here from a context whose
``ctx.distributed`` says rank ``r`` of 2; the end-to-end DDP runs are in ``tests/distributed_tests``.
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from det_jupyter.errors import ConfigError  # noqa: E402
from det_jupyter.frameworks._torch_ddp import RankReports, Ranks, per_rank_batch_size  # noqa: E402
from det_jupyter.worker.context import local_context  # noqa: E402
from det_jupyter.worker.distributed import DistributedContext  # noqa: E402

N = 23  # records: not a multiple of the 2 ranks nor of the global batch of 6


def _rank_ctx(rank: int, size: int = 2, hparams: dict[str, Any] | None = None) -> Any:
    ctx = local_context(hparams if hparams is not None else {"global_batch_size": 6})
    ctx.distributed = DistributedContext(rank=rank, size=size, chief_ip="127.0.0.1")
    return ctx


def _loader(shuffle: bool, batch: int = 6, drop_last: bool = False) -> DataLoader:
    ids = torch.arange(N)
    return DataLoader(TensorDataset(ids, ids * 10), batch_size=batch, shuffle=shuffle, drop_last=drop_last)


def _epoch(ranks: Ranks, data: Any, epoch: int) -> list[list[int]]:
    ranks.set_epoch(epoch)
    return [batch[0].tolist() for batch in data]


@pytest.mark.parametrize("shuffle", [False, True])
def test_the_ranks_batches_k_together_are_one_global_batch_of_the_epochs_order(shuffle: bool) -> None:
    ranks = [Ranks(_rank_ctx(r), "T") for r in range(2)]
    data = [r.shard_training(_loader(shuffle)) for r in ranks]
    assert [r.per_rank_batch for r in ranks] == [3, 3] and len(data[0]) == len(data[1]) == 4
    orders = []
    for epoch in (0, 1):
        per_rank = [_epoch(r, d, epoch) for r, d in zip(ranks, data)]
        assert [len(b) for b in per_rank[0]] == [len(b) for b in per_rank[1]]  # the same steps per rank
        order = [
            i for k in range(4) for pos in range(3) for r in range(2) for i in per_rank[r][k][pos : pos + 1]
        ]
        # one pass over the records (the sampler repeats one record to even the ranks out)
        assert set(order) == set(range(N)) and len(order) == 24
        if not shuffle:
            assert order[:N] == list(range(N))
        # the epoch's global batch k = the k-th 6 of that order; its records without the repeat
        assert [ranks[0].records(k, None, 0) for k in range(4)] == [6, 6, 6, 5]
        orders.append(order)
    assert (orders[0] != orders[1]) == shuffle  # seeded per epoch: a new order each epoch when shuffled
    again = [_epoch(r, d, 1) for r, d in zip(ranks, data)]
    assert again == [_epoch(r, d, 1) for r, d in zip(ranks, data)]  # and the same order on a resume


def test_drop_last_keeps_whole_global_batches_only() -> None:
    ranks = Ranks(_rank_ctx(0), "T")
    data = ranks.shard_training(_loader(False, drop_last=True))
    assert len(data) == 3 and [len(b) for b in _epoch(ranks, data, 0)] == [3, 3, 3]
    assert ranks.records(2, None, 0) == 6


def test_other_iterables_are_cut_batch_by_batch() -> None:
    batches = [(torch.arange(6) + 6 * k, torch.zeros(6)) for k in range(3)] + [
        (torch.arange(18, 23), torch.zeros(5))
    ]
    parts = []
    for rank in range(2):
        ranks = Ranks(_rank_ctx(rank), "T")
        data = ranks.shard_training(batches)
        parts.append([b[0].tolist() for b in data])
        assert ranks.records(3, None, 0) == 5  # the last global batch read
    assert parts[0][0] == [0, 1, 2] and parts[1][0] == [3, 4, 5]
    assert sorted(i for rank in parts for b in rank for i in b) == list(range(N))


@pytest.mark.parametrize("as_loader", [True, False])
def test_validation_sees_every_record_once_over_the_ranks(as_loader: bool) -> None:
    loader = _loader(False, batch=4)
    seen = []
    for rank in range(2):
        data = Ranks(_rank_ctx(rank), "T").shard_validation(loader if as_loader else list(loader))
        seen += [i for batch in data for i in batch[0].tolist()]
    assert sorted(seen) == list(range(N))


def test_one_rank_changes_nothing() -> None:
    ranks = Ranks(local_context({"global_batch_size": 5}), "T")
    loader = _loader(True)
    assert ranks.shard_training(loader) is loader and ranks.shard_validation(loader) is loader
    assert ranks.reduce_validation({"val_loss": torch.tensor(2.0)}, 4) == ({"val_loss": 2.0}, 4)


def test_a_global_batch_the_slots_cannot_share_is_refused_naming_the_hparam_and_the_fix() -> None:
    with pytest.raises(ConfigError) as info:
        Ranks(_rank_ctx(0, size=4, hparams={"global_batch_size": 30}), "DigitsTrial")
    message = str(info.value)
    assert "hyperparameters.global_batch_size" in message and "DigitsTrial trains on 4 slots" in message
    assert "make global_batch_size a multiple of 4 (e.g. 28 or 32)" in message
    with pytest.raises(ConfigError, match=r"multiple of 4 \(e.g. 4\)"):
        per_rank_batch_size(2, 4, "T")
    # without the hparam, the DataLoader's batch is the global batch (what one slot trains on)
    ranks = Ranks(_rank_ctx(0, size=4, hparams={}), "T")
    with pytest.raises(ConfigError, match="global batch of 6 records"):
        ranks.shard_training(_loader(False))


def test_training_reports_of_one_rank_go_out_at_once() -> None:
    ctx = local_context({})
    reports = RankReports(Ranks(ctx, "T"))
    reports.add(1, {"loss": torch.tensor(0.5)})
    reports.flush()
    assert [r["steps"] for r in ctx.sink.training] == [1]
