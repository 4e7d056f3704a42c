"""The example notebooks, executed top to bottom by a real kernel (nbclient), with small parameters.

Each notebook reads its parameters from environment variables in its first code cell, so CI runs the
very same cells a user runs, only with a smaller search. The CIFAR-10 notebook reads small batch files
in the real python-pickle format that this test writes.
"""

from __future__ import annotations

import ast
import os
import pickle
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def write_cifar_batches(root: Path, per_batch: int = 40) -> Path:
    """CIFAR-10's python format: pickled dicts of uint8 ``data`` (N x 3072) and ``labels``.

    Images carry a class-dependent colour so a small CNN can learn them.
    """
    rng = np.random.default_rng(0)
    path = root / "cifar-10-batches-py"
    path.mkdir(parents=True)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(path / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in names], b"num_cases_per_batch": per_batch}, f)
    for name in ["data_batch_1", "data_batch_2", "test_batch"]:
        labels = rng.integers(0, 10, per_batch)
        images = rng.integers(0, 60, (per_batch, 3, 32, 32))
        images[np.arange(per_batch), labels % 3] += 20 * (labels[:, None, None] + 1)
        batch = {b"batch_label": name.encode(), b"labels": labels.tolist(),
                 b"data": images.clip(0, 255).astype(np.uint8).reshape(per_batch, 3072),
                 b"filenames": [f"{i}.png".encode() for i in range(per_batch)]}  # fmt: skip
        with open(path / name, "wb") as f:
            pickle.dump(batch, f)
    return path


def execute(name: str, tmp_path: Path, env: dict[str, str]) -> Any:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    saved = dict(os.environ)
    os.environ.update(env, DET_JUPYTER_HOME=str(tmp_path / "home"))
    try:  # the kernel inherits this process's environment
        NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return nb


def text_of(nb: Any) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def test_iris_keras_notebook(tmp_path: Path) -> None:
    nb = execute("iris_keras", tmp_path, {"IRIS_MAX_TRIALS": "4", "IRIS_MAX_TIME": "64"})
    text = text_of(nb)
    assert "COMPLETED" in text
    (line,) = [t for t in text.splitlines() if t.startswith("predicted species:")]
    species = ast.literal_eval(line.split(":", 1)[1].strip())
    assert len(species) == 3 and set(species) <= {"setosa", "versicolor", "virginica"}
    widget_outputs = [o for c in nb.cells for o in c.get("outputs", [])
                      if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]  # fmt: skip
    assert widget_outputs, "the %%det_experiment cell displays the live widget"


def test_cifar10_torch_notebook(tmp_path: Path) -> None:
    data_dir = write_cifar_batches(tmp_path / "data")
    nb = execute("cifar10_torch", tmp_path,
                 {"DATA_DIR": str(data_dir), "CIFAR_MAX_TRIALS": "2", "CIFAR_EPOCHS": "2"})  # fmt: skip
    text = text_of(nb)
    assert "2 training batches, 80 images" in text
    assert "COMPLETED" in text and "val_accuracy=" in text
    predicted = [t for t in text.splitlines() if t.startswith("predicted:")]
    assert predicted and len(ast.literal_eval(predicted[0].split(":", 1)[1].strip())) == 8


def test_mnist_core_api_notebook(tmp_path: Path) -> None:
    nb = execute("mnist_core_api", tmp_path, {"DIGITS_MAX_TIME": "3", "DIGITS_GRID_COUNT": "2"})
    text = text_of(nb)
    assert "val_accuracy" in text
    best = [t for t in text.splitlines() if t.startswith("best ")]
    assert best and float(best[0].rsplit("=", 1)[1]) > 0.5  # digits are learnable in 3 epochs
    predicted = [t for t in text.splitlines() if t.startswith("predicted:")]
    assert len(ast.literal_eval(predicted[0].split(":", 1)[1].strip())) == 10
