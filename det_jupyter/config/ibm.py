"""Translate an IBM deep-learning-service training manifest into an experiment config.

IBM's service (and FfDL after it) took a model zip plus a manifest like
``/work/shared/examples/ibm_manifest.yml``. :func:`from_ibm_manifest` turns that manifest into the
experiment-config dict :func:`det_jupyter.config.experiment.load_config` validates; ``load_config`` does this by
itself for any mapping with a top-level ``model_definition``.

=============================================  ================================================================
manifest                                       experiment config
=============================================  ================================================================
``model_definition.name``                      ``name`` (default ``experiment``)
``model_definition.description``               ``description``
``model_definition.execution.command``         ``entrypoint``: a shell command, kept verbatim, ``${DATA_DIR}``
                                               included (the command runner provides ``DATA_DIR``)
``model_definition.execution.resourceType``    ``resources.slots_per_trial``: small 1, medium 2, large 4
                                               (default small; case-insensitive)
``model_definition.author``, ``.framework``    not used: the command runs as given
``training_data[i].source``                    ``data.source`` (one item) or ``data.sources`` (a list)
``training_results.target``                    ``data.results``; an ``s3_datastore`` target also gives
                                               ``checkpoint_storage: {type: s3, bucket: <container>}``,
                                               with ``connection.auth_url`` / ``user_name`` / ``password``
                                               as ``endpoint_url`` / ``access_key`` / ``secret_key``
(nothing)                                      ``searcher: {name: single, metric: loss, smaller_is_better: true,
                                               time_metric: batches, max_time: 1}``: one run of the command
=============================================  ================================================================

Unknown keys in the manifest are errors that suggest the closest key, as in experiment configs.

Example:
    >>> cfg = from_ibm_manifest({"model_definition": {"name": "tf-mnist", "execution": {
    ...     "command": "python3 train.py --data ${DATA_DIR}", "resourceType": "medium"}}})
    >>> cfg["entrypoint"], cfg["resources"]
    ('python3 train.py --data ${DATA_DIR}', {'slots_per_trial': 2})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from det_jupyter.config.formatting import choice_fix, show, unknown_keys
from det_jupyter.errors import ConfigError, FieldError

__all__ = ["RESOURCE_SLOTS", "from_ibm_manifest"]

RESOURCE_SLOTS: dict[str, int] = {"small": 1, "medium": 2, "large": 4}
"""Slots per trial for each IBM ``resourceType``."""

_KEYS = {
    "": ("model_definition", "training_data", "training_results"),
    "model_definition": ("name", "author", "description", "framework", "execution"),
    "model_definition.execution": ("command", "resourceType"),
}
_S3 = "s3_datastore"


def _section(manifest: Mapping[str, Any], path: str, errors: list[FieldError]) -> Mapping[str, Any]:
    """The mapping at dotted ``path`` (empty when absent), reporting a non-mapping and unknown keys."""
    node: Any = manifest
    for part in path.split(".") if path else ():
        node = node.get(part) if isinstance(node, Mapping) else None
    if node is None:
        return {}
    if not isinstance(node, Mapping):
        errors.append(
            FieldError(path, f"must be a mapping (got {show(node)})", "write `key: value` lines below it")
        )
        return {}
    prefix = f"{path}." if path else ""
    errors += [
        FieldError(prefix + str(p.loc[0]), p.message, p.fix) for p in unknown_keys(node, _KEYS[path], {})
    ]
    return node


def _location(item: Any, key: str, path: str, errors: list[FieldError]) -> dict[str, Any] | None:
    """``item[key]`` (a data store location such as ``{type: s3_datastore, container: ...}``), checked."""
    if not isinstance(item, Mapping) or not isinstance(item.get(key), Mapping):
        fix = f"write it as `{key}: {{type: s3_datastore, container: <bucket>}}`"
        errors.append(FieldError(path, f"must be a mapping with a `{key}` mapping (got {show(item)})", fix))
        return None
    return dict(item[key])


def _checkpoint_storage(
    target: Mapping[str, Any], path: str, errors: list[FieldError]
) -> dict[str, Any] | None:
    """S3 checkpoint storage for an ``s3_datastore`` target, else ``None``."""
    if target.get("type") != _S3:
        return None
    if not target.get("container"):
        errors.append(
            FieldError(f"{path}.container", "is required for s3_datastore", "add `container: <bucket>`")
        )
        return None
    storage: dict[str, Any] = {"type": "s3", "bucket": target["container"]}
    connection = target.get("connection")
    if isinstance(connection, Mapping):
        for ours, theirs in (
            ("endpoint_url", "auth_url"),
            ("access_key", "user_name"),
            ("secret_key", "password"),
        ):
            if connection.get(theirs):
                storage[ours] = connection[theirs]
    return storage


def from_ibm_manifest(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Translate an IBM deep-learning-service manifest into an experiment-config dict.

    Args:
        manifest: the parsed manifest (``model_definition``, ``training_data``, ``training_results``).

    Returns:
        A plain dict for :func:`det_jupyter.config.experiment.load_config` (not yet validated as a config).

    Raises:
        ConfigError: listing every problem, with manifest paths such as
            ``model_definition.execution.resourceType``.

    Example:
        >>> cfg = from_ibm_manifest({
        ...     "model_definition": {"name": "m", "execution": {"command": "python3 t.py", "resourceType": "large"}},
        ...     "training_results": {"target": {"type": "s3_datastore", "container": "results"}},
        ... })
        >>> cfg["resources"]["slots_per_trial"], cfg["checkpoint_storage"]
        (4, {'type': 's3', 'bucket': 'results'})
    """
    errors: list[FieldError] = []
    _section(manifest, "", errors)
    model = _section(manifest, "model_definition", errors)
    execution = _section(manifest, "model_definition.execution", errors)
    if not model:
        errors.append(
            FieldError("model_definition", "is required", "add `model_definition: {name, execution}`")
        )
    command = execution.get("command")
    if not isinstance(command, str) or not command.strip():
        fix = "add `command: <shell command that trains the model>` under model_definition.execution"
        got = "none" if command is None else show(command)
        errors.append(
            FieldError("model_definition.execution.command", f"must be a shell command (got {got})", fix)
        )
    resource_type = execution.get("resourceType", "small")
    slots = RESOURCE_SLOTS.get(str(resource_type).lower())
    if slots is None:
        errors.append(
            FieldError(
                "model_definition.execution.resourceType",
                f"must be one of {', '.join(RESOURCE_SLOTS)} (got {show(resource_type)})",
                choice_fix(str(resource_type).lower(), list(RESOURCE_SLOTS)),
            )
        )
    config: dict[str, Any] = {
        "name": model.get("name", "experiment"),
        "description": model.get("description", ""),
        "entrypoint": command,
        "resources": {"slots_per_trial": slots},
        "searcher": {
            "name": "single",
            "metric": "loss",
            "smaller_is_better": True,
            "time_metric": "batches",
            "max_time": 1,
        },
    }
    data: dict[str, Any] = {}
    training_data = manifest.get("training_data")
    if training_data is not None:
        items = training_data if isinstance(training_data, list) else [training_data]
        path = "training_data" if items is not training_data else "training_data[{}]"
        sources = [_location(item, "source", path.format(i), errors) for i, item in enumerate(items)]
        data.update({"source": sources[0]} if len(sources) == 1 else {"sources": sources})
    results = manifest.get("training_results")
    if results is not None:
        target = _location(results, "target", "training_results", errors)
        if target is not None:
            data["results"] = target
            storage = _checkpoint_storage(target, "training_results.target", errors)
            if storage is not None:
                config["checkpoint_storage"] = storage
    if data:
        config["data"] = data
    if errors:
        raise ConfigError(errors)
    return config
