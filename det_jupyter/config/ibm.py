"""Translate an IBM deep-learning-service training manifest into an experiment config, and speak IBM's
state names.

IBM's service (and FfDL after it) took a model zip plus a manifest like
``/work/shared/examples/ibm_manifest.yml``. :func:`from_ibm_manifest` turns that manifest into the
experiment-config dict :func:`det_jupyter.config.experiment.load_config` validates; ``load_config`` does this by
itself for any mapping with a top-level ``model_definition``. Submit it with the model directory or
zip: ``det-jupyter experiment create manifest.yml model.zip``.

=============================================  ================================================================
manifest                                       experiment config
=============================================  ================================================================
``model_definition.name``                      ``name`` (default ``experiment``)
``model_definition.description``               ``description``
``model_definition.execution.command``         ``entrypoint``: a shell command, kept verbatim, ``${DATA_DIR}``
                                               and ``${RESULT_DIR}`` included (the command runner sets them)
``model_definition.execution.resourceType``    ``resources.slots_per_trial``: small 1, medium 2, large 4
                                               (default small; case-insensitive)
``model_definition.author``, ``.framework``    not used: the command runs as given
``training_data[0].source``                    ``data.data_dir`` (a URL or local path; ``$DATA_DIR``); with
                                               several items, ``data.data_dirs`` lists them all
``training_results.target``                    ``data.result_dir`` (``$RESULT_DIR`` is copied there, under
                                               ``<experiment id>/<trial id>/``); an ``s3_datastore`` target
                                               also gives ``checkpoint_storage: {type: s3, bucket: <container>}``
location ``connection``                        ``data.storage_options``: the fsspec options (``key``, ``secret``,
                                               ``client_kwargs.endpoint_url``) for both locations (one
                                               connection: two different ones are an error), shown redacted
                                               (:mod:`det_jupyter.config.redact`)
(nothing)                                      ``labels: [ibm-manifest]`` (surfaces show IBM's state names),
                                               ``searcher: {name: single, metric: loss, smaller_is_better: true,
                                               time_metric: batches, max_time: 1}``: one run of the command
=============================================  ================================================================

A location (``source`` / ``target``) is one of:

- ``{type: s3_datastore, container: BUCKET, connection: {auth_url, user_name, password}}`` →
  ``s3://BUCKET`` (``path:`` inside the bucket optional);
- ``{type: fs, path: PATH_OR_URL}`` (``local`` is a synonym; ``container:`` optional, a directory or
  URL the ``path`` is inside) → the path, or any fsspec URL (``file://``, ``memory://``, ``gs://`` ...).
  A relative local path is made absolute against the current directory at submission.

Unknown keys in the manifest are errors that suggest the closest key, as in experiment configs.

Example:
    >>> cfg = from_ibm_manifest({"model_definition": {"name": "tf-mnist", "execution": {
    ...     "command": "python3 train.py --data ${DATA_DIR}", "resourceType": "medium"}},
    ...     "training_data": [{"source": {"type": "fs", "path": "/data/mnist"}}]})
    >>> cfg["entrypoint"], cfg["resources"], cfg["data"]
    ('python3 train.py --data ${DATA_DIR}', {'slots_per_trial': 2}, {'data_dir': '/data/mnist'})
    >>> ibm_state("ERROR"), ibm_state("ACTIVE", running=False)
    ('failed', 'pending')
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from det_jupyter.config.formatting import choice_fix, show, unknown_keys
from det_jupyter.errors import ConfigError, FieldError

__all__ = [
    "IBM_LABEL",
    "IBM_STATES",
    "LOCATION_TYPES",
    "RESOURCE_SLOTS",
    "from_ibm_manifest",
    "ibm_state",
    "is_from_manifest",
]

RESOURCE_SLOTS: dict[str, int] = {"small": 1, "medium": 2, "large": 4}
"""Slots per trial for each IBM ``resourceType``."""

IBM_LABEL = "ibm-manifest"
"""The label a translated manifest carries, so surfaces know to show IBM's state names too."""

IBM_STATES: dict[str, str] = {
    "QUEUED": "pending",
    "ACTIVE": "running",
    "PAUSED": "halted",
    "STOPPING_CANCELED": "canceled",
    "COMPLETED": "completed",
    "STOPPED": "completed",
    "CANCELED": "canceled",
    "ERROR": "failed",
}
"""IBM's name for each experiment / trial state of ours (a STOPPED trial, stopped early by the
searcher, completed as far as IBM's single run is concerned)."""

_S3 = "s3_datastore"
_FS = ("fs", "local")
LOCATION_TYPES = (_S3, *_FS)
"""The ``type`` values a manifest location may have."""

_KEYS = {
    "": ("model_definition", "training_data", "training_results"),
    "model_definition": ("name", "author", "description", "framework", "execution"),
    "model_definition.execution": ("command", "resourceType"),
}
_LOCATION_KEYS = ("type", "container", "path", "connection")
_CONNECTION = (("auth_url", "endpoint_url"), ("user_name", "key"), ("password", "secret"))


def ibm_state(state: str, *, running: bool = True) -> str:
    """IBM's name for one of our experiment or trial states (an enum or its value).

    Args:
        state: ``ExperimentState`` / ``TrialState`` (or the string value).
        running: for an ACTIVE experiment, whether any trial runs now; ``False`` shows ``pending``
            (IBM's word for a job waiting for resources).

    Example:
        >>> [ibm_state(s) for s in ("QUEUED", "ACTIVE", "PAUSED", "COMPLETED", "CANCELED")]
        ['pending', 'running', 'halted', 'completed', 'canceled']
    """
    value = getattr(state, "value", state)
    if value == "ACTIVE" and not running:
        return "pending"
    return IBM_STATES.get(str(value), str(value).lower())


