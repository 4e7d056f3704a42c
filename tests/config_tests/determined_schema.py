"""Validate a value as one of Determined's expconf v0 schemas would, through det_jupyter's models.

Determined's published schema test cases (``tests/fixtures/determined/schema_cases.yaml``) each name
the schema they are valid or invalid for; :func:`validate_as` maps that schema to the part of
det_jupyter's config that reads it (the section model, or a whole config around it) and raises
:class:`~det_jupyter.errors.ConfigError` (or pydantic's ``ValidationError`` from a bare section) when
det_jupyter refuses the value.
"""

from __future__ import annotations

from typing import Any

import pydantic

from det_jupyter.config import load_config
from det_jupyter.config.cluster_only import BindMount, LogPolicy, ProfilingConfig, SecurityConfig
from det_jupyter.errors import ConfigError
from det_jupyter.hparams import parse_hyperparameters

SEARCHER = {"name": "single", "metric": "loss"}


def _whole(**sections: Any) -> None:
    load_config({"searcher": SEARCHER, **sections}, warn=False)


def _searcher(case: Any) -> None:
    # Determined's sanity check leaves `metric` for later ("eventually required"); det_jupyter needs it now
    data = {"metric": "loss", **case} if isinstance(case, dict) else case
    if (
        isinstance(data, dict)
        and data.get("name") in ("adaptive_asha", "async_halving")
        and "max_trials" not in data
    ):
        data = {**data, "max_trials": 4}
    if isinstance(data, dict) and data.get("name") == "custom" and "search_method" not in data:
        data = {**data, "search_method": "det_jupyter.searcher.random:RandomSearch"}
    _whole(searcher=data)


def validate_as(schema: str, case: Any) -> None:
    """Raise when det_jupyter refuses ``case`` read as Determined's ``schema`` (``s3``, ``searcher`` ...)."""
    if schema == "experiment":
        data = dict(case)
        data.setdefault("searcher", SEARCHER)
        if isinstance(data["searcher"], dict):
            data["searcher"] = {"metric": "loss", **data["searcher"]}
        load_config(data, warn=False)
    elif schema.startswith("searcher"):
        _searcher(case)
    elif schema == "environment":
        _whole(environment=case)
    elif schema == "environment-variables":
        _whole(environment={"environment_variables": case})
    elif schema == "environment-image":
        _whole(environment={"image": case})
    elif schema == "resources":
        _whole(resources=case)
    elif schema in ("checkpoint-storage", "s3", "gcs", "shared-fs", "directory", "azure"):
        _whole(checkpoint_storage=case)
    elif schema == "length":  # a period in records needs records_per_epoch here (det_jupyter's cross rule)
        _whole(min_validation_period=case, records_per_epoch=100)
    elif schema == "check-positive-length":
        _whole(searcher={**SEARCHER, "max_length": case})
    elif schema == "reproducibility":
        _whole(reproducibility=case)
    elif schema.startswith("hyperparameter"):
        parse_hyperparameters({"x": case})
    elif schema == "check-grid-hyperparameter":
        _whole(hyperparameters=case, searcher={**SEARCHER, "name": "grid"})
    elif schema in ("bind-mount", "profiling", "security", "log-policy"):
        model = {"bind-mount": BindMount, "profiling": ProfilingConfig, "security": SecurityConfig,
                 "log-policy": LogPolicy}[schema]  # fmt: skip
        model.model_validate(case)
    elif schema == "log-policies":
        _whole(log_policies=case)
    elif schema == "log-action":
        LogPolicy.model_validate({"name": "p", "action": case})
    else:
        raise KeyError(f"no mapping for Determined schema {schema!r}")


def refused(schema: str, case: Any) -> bool:
    try:
        validate_as(schema, case)
    except (ConfigError, pydantic.ValidationError):
        return True
    return False
