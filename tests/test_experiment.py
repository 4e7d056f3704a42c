"""create_experiment: validated once, and refused before anything is written when no worker has the slots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import det_jupyter
from det_jupyter.errors import ClusterError, ConfigError
from det_jupyter.store import Store

CONFIG = {
    "name": "too-big",
    "searcher": {"name": "single", "metric": "loss", "time_metric": "batches", "max_time": 1},
    "resources": {"slots_per_trial": 64},
}


def train(ctx: det_jupyter.TrialContext) -> None:
    ctx.report_validation_metrics(1, {"loss": 0.0})


def test_slots_per_trial_is_refused_at_submit_before_anything_is_written(
    dask_client: Any, tmp_path: Path
) -> None:
    store = Store(tmp_path / "det.db")
    with pytest.raises(
        ClusterError, match=r"slots_per_trial=64 needs 64 CPU slots .*, but the cluster has 2"
    ):
        det_jupyter.create_experiment(CONFIG, train, cluster=dask_client, store=store)
    assert store.list_experiments() == []


def test_config_errors_come_before_the_cluster_is_touched(tmp_path: Path) -> None:
    bad = {**CONFIG, "resources": {"slots_per_trial": -1}}
    with pytest.raises(ConfigError, match=r"resources\.slots_per_trial"):
        det_jupyter.create_experiment(
            bad, train, cluster="tcp://nowhere.invalid:1", store=tmp_path / "det.db"
        )
