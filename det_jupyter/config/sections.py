"""Config sections shared by :mod:`det_jupyter.config.experiment`: the section base, lengths, resources, storage.

Every section is a frozen pydantic model that forbids unknown keys and collects *all* its problems
before raising (see :class:`Section`). The searcher section lives in :mod:`det_jupyter.config.searcher`
and the whole experiment in :mod:`det_jupyter.config.experiment`, which re-exports everything public here.

Example:
    >>> CheckpointStorageConfig(type="s3", bucket="ckpts", prefix="exp1").resolve_url("/tmp")
    's3://ckpts/exp1'
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainValidator,
    Strict,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError, PydanticKnownError
from typing_extensions import Self

from det_jupyter.config.formatting import (
    ERROR_TYPE,
    Problem,
    choice_fix,
    from_pydantic,
    problems_error,
    show,
    unknown_keys,
)
from det_jupyter.config.names import TIME_METRICS, TimeMetric
from det_jupyter.errors import FieldError

__all__ = [
    "DETERMINED_ONLY",
    "LENGTH_UNITS",
    "CheckpointStorageConfig",
    "Device",
    "Length",
    "ReproducibilityConfig",
    "ResourcesConfig",
    "Section",
    "SlotType",
    "given_keys",
    "owner_problems",
]

PosInt = Annotated[int, Strict(), Field(ge=1)]
NonNegInt = Annotated[int, Strict(), Field(ge=0)]
Bool = Annotated[bool, Strict()]


def _slot_count(value: Any) -> int | float:
    """``resources.slots_per_trial``: a whole number of slots (>= 0), or a fraction of one (0 < x < 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticKnownError("int_type")
    if isinstance(value, int):
        if value < 0:
            raise PydanticKnownError("greater_than_equal", {"ge": 0})
        return value
    if 0 < value < 1:
        return value
    message = (
        f"must be a whole number of slots, or a fraction of one slot between 0 and 1 (got {show(value)})"
    )
    fix = "write a whole number (1, 2, ...) or a fraction such as 0.25 (4 trials share a GPU)"
    raise PydanticCustomError(ERROR_TYPE, "{message}", {"message": message, "fix": fix})


SlotCount = Annotated[int | float, PlainValidator(_slot_count)]
"""Slots per trial: whole slots, or a share of one GPU (``0.25``: four such trials pack on one GPU)."""
LENGTH_UNITS: tuple[TimeMetric, ...] = TIME_METRICS  # the one list lives in det_jupyter.config.names
SlotType = Literal["auto", "gpu", "cpu"]
"""``resources.slot_type``: what a trial asks Dask for (``auto``: GPUs when the cluster has them)."""
DETERMINED_ONLY = ("is a Determined cluster setting that det_jupyter does not support", "remove it")


def given_keys(data: Mapping[str, Any]) -> set[str]:
    """Keys present with a value (``key: null`` counts as absent, as in Determined)."""
    return {k for k, v in data.items() if v is not None}


def owner_problems(
    data: Mapping[str, Any], owners: Mapping[str, tuple[str, ...]], kind: str, selector: str, chosen: str
) -> list[Problem]:
    """Errors for keys given in ``data`` that only another ``kind`` (searcher, storage type) uses."""
    problems = []
    for key in sorted(given_keys(data) & owners.keys()):
        if chosen not in owners[key]:
            users = " and ".join(owners[key])
            problems.append(
                Problem(
                    (key,),
                    f"is only used by the {users} {kind}, not {chosen}",
                    f"remove it, or set `{selector}: {owners[key][0]}`",
                    data[key],
                )
            )
    return problems


class Section(BaseModel):
    """Base of the config sections: frozen, unknown keys forbidden, all problems collected at once.

    Subclasses add raw cross-field checks in :meth:`_check` (run even when some fields have the wrong
    type, so that one error report lists everything) and normalise in :meth:`_finish`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    UNSUPPORTED_KEYS: ClassVar[Mapping[str, tuple[str, str]]] = {}
    ALIASES: ClassVar[Mapping[str, str]] = {}
    """Other names a key may be written under (``{alias: field}``); stored under the field's name."""

    @classmethod
    def _check(cls, data: Mapping[str, Any], derived: dict[str, Any]) -> list[Problem]:
        """Cross-field problems in the raw ``data``; may leave results for :meth:`_finish` in ``derived``."""
        return []

    def _finish(self, derived: dict[str, Any]) -> None:
        """Normalise the validated instance in place (it is frozen afterwards)."""

    @model_validator(mode="wrap")
    @classmethod
    def _collect(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        if isinstance(data, cls):
            return handler(data)
        problems: list[Problem] = []
        derived: dict[str, Any] = {}
        written: dict[str, str] = {}  # field -> the alias the config wrote it under
        if isinstance(data, Mapping) and cls.ALIASES:
            written = {f: a for a, f in cls.ALIASES.items() if a in data and f not in data}
            data, problems = _apply_aliases(data, cls.ALIASES)
        if isinstance(data, Mapping):
            problems += unknown_keys(data, list(cls.model_fields), cls.UNSUPPORTED_KEYS)
            problems += cls._check(data, derived)
            # `key: null` means "not given", as in Determined: the field's default applies
            data = {k: v for k, v in data.items() if v is not None or k not in cls.model_fields}
        try:
            model = handler(data)
        except ValidationError as exc:
            problems += from_pydantic(exc, skip_own_extra=True)
        if problems:
            if written:  # name the key as the config wrote it
                problems = [
                    p._replace(loc=(written[p.loc[0]], *p.loc[1:])) if p.loc and p.loc[0] in written else p
                    for p in problems
                ]
            raise problems_error(cls.__name__, problems)
        model._finish(derived)
        return model


def _apply_aliases(
    data: Mapping[str, Any], aliases: Mapping[str, str]
) -> tuple[dict[str, Any], list[Problem]]:
    """``data`` with every alias renamed to its field; a problem for each key given under both names."""
    out, problems = dict(data), []
    for alias, field in aliases.items():
        if alias not in out:
            continue
        value = out.pop(alias)
        if out.get(field) is not None and value is not None:
            message = f"given together with {field}; both set the same thing"
            problems.append(Problem((alias,), message, f"keep one of `{alias}` and `{field}`", value))
        elif value is not None or field not in out:
            out[field] = value
    return out, problems


class Length(BaseModel):
    """A training length: a one-key mapping ``{batches|epochs|records: N}``, as Determined writes it.

    Attributes:
        unit: ``batches``, ``epochs`` or ``records``.
        value: how many of them, >= 1.

    Example:
        >>> Length.model_validate({"epochs": 3})
        Length(unit='epochs', value=3)
        >>> Length(unit="batches", value=100).model_dump()
        {'batches': 100}
    """

    model_config = ConfigDict(frozen=True)
    unit: TimeMetric
    value: int

    @model_validator(mode="wrap")
    @classmethod
    def _parse(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        if isinstance(data, cls):
            return data
        fix = "write it as one unit and a count, e.g. `{epochs: 3}` or `{batches: 1000}`"
        if not isinstance(data, Mapping):
            raise problems_error(
                cls.__name__, [Problem((), f"must be a mapping (got {show(data)})", fix, data)]
            )
        if set(data) == {"unit", "value"}:  # the keyword form, Length(unit=..., value=...)
            unit, value, loc = data["unit"], data["value"], ("value",)
        elif len(data) != 1:
            units = ", ".join(map(repr, data))
            message = f"must name exactly one unit of {', '.join(LENGTH_UNITS)} (got {units or 'none'})"
            raise problems_error(cls.__name__, [Problem((), message, fix, dict(data))])
        else:
            [(unit, value)] = data.items()
            loc = (str(unit),)
        problems = []
        if unit not in LENGTH_UNITS:
            message = f"unknown length unit {show(unit)}; units are {', '.join(LENGTH_UNITS)}"
            problems.append(Problem(loc, message, choice_fix(unit, LENGTH_UNITS), value))
        if type(value) is not int:
            problems.append(Problem(loc, f"must be an integer (got {show(value)})", fix, value))
        elif value < 1:
            problems.append(Problem(loc, f"must be >= 1 (got {value})", "use 1 or more", value))
        if problems:
            raise problems_error(cls.__name__, problems)
        return handler({"unit": unit, "value": value})

    @model_serializer
    def _serialise(self) -> dict[str, int]:
        return {self.unit: self.value}


class Device(Section):
    """A device to pass into a Determined task container (``resources.devices``; ignored here).

    Example:
        >>> Device(host_path="/dev/fuse", container_path="/dev/fuse").mode is None
        True
    """

    host_path: str
    container_path: str
    mode: str | None = None


_DEVICE_STRING = re.compile(r"^/[^:]*:/[^:]*(:[rwm]*)?")
_MEMORY_SIZE = re.compile(r"^([0-9]*[.])?[0-9]+ ?(([kmgtpKMGTP]([iI]?[bB])?)|[bB])?$")


class ResourcesConfig(Section):
    """What one trial needs from the cluster.

    Attributes:
        slots_per_trial: devices per trial (GPUs, or CPU processes on CPU workers); > 1 runs the
            trial data-parallel. Determined's ``0`` (a trial without a GPU) becomes one CPU slot
            (``slots_per_trial: 1``, ``slot_type: cpu``). Our extension: a fraction ``0 < x < 1``
            packs small trials on one GPU (``0.25`` asks Dask for ``{GPU: 0.25}``; ``docs/deploy.md``).
        slot_type: our extension to Determined: ``gpu`` or ``cpu`` forces the kind of slot a trial
            asks Dask for; ``auto`` (default) uses GPUs when the cluster has them, else CPUs.
        max_slots: upper bound on slots the whole experiment uses at once (``None``: no bound).
        slots, native_parallel, agent_label, devices, is_single_node, priority, resource_pool,
            shm_size, weight: Determined cluster settings, validated and kept, but ignored (Dask
            schedules the trials; see :mod:`det_jupyter.config.cluster_only`).

    Example:
        >>> ResourcesConfig(slots_per_trial=2).slot_type
        'auto'
        >>> r = ResourcesConfig.model_validate({"slots_per_trial": 0})
        >>> r.slots_per_trial, r.slot_type
        (1, 'cpu')
        >>> ResourcesConfig(slots_per_trial=0.25).slots_per_trial
        0.25
    """

    slots_per_trial: SlotCount = 1
    slot_type: SlotType = "auto"
    max_slots: PosInt | None = None
    slots: Annotated[int, Strict()] | None = None
    native_parallel: Bool | None = None
    agent_label: str | None = None
    devices: list[Device | str] | None = None
    is_single_node: Bool | None = None
    priority: Annotated[int, Strict(), Field(ge=1, le=99)] | None = None
    resource_pool: str | None = None
    shm_size: Annotated[int, Strict()] | str | None = None
    weight: Annotated[float, Strict()] | None = None

    @classmethod
    def _check(cls, data: Mapping[str, Any], derived: dict[str, Any]) -> list[Problem]:
        problems = []
        size = data.get("shm_size")
        if isinstance(size, str) and not _MEMORY_SIZE.match(size):
            fix = "write a size such as 4294967296, 4GB, 4GiB or 512 MiB"
            problems.append(
                Problem(("shm_size",), f"must be a valid memory size (got {show(size)})", fix, size)
            )
        for i, device in enumerate(data.get("devices") or []):
            if isinstance(device, str) and not _DEVICE_STRING.match(device):
                fix = "write it as /host/path:/container/path[:rwm], or as {host_path, container_path}"
                message = f"must look like /host:/container[:mode] (got {show(device)})"
                problems.append(Problem(("devices", i), message, fix, device))
        if data.get("slots_per_trial") == 0 and data.get("slot_type") == "gpu":
            message = "0 slots per trial means a trial without a GPU, but slot_type is gpu"
            problems.append(Problem(("slots_per_trial",), message, "use slots_per_trial: 1 or more", 0))
        return problems

    def _finish(self, derived: dict[str, Any]) -> None:
        if self.slots_per_trial == 0:  # Determined: a CPU-only trial; here one CPU slot
            object.__setattr__(self, "slots_per_trial", 1)
            object.__setattr__(self, "slot_type", "cpu")


STORAGE_TYPES = ("shared_fs", "directory", "fsspec", "s3", "gcs", "azure")
"""``checkpoint_storage.type`` values: Determined's five and det_jupyter's ``fsspec`` (any fsspec URL)."""

_STORAGE_OWNERS: dict[str, tuple[str, ...]] = {
    "host_path": ("shared_fs",),
    "storage_path": ("shared_fs",),
    "propagation": ("shared_fs",),
    "checkpoint_path": ("shared_fs",),
    "tensorboard_path": ("shared_fs",),
    "container_path": ("directory", "shared_fs"),
    "url": ("fsspec",),
    "bucket": ("s3", "gcs"),
    "prefix": ("s3", "gcs"),
    **{k: ("s3",) for k in ("endpoint_url", "access_key", "secret_key")},
    **{k: ("azure",) for k in ("container", "connection_string", "account_url", "credential")},
}


def _prefix_escapes(prefix: str) -> bool:
    """Determined's rule: a storage prefix may not climb out of the bucket with ``..``."""
    return bool(re.search(r"(^|/)\.\.(/|$)", prefix))


class CheckpointStorageConfig(Section):
    """Where checkpoints go, and how many are kept; every Determined storage type, through fsspec.

    Attributes:
        type: ``shared_fs`` (``host_path``/``storage_path``), ``directory`` (``container_path``),
            ``fsspec`` (any fsspec ``url``), ``s3`` (``bucket`` required, ``prefix``,
            ``endpoint_url``, ``access_key``, ``secret_key``), ``gcs`` (``bucket`` required,
            ``prefix``: ``gs://bucket/prefix``, credentials from the environment as gcsfs finds
            them) or ``azure`` (``container`` required and exactly one of ``connection_string`` /
            ``account_url``, with an optional ``credential`` for the latter: ``az://container``).
            Keys of another type are an error.
        save_experiment_best, save_trial_best, save_trial_latest: how many checkpoints garbage
            collection keeps (>= 0).
        propagation, checkpoint_path, tensorboard_path (shared_fs): container mount settings of
            Determined, kept but ignored.

    Local paths starting with ``~`` are expanded to the home directory of the submitting user.

    Example:
        >>> CheckpointStorageConfig(type="s3", bucket="ckpts", prefix="exp1").resolve_url("/tmp")
        's3://ckpts/exp1'
        >>> CheckpointStorageConfig(type="gcs", bucket="ckpts", prefix="a/b").resolve_url("/tmp")
        'gs://ckpts/a/b'
        >>> CheckpointStorageConfig(host_path="~/ckpts").host_path == os.path.expanduser("~/ckpts")
        True
    """

    type: Literal["shared_fs", "directory", "fsspec", "s3", "gcs", "azure"] = "shared_fs"
    host_path: str | None = None
    storage_path: str | None = None
    container_path: str | None = None
    propagation: str | None = None
    checkpoint_path: str | None = None
    tensorboard_path: str | None = None
    url: Annotated[str, Field(min_length=1)] | None = None
    bucket: Annotated[str, Field(min_length=1)] | None = None
    prefix: str | None = None
    endpoint_url: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    container: Annotated[str, Field(min_length=1)] | None = None
    connection_string: str | None = None
    account_url: str | None = None
    credential: str | None = None
    save_experiment_best: NonNegInt = 0
    save_trial_best: NonNegInt = 1
    save_trial_latest: NonNegInt = 1

    @field_validator("host_path", "storage_path", "container_path", mode="after")
    @classmethod
    def _expand_home(cls, value: str | None) -> str | None:
        return os.path.expanduser(value) if value else value  # `~/ckpts` means the home, as in a shell

    @field_validator("url", mode="after")
    @classmethod
    def _expand_home_url(cls, value: str | None) -> str | None:
        return os.path.expanduser(value) if value and value.startswith("~") else value  # local paths only

    @classmethod
    def _check(cls, data: Mapping[str, Any], derived: dict[str, Any]) -> list[Problem]:
        kind = data.get("type", "shared_fs")
        if kind not in STORAGE_TYPES:
            return []  # the type itself is reported by field validation
        problems = owner_problems(data, _STORAGE_OWNERS, "checkpoint storage", "type", kind)
        given = given_keys(data)
        required = {
            "s3": ("bucket", "add `bucket: <bucket name>`"),
            "gcs": ("bucket", "add `bucket: <bucket name>`"),
            "fsspec": ("url", "add `url: <fsspec URL>`"),
            "azure": ("container", "add `container: <blob container name>`"),
        }
        if kind in required and required[kind][0] not in given:
            key, fix = required[kind]
            problems.append(Problem((key,), f"is required for {kind} checkpoint storage", fix))
        prefix = data.get("prefix")
        if kind in ("s3", "gcs") and isinstance(prefix, str) and _prefix_escapes(prefix):
            message = f"must not contain a `..` path part (got {show(prefix)})"
            problems.append(Problem(("prefix",), message, "write a path inside the bucket", prefix))
        if kind == "azure":
            problems += _azure_problems(data, given)
        if kind == "shared_fs":
            problems += _shared_fs_problems(data)
        return problems

    def resolve_url(self, default_root: str) -> str:
        """The fsspec URL or local path checkpoints are written under.

        Args:
            default_root: used by ``shared_fs``/``directory`` storage that names no path.

        Example:
            >>> CheckpointStorageConfig(host_path="/mnt", storage_path="ckpt").resolve_url("/tmp")
            '/mnt/ckpt'
            >>> CheckpointStorageConfig().resolve_url("/tmp/det")
            '/tmp/det'
            >>> CheckpointStorageConfig(type="azure", container="ckpts", account_url="https://me.blob.core.windows.net").resolve_url("")
            'az://ckpts'
        """
        if self.type in ("s3", "gcs"):
            scheme = "s3" if self.type == "s3" else "gs"
            prefix = (self.prefix or "").strip("/")
            return f"{scheme}://{self.bucket}/{prefix}" if prefix else f"{scheme}://{self.bucket}"
        if self.type == "azure":
            return f"az://{self.container}"
        if self.type == "fsspec":
            return self.url or default_root  # url is required for fsspec; validated above
        if self.type == "directory":
            return self.container_path or default_root
        parts = [p for p in (self.host_path, self.storage_path) if p]
        return os.path.join(*parts) if parts else default_root

    def local_path_problem(self) -> FieldError | None:
        """Why the local directory this config names cannot take checkpoints, or ``None`` when it can.

        Only paths the config names (``host_path``/``storage_path``, ``container_path``, an ``fsspec``
        ``url`` without a scheme or with ``file://``) are checked, on the submitting machine, without
        creating anything: the path must be a writable directory, or not exist yet below a writable
        directory. Remote URLs (s3, gcs ...) are checked by fsspec when the first checkpoint is written.

        Example:
            >>> CheckpointStorageConfig(host_path="/dev/null").local_path_problem().path
            'checkpoint_storage.host_path'
            >>> CheckpointStorageConfig(type="s3", bucket="b").local_path_problem() is None
            True
        """
        if self.type == "shared_fs" and self.host_path:
            field = "host_path"
        elif self.type == "directory" and self.container_path:
            field = "container_path"
        elif self.type == "fsspec" and self.url and ("://" not in self.url or self.url.startswith("file://")):
            field = "url"
        else:
            return None
        path = self.resolve_url("").removeprefix("file://")
        where = f"checkpoint_storage.{field}"
        fix = "give a writable directory on a disk every worker can reach"
        probe = path
        while not os.path.exists(probe):  # the nearest existing ancestor would be where it is created
            parent = os.path.dirname(probe.rstrip(os.sep)) or "."
            if parent == probe:
                break
            probe = parent
        if not os.path.isdir(probe):
            what = "is" if probe == path else f"would be created under {probe!r}, which is"
            return FieldError(where, f"checkpoint path {path!r} {what} not a directory", fix)
        if not os.access(probe, os.W_OK | os.X_OK):
            what = "is" if probe == path else f"would be created under {probe!r}, which is"
            return FieldError(where, f"checkpoint path {path!r} {what} not writable by this user", fix)
        return None

    def storage_options(self) -> dict[str, Any]:
        """Keyword arguments for fsspec: s3 endpoint and credentials; azure account and credential.

        ``gcs`` needs none: gcsfs finds credentials as Google's libraries do
        (``GOOGLE_APPLICATION_CREDENTIALS``, gcloud, the metadata server).

        Example:
            >>> CheckpointStorageConfig(type="s3", bucket="b", endpoint_url="http://minio:9000").storage_options()
            {'client_kwargs': {'endpoint_url': 'http://minio:9000'}}
            >>> CheckpointStorageConfig(type="azure", container="c", account_url="https://me.blob.core.windows.net",
            ...                         credential="sas").storage_options()
            {'account_name': 'me', 'credential': 'sas'}
        """
        options: dict[str, Any] = {}
        if self.type == "azure":
            if self.connection_string:
                options["connection_string"] = self.connection_string
            if self.account_url:
                host = urlsplit(self.account_url).hostname or self.account_url
                options["account_name"] = host.split(".")[0]
                if not host.endswith(".blob.core.windows.net"):
                    options["account_host"] = host
            if self.credential:
                options["credential"] = self.credential
            return options
        if self.type != "s3":
            return {}
        if self.endpoint_url:
            options["client_kwargs"] = {"endpoint_url": self.endpoint_url}
        if self.access_key:
            options["key"] = self.access_key
        if self.secret_key:
            options["secret"] = self.secret_key
        return options


def _azure_problems(data: Mapping[str, Any], given: set[str]) -> list[Problem]:
    """Determined's azure rules: exactly one of connection_string / account_url; no credential with a
    connection string (it carries its own)."""
    has_string, has_url = "connection_string" in given, "account_url" in given
    if has_string and has_url:
        message = "given together with account_url; give exactly one of them"
        fix = "keep `connection_string`, or `account_url` (+ `credential`)"
        return [Problem(("connection_string",), message, fix, data["connection_string"])]
    if not (has_string or has_url):
        fix = "add `connection_string: ...`, or `account_url: https://<account>.blob.core.windows.net`"
        return [
            Problem(
                ("connection_string",), "azure checkpoint storage needs connection_string or account_url", fix
            )
        ]
    if has_string and "credential" in given:
        message = "a credential cannot be given with a connection_string (the string carries it)"
        return [Problem(("credential",), message, "remove `credential`", data["credential"])]
    return []


def _shared_fs_problems(data: Mapping[str, Any]) -> list[Problem]:
    """Determined's rule: storage_path is relative, or an absolute path inside host_path."""
    host, path = data.get("host_path"), data.get("storage_path")
    if not (isinstance(host, str) and isinstance(path, str)):
        return []
    base = os.path.normpath(host)
    full = os.path.normpath(os.path.join(base, path))  # an absolute storage_path replaces host_path
    if full == base or full.startswith(base.rstrip(os.sep) + os.sep):
        return []
    message = f"must be a relative directory or a subdirectory of host_path {host!r} (got {show(path)})"
    return [Problem(("storage_path",), message, "write a path inside host_path", path)]


class ReproducibilityConfig(Section):
    """Seeds. ``experiment_seed`` (0 <= seed < 2**31) makes hyperparameter sampling repeatable.

    Example:
        >>> ReproducibilityConfig(experiment_seed=42).experiment_seed
        42
    """

    experiment_seed: Annotated[int, Strict(), Field(ge=0, lt=2**31)] | None = None