def is_from_manifest(config: Mapping[str, Any]) -> bool:
    """Whether a (stored) experiment config was translated from an IBM manifest.

    Example:
        >>> is_from_manifest(from_ibm_manifest({"model_definition": {"execution": {"command": "sh run.sh"}}}))
        True
    """
    labels = config.get("labels") or ()
    return IBM_LABEL in labels


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
        fix = f"write it as `{key}: {{type: s3_datastore, container: <bucket>}}` or `{key}: {{type: fs, path: <dir>}}`"
        errors.append(FieldError(path, f"must be a mapping with a `{key}` mapping (got {show(item)})", fix))
        return None
    location = dict(item[key])
    errors += [
        FieldError(f"{path}.{key}.{p.loc[0]}", p.message, p.fix)
        for p in unknown_keys(location, _LOCATION_KEYS, {})
    ]
    return location


def _join(root: str, path: str) -> str:
    return f"{root.rstrip('/')}/{path.lstrip('/')}" if root and path else root or path


def _url(location: Mapping[str, Any], path: str, errors: list[FieldError]) -> str | None:
    """The URL (or absolute local path) a location names, else ``None`` with the problem in ``errors``."""
    kind = location.get("type")
    container, inner = location.get("container") or "", location.get("path") or ""
    if not isinstance(container, str) or not isinstance(inner, str):
        errors.append(FieldError(path, "`container` and `path` must be strings", "quote them"))
        return None
    if kind == _S3:
        if not container:
            errors.append(
                FieldError(f"{path}.container", "is required for s3_datastore", "add `container: <bucket>`")
            )
            return None
        return _join(f"s3://{container}", inner)
    if kind in _FS:
        url = _join(container, inner)
        if not url:
            errors.append(
                FieldError(
                    f"{path}.path", f"is required for type {kind}", "add `path: <directory or fsspec URL>`"
                )
            )
            return None
        return url if "://" in url else os.path.abspath(os.path.expanduser(url))
    errors.append(
        FieldError(
            f"{path}.type",
            f"must be one of {', '.join(LOCATION_TYPES)} (got {show(kind)})",
            choice_fix(str(kind), list(LOCATION_TYPES)),
        )
    )
    return None


def _storage_options(location: Mapping[str, Any]) -> dict[str, Any]:
    """fsspec options from a location's ``connection`` (s3fs's ``key`` / ``secret`` / endpoint)."""
    connection = location.get("connection")
    if not isinstance(connection, Mapping):
        return {}
    options: dict[str, Any] = {}
    for theirs, ours in _CONNECTION:
        if connection.get(theirs):
            if ours == "endpoint_url":
                options["client_kwargs"] = {"endpoint_url": connection[theirs]}
            else:
                options[ours] = connection[theirs]
    return options


def _checkpoint_storage(target: Mapping[str, Any]) -> dict[str, Any] | None:
    """S3 checkpoint storage for an ``s3_datastore`` target, else ``None``."""
    if target.get("type") != _S3 or not target.get("container"):
        return None
    storage: dict[str, Any] = {"type": "s3", "bucket": target["container"]}
    connection = target.get("connection")
    if isinstance(connection, Mapping):
        for theirs, ours in (
            ("auth_url", "endpoint_url"),
            ("user_name", "access_key"),
            ("password", "secret_key"),
        ):
            if connection.get(theirs):
                storage[ours] = connection[theirs]
    return storage


def _data(manifest: Mapping[str, Any], config: dict[str, Any], errors: list[FieldError]) -> dict[str, Any]:
    """The ``data`` section (``data_dir``, ``result_dir``, ``storage_options``) from the locations."""
    data: dict[str, Any] = {}
    options: dict[str, Any] = {}
    training_data = manifest.get("training_data")
    if training_data is not None:
        items = training_data if isinstance(training_data, list) else [training_data]
        path = "training_data" if items is not training_data else "training_data[{}]"
        urls = []
        for i, item in enumerate(items):
            location = _location(item, "source", path.format(i), errors)
            url = None if location is None else _url(location, f"{path.format(i)}.source", errors)
            urls.append(url)
            if i == 0 and location is not None and (opts := _storage_options(location)):
                options["data_dir"] = opts
        if urls:
            data["data_dir"] = urls[0]
        if len(urls) > 1:
            data["data_dirs"] = urls
    results = manifest.get("training_results")
    if results is not None:
        target = _location(results, "target", "training_results", errors)
        if target is not None:
            data["result_dir"] = _url(target, "training_results.target", errors)
            if opts := _storage_options(target):
                options["result_dir"] = opts
            storage = _checkpoint_storage(target)
            if storage is not None:
                config["checkpoint_storage"] = storage
    if len(options) == 2 and options["data_dir"] != options["result_dir"]:
        errors.append(
            FieldError(
                "training_results.target.connection",
                "differs from training_data's connection; the command runner takes one set of storage options",
                "store the data and the results behind the same connection (endpoint and credentials)",
            )
        )
    if options:
        data["storage_options"] = next(iter(options.values()))
    return data


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
        >>> cfg["resources"]["slots_per_trial"], cfg["data"], cfg["checkpoint_storage"]
        (4, {'result_dir': 's3://results'}, {'type': 's3', 'bucket': 'results'})
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
        "labels": [IBM_LABEL],
        "searcher": {
            "name": "single",
            "metric": "loss",
            "smaller_is_better": True,
            "time_metric": "batches",
            "max_time": 1,
        },
    }
    data = _data(manifest, config, errors)
    if data:
        config["data"] = data
    if errors:
        raise ConfigError(errors)
    return config
