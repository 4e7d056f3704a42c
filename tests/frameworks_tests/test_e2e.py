"""Real tiny torch and Keras models searched on the real LocalCluster, then loaded back to predict.

Model classes are defined in this (uninstalled) test module and shipped by value, as notebook code is.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import det_jupyter
from det_jupyter import ExperimentState, TrialState
from det_jupyter.keras import KerasTrial
from det_jupyter.torch import TorchTrial

pytestmark = pytest.mark.slow


def iris_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    x, y = load_iris(return_X_y=True)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=30, stratify=y, random_state=0)
    return x_tr.astype("float32"), x_va.astype("float32"), y_tr, y_va


class TinyTorchTrial(TorchTrial):
    def build_model(self) -> Any:
        from torch import nn

        return nn.Sequential(
            nn.Linear(4, self.hparams["hidden"]), nn.ReLU(), nn.Linear(self.hparams["hidden"], 3)
        )

    def _loader(self, train: bool) -> Any:
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        x_tr, x_va, y_tr, y_va = iris_split()
        x, y = (x_tr, y_tr) if train else (x_va, y_va)
        return DataLoader(TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=16, shuffle=train)

    def build_training_data(self) -> Any:
        return self._loader(True)

    def build_validation_data(self) -> Any:
        return self._loader(False)


class TinyKerasTrial(KerasTrial):
    def build_model(self) -> Any:
        import keras

        return keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(self.hparams["hidden"], activation="relu"),
             keras.layers.Dense(3, activation="softmax")]
        )  # fmt: skip

    def build_training_data(self) -> Any:
        x_tr, _, y_tr, _ = iris_split()
        return x_tr, y_tr

    def build_validation_data(self) -> Any:
        _, x_va, _, y_va = iris_split()
        return x_va, y_va


def _config(metric: str) -> dict[str, Any]:
    return {
        "name": f"tiny-{metric}",
        "hyperparameters": {
            "hidden": {"type": "int", "minval": 4, "maxval": 16},
            "learning_rate": {"type": "log", "base": 10, "minval": -2.5, "maxval": -1},
            "global_batch_size": 16,
        },
        "searcher": {"name": "random", "metric": metric, "smaller_is_better": False, "max_trials": 3,
                     "max_length": {"epochs": 6}, "max_concurrent_trials": 2},
        "reproducibility": {"experiment_seed": 3},
    }  # fmt: skip


def _check_search(exp: Any, metric: str) -> Any:
    assert exp.wait(timeout=300) == ExperimentState.COMPLETED, [t.error for t in exp.trials()]
    trials = exp.trials()
    assert len(trials) == 3 and all(t.state == TrialState.COMPLETED for t in trials)
    for t in trials:
        val = t.metrics("validation")
        assert list(val["epochs"]) == [1, 2, 3, 4, 5, 6]
        assert val[metric].between(0, 1).all()
    best = exp.best_trial()
    assert best.best_validation == max(t.best_validation for t in trials)
    assert best.best_validation > 0.6  # a real model learned Iris (chance is 1/3)
    return best


def test_torch_random_search_then_load_best_and_predict(det_home: Path, dask_client: Any) -> None:
    import torch

    exp = det_jupyter.create_experiment(_config("val_accuracy"), TinyTorchTrial, cluster=dask_client)
    best = _check_search(exp, "val_accuracy")
    ckpt = exp.best_checkpoint()
    # the best *checkpoint* is the best validated one that was checkpointed (a trial's best epoch may not be)
    assert ckpt.metric == max(c.metric for c in exp.checkpoints() if c.metric is not None)
    assert ckpt.metadata.get("format") == "torch-module" and best.best_validation >= ckpt.metric
    model = ckpt.load()
    assert isinstance(model, torch.nn.Module) and not model.training
    _, x_va, _, y_va = iris_split()
    with torch.no_grad():
        accuracy = (model(torch.tensor(x_va)).argmax(dim=1).numpy() == y_va).mean()
    assert accuracy == pytest.approx(ckpt.metric)  # the loaded model is the one that was validated


def test_keras_random_search_then_load_best_and_predict(det_home: Path, dask_client: Any) -> None:
    import keras

    exp = det_jupyter.create_experiment(_config("val_accuracy"), TinyKerasTrial, cluster=dask_client)
    best = _check_search(exp, "val_accuracy")
    ckpt = exp.best_checkpoint()
    assert ckpt.metric == max(c.metric for c in exp.checkpoints() if c.metric is not None)
    assert best.best_validation >= ckpt.metric
    model = ckpt.load()
    assert isinstance(model, keras.Model)
    _, x_va, _, y_va = iris_split()
    accuracy = (model.predict(x_va, verbose=0).argmax(axis=1) == y_va).mean()
    assert accuracy == pytest.approx(ckpt.metric, abs=1e-6)


def test_demo_main_job_runs_adaptive_asha_end_to_end(
    det_home: Path, dask_client: Any, monkeypatch: Any
) -> None:
    from det_jupyter import demo

    # the demo normally starts the embedded cluster; point it at the test cluster instead
    monkeypatch.setattr(det_jupyter, "cluster", lambda *a, **k: dask_client)
    monkeypatch.setattr(det_jupyter, "shutdown_cluster", lambda: None)
    out = io.StringIO()
    assert demo.run_demo(max_trials=4, out=out) == 0
    text = out.getvalue()
    assert "experiment 1 COMPLETED" in text or "COMPLETED" in text
    assert "best trial:" in text
    predictions = [line for line in text.splitlines() if "->" in line]
    assert len(predictions) == 3 and predictions[0].endswith("setosa")
    exp = det_jupyter.list_experiments()[0]
    assert exp.config.searcher.name == "adaptive_asha"
    assert len(exp.trials()) == 4
