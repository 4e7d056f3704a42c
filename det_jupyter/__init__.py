"""det_jupyter: Determined-style experiments on Dask, from inside JupyterLab.

Example:
    >>> import det_jupyter
    >>> def train(ctx):
    ...     for step in range(1, 101):
    ...         ctx.report_training_metrics(step, {"loss": 1 / step})
    ...         if ctx.should_stop():
    ...             return
    ...     ctx.report_validation_metrics(100, {"val_loss": ctx.hparams["lr"]})
    >>> exp = det_jupyter.create_experiment(config, train)   # doctest: +SKIP
    >>> exp.wait(); exp.best_trial().hparams                  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from det_jupyter import _legacy, core
from det_jupyter.config import ExperimentConfig, load_config
from det_jupyter.core.cluster_info import ClusterInfo, TrialInfo, get_cluster_info
from det_jupyter.engine.cluster import cluster, shutdown_cluster
from det_jupyter.errors import (
    CheckpointError,
    ClusterError,
    ConfigError,
    DetJupyterError,
    NotFoundError,
    StoreError,
)
from det_jupyter.experiment import (
    Entrypoint,
    Experiment,
    create_experiment,
    get_experiment,
    list_experiments,
)
from det_jupyter.searcher.preview import preview_search
from det_jupyter.states import ExperimentState, TrialState
from det_jupyter.trial import Checkpoint, Trial
from det_jupyter.worker.context import TrialContext, local_context

_legacy.install()

__version__ = "0.1.0"

LOG_FORMAT = "%(levelname)s: [%(process)s] %(name)s: %(message)s"
"""Determined's ``det.LOG_FORMAT``, for ``logging.basicConfig(format=det.LOG_FORMAT)`` in Core API scripts."""


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext det_jupyter``: register ``%%det_experiment`` and ``%det`` (see :mod:`det_jupyter.notebook.magics`)."""
    from det_jupyter.notebook.magics import load_ipython_extension as load

    load(ip)


def unload_ipython_extension(ip: Any) -> None:
    """``%unload_ext det_jupyter``: close the Dask clients the magics opened."""
    from det_jupyter.notebook.magics import unload_ipython_extension as unload

    unload(ip)


__all__ = [
    "LOG_FORMAT",
    "Checkpoint",
    "CheckpointError",
    "ClusterError",
    "ClusterInfo",
    "ConfigError",
    "DetJupyterError",
    "Entrypoint",
    "Experiment",
    "ExperimentConfig",
    "ExperimentState",
    "NotFoundError",
    "StoreError",
    "Trial",
    "TrialContext",
    "TrialInfo",
    "TrialState",
    "cluster",
    "core",
    "create_experiment",
    "get_cluster_info",
    "get_experiment",
    "list_experiments",
    "load_config",
    "local_context",
    "preview_search",
    "shutdown_cluster",
]
