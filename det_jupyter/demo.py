"""The main job: a real adaptive-ASHA search of a small torch MLP on Iris, on the embedded local cluster.

``det-jupyter demo`` runs it end to end: it submits the experiment, shows progress while trials run
and ASHA stops the weak ones, prints the trial table and the best trial, then loads the best
checkpoint into this process and predicts species for new, unlabeled flowers.

Example:
    >>> from det_jupyter.demo import IRIS_CONFIG
    >>> IRIS_CONFIG["searcher"]["name"]
    'adaptive_asha'
"""

from __future__ import annotations

import sys
import time
from typing import Any

from det_jupyter.frameworks.torch import TorchTrial

__all__ = ["IRIS_CONFIG", "IrisTrial", "run_demo"]

IRIS_CONFIG: dict[str, Any] = {
    "name": "iris-adaptive-asha",
    "description": "Iris species from sepal/petal measurements; torch MLP; adaptive ASHA",
    "hyperparameters": {
        "global_batch_size": {"type": "categorical", "vals": [8, 16, 32]},
        "learning_rate": {"type": "log", "base": 10, "minval": -3.5, "maxval": -0.5},
        "hidden": {"type": "int", "minval": 4, "maxval": 32},
        "activation": {"type": "categorical", "vals": ["relu", "tanh"]},
    },
    "searcher": {
        "name": "adaptive_asha",
        "metric": "val_accuracy",
        "smaller_is_better": False,
        "max_trials": 12,
        "time_metric": "epochs",
        "max_time": 48,
        "max_rungs": 3,
        "divisor": 4,
        "mode": "standard",
        "max_concurrent_trials": 4,
    },
    "min_validation_period": {"epochs": 3},
    "max_restarts": 1,
    "reproducibility": {"experiment_seed": 42},
    "checkpoint_storage": {"save_trial_best": 1, "save_trial_latest": 1, "save_experiment_best": 1},
}

SPECIES = ("setosa", "versicolor", "virginica")


class IrisTrial(TorchTrial):
    """A two-layer MLP on scikit-learn's Iris (120 train / 30 validation, stratified, standardised)."""

    def _split(self) -> tuple[Any, Any, Any, Any]:
        import numpy as np
        from sklearn.datasets import load_iris
        from sklearn.model_selection import train_test_split

        x, y = load_iris(return_X_y=True)
        x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=30, stratify=y, random_state=0)
        mean, std = x_tr.mean(axis=0), x_tr.std(axis=0)
        return (x_tr - mean) / std, (x_va - mean) / std, np.asarray(y_tr), np.asarray(y_va)

    def build_model(self) -> Any:
        from torch import nn

        act = nn.ReLU() if self.hparams["activation"] == "relu" else nn.Tanh()
        return nn.Sequential(nn.Linear(4, self.hparams["hidden"]), act, nn.Linear(self.hparams["hidden"], 3))

    def build_training_data(self) -> Any:
        return self._loader(train=True)

    def build_validation_data(self) -> Any:
        return self._loader(train=False)

    def _loader(self, *, train: bool) -> Any:
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        x_tr, x_va, y_tr, y_va = self._split()
        x, y = (x_tr, y_tr) if train else (x_va, y_va)
        data = TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long))
        return DataLoader(data, batch_size=int(self.hparams["global_batch_size"]), shuffle=train)


def run_demo(*, max_trials: int | None = None, out: Any = None) -> int:
    """Run the Iris search, print progress, the trials and the best one, and predict with it."""
    import det_jupyter

    out = out or sys.stdout
    config = {**IRIS_CONFIG, "searcher": dict(IRIS_CONFIG["searcher"])}
    if max_trials is not None:
        config["searcher"]["max_trials"] = max_trials
    print(det_jupyter.preview_search(config), file=out)
    client = det_jupyter.cluster()
    try:
        exp = det_jupyter.create_experiment(config, IrisTrial, cluster=client)
        print(f"\nexperiment {exp.id} submitted; Dask dashboard: {client.dashboard_link}", file=out)
        return _follow(exp, out)
    finally:
        det_jupyter.shutdown_cluster()


def _follow(exp: Any, out: Any) -> int:
    import det_jupyter

    last = ""
    while not exp.state.is_terminal:
        counts = exp.store.trial_counts(exp.id)
        line = f"  {exp.state.value:<9} progress {exp.progress:4.0%}  " + "  ".join(
            f"{state.value.lower()}={n}" for state, n in sorted(counts.items(), key=lambda kv: kv[0].value)
        )
        if line != last:
            print(line, file=out, flush=True)
            last = line
        time.sleep(0.5)
    state = exp.wait()
    print(f"\nexperiment {exp.id} {state.value}\n", file=out)
    print(f"{'trial':>5}  {'state':<9} {'epochs':>6} {'val acc':>7}  hyperparameters", file=out)
    for trial in exp.trials():
        row = exp.store.get_trial(trial.id)
        acc = "-" if row.best_validation is None else f"{row.best_validation:.3f}"
        print(f"{row.id:>5}  {row.state.value:<9} {row.searcher_time:>6g} {acc:>7}  {row.hparams}", file=out)
    best = exp.best_trial()
    if state != det_jupyter.ExperimentState.COMPLETED or best is None:
        print(f"no best trial: {exp.error}", file=out)
        return 1
    print(
        f"\nbest trial: {best.id}  val_accuracy={best.best_validation:.3f}  hparams={best.hparams}", file=out
    )
    model = exp.best_checkpoint().load()
    print(f"loaded the best checkpoint as a {type(model).__name__}; predicting new flowers:", file=out)
    for flower, species in zip(_new_flowers(), _predict(model, _new_flowers())):
        print(f"  {flower} -> {species}", file=out)
    return 0


def _new_flowers() -> list[list[float]]:
    return [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]]


def _predict(model: Any, flowers: list[list[float]]) -> list[str]:
    import numpy as np
    import torch
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    x, y = load_iris(return_X_y=True)
    x_tr, *_ = train_test_split(x, y, test_size=30, stratify=y, random_state=0)
    scaled = (np.asarray(flowers) - x_tr.mean(axis=0)) / x_tr.std(axis=0)
    with torch.no_grad():
        logits = model(torch.tensor(scaled, dtype=torch.float32))
    return [SPECIES[i] for i in logits.argmax(dim=1).tolist()]
