"""A 2-slot gloo DDP ``TorchTrial`` on the multi-process external cluster (``conftest.py``).

One experiment per setting, run once per module (:func:`runs`): the same trial on 1 slot and on 2
slots with the same global batch, and on 2 slots with rank 1 failing once mid-trial. Every assertion
reads what the chief reported to the store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import det_jupyter
from det_jupyter.torch import TorchTrial

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

pytestmark = pytest.mark.slow

LENGTH = 60  # global batches of 32: an epoch and a half of the 1280 training digits
PERIOD = 20


def digits() -> tuple[Any, Any, Any, Any]:
    """sklearn's 8x8 digits, scaled: 1280 training records, 517 validation records (odd: uneven ranks)."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.int64)
    return x[:1280], y[:1280], x[1280:], y[1280:]


class DigitsTrial(TorchTrial):
    """An MLP on the digits; no shuffle, so one slot and two see the same global batches."""

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.5)

    def build_training_data(self) -> DataLoader:
        x, y, _, _ = digits()
        return DataLoader(TensorDataset(x, y), batch_size=self.hparams["global_batch_size"])

    def build_validation_data(self) -> DataLoader:
        _, _, x, y = digits()
        return DataLoader(TensorDataset(x, y), batch_size=50)


class FailsOnceOnRank1(DigitsTrial):
    """Rank 1 raises at batch 30 of the first run (the checkpoint at batch 20 is committed by then)."""

    def train_batch(self, model: nn.Module, batch: Any, optimizer: torch.optim.Optimizer) -> Any:
        self.batches = getattr(self, "batches", 0) + 1
        ctx = self.context
        if ctx.run_id == 0 and ctx.distributed.rank == 1 and self.batches == 30:
            raise RuntimeError("rank 1 fails once, at batch 30")
        return super().train_batch(model, batch, optimizer)


def _config(name: str, slots: int, global_batch: int = 32, max_restarts: int = 0) -> dict[str, Any]:
    return {
        "name": name,
        "searcher": {"name": "single", "metric": "val_loss", "time_metric": "batches", "max_time": LENGTH},
        "hyperparameters": {"global_batch_size": global_batch},
        "resources": {"slots_per_trial": slots},
        "min_validation_period": {"batches": PERIOD},
        "min_checkpoint_period": {"batches": PERIOD},
        "max_restarts": max_restarts,
        "reproducibility": {"experiment_seed": 3},
    }


def _run(client: Any, trial: type[TorchTrial], config: dict[str, Any]) -> Any:
    exp = det_jupyter.create_experiment(config, trial, cluster=client)
    state = exp.wait(timeout=300).value
    return exp, state


@pytest.fixture(scope="module")
def runs(client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("det_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DET_JUPYTER_HOME", str(home))
        done = {}
        for key, trial, config in [
            ("one", DigitsTrial, _config("digits-1", 1)),
            ("two", DigitsTrial, _config("digits-2", 2)),
            ("fails", FailsOnceOnRank1, _config("digits-2-fails", 2, max_restarts=1)),
        ]:
            exp, state = _run(client, trial, config)
            assert state == "COMPLETED", [(t.error, t.logs()) for t in exp.trials()]
            done[key] = exp
        yield done


def _curves(exp: Any) -> tuple[Any, Any]:
    (trial,) = exp.trials()
    return trial.metrics("training"), trial.metrics("validation")


def test_two_slot_torch_trial_matches_one_process_with_the_same_global_batch(runs: dict[str, Any]) -> None:
    train_1, val_1 = _curves(runs["one"])
    train_2, val_2 = _curves(runs["two"])
    steps = list(range(1, LENGTH + 1))
    assert train_1["steps"].tolist() == steps and train_2["steps"].tolist() == steps
    loss_1, loss_2 = train_1["loss"].to_numpy(float), train_2["loss"].to_numpy(float)
    assert loss_1[-10:].mean() < 0.5 * loss_1[:5].mean()  # it learns
    # the chief reports the mean over the ranks: the global batch's loss, as one process computes it
    np.testing.assert_allclose(loss_2, loss_1, rtol=1e-4, atol=1e-6)
    # validations at the same global steps, over the whole validation set (517 records, no repeats)
    assert val_1["steps"].tolist() == val_2["steps"].tolist() == [20, 40, 60]
    for name in ("val_loss", "val_accuracy"):
        np.testing.assert_allclose(val_2[name].to_numpy(float), val_1[name].to_numpy(float), rtol=1e-4)
    # progress in global units: records and epochs as with one slot (1280 records per epoch)
    assert val_2["records"].tolist() == val_1["records"].tolist() == [640, 1280, 1920]
    assert val_2["epochs"].tolist() == pytest.approx([0.5, 1.0, 1.5])


def test_one_rank_failing_restarts_the_trial_from_its_checkpoint_and_the_curve_continues(
    runs: dict[str, Any],
) -> None:
    (trial,) = runs["fails"].trials()
    assert trial.restarts == 1
    text = "\n".join(trial.logs())
    assert "[rank=1] RuntimeError: rank 1 fails once, at batch 30" in text, text
    assert "resumed from checkpoint" in text and "at batch 20" in text, text
    train, val = _curves(runs["fails"])
    train_2, val_2 = _curves(runs["two"])
    # the rerun's reports replace the failed run's past its checkpoint: every step once ...
    assert train["steps"].tolist() == list(range(1, LENGTH + 1))
    # ... and the restored run trains exactly the batches the uninterrupted one did
    np.testing.assert_allclose(train["loss"].to_numpy(float), train_2["loss"].to_numpy(float), rtol=1e-4)
    np.testing.assert_allclose(val["val_loss"].to_numpy(float), val_2["val_loss"].to_numpy(float), rtol=1e-4)


def test_the_checkpoint_of_a_two_slot_trial_loads_in_the_kernel(runs: dict[str, Any], tmp_path: Path) -> None:
    exp = runs["two"]
    checkpoint = exp.best_checkpoint()
    model = checkpoint.load()  # DigitsTrial.load_checkpoint: the unwrapped module's state_dict
    assert isinstance(model, nn.Sequential)
    _, _, x, y = digits()
    with torch.no_grad():
        accuracy = float((model(x).argmax(-1) == y).float().mean())
    _, val = _curves(exp)
    reported = val.set_index("steps")["val_accuracy"][checkpoint.steps]
    assert accuracy == pytest.approx(reported, abs=1e-6)
    # and the pickled module needs no trial class (no DistributedDataParallel in it)
    import det_jupyter.torch as det_torch

    whole = det_torch.load_model(checkpoint.download(tmp_path / "ckpt"))
    assert isinstance(whole, nn.Sequential)
    assert sorted(whole.state_dict()) == sorted(model.state_dict())


def test_a_global_batch_the_slots_cannot_share_is_refused(client: Any, det_home: Path) -> None:
    exp, state = _run(client, DigitsTrial, _config("digits-odd", 2, global_batch=33))
    assert state == "ERROR"
    (trial,) = exp.trials()
    error = trial.error or ""
    assert "hyperparameters.global_batch_size" in error, error
    assert "make global_batch_size a multiple of 2 (e.g. 32 or 34)" in error, error
    assert os.environ.get("DET_JUPYTER_HOME") == str(det_home)
