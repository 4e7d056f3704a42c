"""A warm start on the real cluster: experiment 2 (``searcher.source_trial_id``) starts from experiment 1's weights.

Experiment 1 trains a TorchTrial with ``checkpoint_policy: none``, so its only checkpoint holds its
final weights; experiment 2 names its trial, validates first (``perform_initial_validation``) and
trains on from those weights with a fresh count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import det_jupyter
from det_jupyter import ExperimentState
from det_jupyter.torch import TorchTrial

from .helpers import iris

pytestmark = pytest.mark.slow


class WarmIrisTrial(TorchTrial):
    """Iris, 8 batches of 16 per epoch (shipped by value: this test module is not installed)."""

    def build_model(self) -> Any:
        from torch import nn

        return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))

    def _loader(self, train: bool) -> Any:
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        x_tr, y_tr, x_va, y_va = iris()
        x, y = (x_tr, y_tr) if train else (x_va, y_va)
        return DataLoader(TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=16, shuffle=train)

    def build_training_data(self) -> Any:
        return self._loader(True)

    def build_validation_data(self) -> Any:
        return self._loader(False)


def _config(name: str, **extra: Any) -> dict[str, Any]:
    searcher = {"name": "single", "metric": "val_loss", "max_length": {"epochs": 6}}
    return {
        "name": name,
        "hyperparameters": {"global_batch_size": 16, "learning_rate": 0.05},
        "searcher": {**searcher, **extra.pop("searcher", {})},
        "reproducibility": {"experiment_seed": 5},
        **extra,
    }


def test_a_warm_started_experiment_trains_on_from_the_source_trials_weights(
    det_home: Path, tmp_path: Path, dask_client: Any
) -> None:
    store = tmp_path / "det.db"
    first = det_jupyter.create_experiment(
        _config("source", checkpoint_policy="none"), WarmIrisTrial, cluster=dask_client, store=store
    )
    assert first.wait(timeout=240) == ExperimentState.COMPLETED, [t.error for t in first.trials()]
    [source] = first.trials()
    assert [c.steps for c in source.checkpoints()] == [48]  # policy none: the end only
    train1 = source.metrics("training")
    untrained, trained = float(train1["loss"].iloc[0]), float(train1["loss"].iloc[-8:].mean())
    val1 = source.metrics("validation")

    second = det_jupyter.create_experiment(
        _config(
            "warm",
            searcher={"source_trial_id": source.id, "max_length": {"epochs": 2}},
            perform_initial_validation=True,
        ),
        WarmIrisTrial,
        cluster=dask_client,
        store=store,
    )
    assert second.wait(timeout=240) == ExperimentState.COMPLETED, [t.error for t in second.trials()]
    [warm] = second.trials()
    val2 = warm.metrics("validation")
    assert list(val2["steps"]) == [0, 8, 16]  # a fresh count, validated before its first batch...
    # ...on exactly the weights experiment 1 ended with
    assert float(val2["val_loss"].iloc[0]) == pytest.approx(float(val1["val_loss"].iloc[-1]), rel=1e-5)
    train2 = warm.metrics("training")
    assert int(train2["steps"].iloc[0]) == 1
    first_loss = float(train2["loss"].iloc[0])
    assert untrained > 0.9  # ln 3 ~ 1.1: an untrained start
    assert first_loss < 0.5 * untrained, (first_loss, untrained)
    assert first_loss == pytest.approx(trained, abs=0.25), (first_loss, trained)
