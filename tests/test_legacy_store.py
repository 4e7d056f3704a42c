"""An experiment stored by an older det_jupyter still loads its best checkpoint (fixtures/legacy_store).

The fixture was written by the flat-layout package (before ``det_jupyter/`` was split into
subpackages; see ``fixtures/make_legacy_store.py``): its pickled entrypoints name old module paths
(``det_jupyter.context``, ``det_jupyter.storage``, ``det_jupyter.store``) by reference.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import det_jupyter

FIXTURE = Path(__file__).parent / "fixtures" / "legacy_store"


@pytest.fixture
def legacy_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    shutil.copytree(FIXTURE, home)
    monkeypatch.setenv("DET_JUPYTER_HOME", str(home))
    return home


def test_core_api_experiment_loads_and_predicts(legacy_home: Path) -> None:
    import torch

    exp = det_jupyter.get_experiment(1)
    assert exp.name == "legacy-core-api"
    assert exp.state == det_jupyter.ExperimentState.COMPLETED
    best = exp.best_trial()
    assert best is not None and best.hparams == {"x": -0.25}
    model = exp.best_checkpoint().load()
    assert isinstance(model, torch.nn.Module)
    assert model(torch.zeros(2, 4)).shape == (2, 3)


def test_trial_class_experiment_loads_and_predicts(legacy_home: Path) -> None:
    import torch

    exp = det_jupyter.get_experiment(2)
    assert exp.name == "legacy-torch-trial"
    assert exp.config.searcher.metric == "val_accuracy"
    ckpt = exp.best_checkpoint()
    assert ckpt is not None and ckpt.steps > 0
    model = ckpt.load()
    assert model(torch.zeros(5, 4)).shape == (5, 3)


def test_frozen_entrypoints_thaw_with_their_old_module_references(legacy_home: Path) -> None:
    from det_jupyter.experiment import open_store

    store = open_store()
    blob, _ = store.get_entrypoint(1)
    assert b"det_jupyter.context" in blob  # the fixture really names the old module
    from det_jupyter.engine.definition import thaw

    train = thaw(blob)
    assert train.__annotations__["ctx"] is det_jupyter.TrialContext
