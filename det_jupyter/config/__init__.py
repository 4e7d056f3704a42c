"""Experiment configs: Determined-compatible YAML / dicts in, one validated, frozen ``ExperimentConfig`` out.

``experiment`` holds the top-level model and :func:`load_config`; ``sections`` the nested sections;
``searcher`` the searcher section; ``formatting`` turns pydantic errors into ``FieldError`` s that name
the field, its YAML line and the fix; ``ibm`` translates IBM deep-learning-service manifests.

Example:
    >>> from det_jupyter.config import load_config
    >>> load_config({"searcher": {"name": "single", "metric": "loss", "max_time": 5}}).searcher.name
    'single'
"""

from __future__ import annotations

from det_jupyter.config.experiment import (
    SEARCHER_NAMES,
    CheckpointStorageConfig,
    EnvironmentConfig,
    ExperimentConfig,
    Length,
    ReproducibilityConfig,
    ResourcesConfig,
    SearcherConfig,
    load_config,
)

__all__ = [
    "SEARCHER_NAMES",
    "CheckpointStorageConfig",
    "EnvironmentConfig",
    "ExperimentConfig",
    "Length",
    "ReproducibilityConfig",
    "ResourcesConfig",
    "SearcherConfig",
    "load_config",
]
