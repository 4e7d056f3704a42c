"""Experiment configs: Determined-compatible YAML / dicts in, one validated, frozen ``ExperimentConfig`` out.

``experiment`` holds the top-level model and :func:`load_config`; ``names`` the searcher names and
time-metric units (the one list of each); ``sections`` the section base, lengths, resources and
checkpoint storage; ``environment`` the environment section; ``searcher`` the searcher section;
``cluster_only`` Determined's cluster settings (accepted, validated, ignored with one warning);
``entrypoints`` what kind of entrypoint a config names; ``formatting`` turns pydantic errors into
``FieldError`` s that name the field, its YAML line and the fix; ``ibm`` translates IBM
deep-learning-service manifests; ``redact`` hides secrets for display.

Example:
    >>> from det_jupyter.config import load_config
    >>> load_config({"searcher": {"name": "single", "metric": "loss", "time_metric": "batches", "max_time": 5}}).searcher.name
    'single'
"""

from __future__ import annotations

from det_jupyter.config.entrypoints import EntrypointKind, entrypoint_kind
from det_jupyter.config.environment import EnvironmentConfig
from det_jupyter.config.experiment import ExperimentConfig, load_config
from det_jupyter.config.names import SEARCHER_NAMES, TIME_METRICS, SearcherName, TimeMetric
from det_jupyter.config.searcher import SearcherConfig
from det_jupyter.config.sections import (
    CheckpointStorageConfig,
    Length,
    ReproducibilityConfig,
    ResourcesConfig,
)

__all__ = [
    "SEARCHER_NAMES",
    "TIME_METRICS",
    "CheckpointStorageConfig",
    "EntrypointKind",
    "EnvironmentConfig",
    "ExperimentConfig",
    "Length",
    "ReproducibilityConfig",
    "ResourcesConfig",
    "SearcherConfig",
    "SearcherName",
    "TimeMetric",
    "entrypoint_kind",
    "load_config",
]
