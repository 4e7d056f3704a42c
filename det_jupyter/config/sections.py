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
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    Strict,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from typing_extensions import Self

from det_jupyter.config.formatting import (
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
    "EnvironmentConfig",
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
        if isinstance(data, Mapping):
            problems += unknown_keys(data, list(cls.model_fields), cls.UNSUPPORTED_KEYS)
            problems += cls._check(data, derived)
        try:
            model = handler(data)
        except ValidationError as exc:
            problems += from_pydantic(exc, skip_own_extra=True)
        if problems:
            raise problems_error(cls.__name__, problems)
        model._finish(derived)
        return model


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


class ResourcesConfig(Section):
    """What one trial needs from the cluster.

    Attributes:
        slots_per_trial: devices per trial (GPUs, or CPU processes on CPU workers); > 1 runs the
            trial data-parallel.
        slot_type: our extension to Determined: ``gpu`` or ``cpu`` forces the kind of slot a trial
            asks Dask for; ``auto`` (default) uses GPUs when the cluster has them, else CPUs.
        max_slots: upper bound on slots the whole experiment uses at once (``None``: no bound).

    Example:
        >>> ResourcesConfig(slots_per_trial=2).slot_type
        'auto'
    """

    slots_per_trial: PosInt = 1
    slot_type: SlotType = "auto"
    max_slots: PosInt | None = None

    UNSUPPORTED_KEYS = {
        key: DETERMINED_ONLY
        for key in [
            "agent_label",
            "devices",
            "is_single_node",
            "priority",
            "resource_pool",
            "shm_size",
            "weight",
        ]
    }


_STORAGE_OWNERS: dict[str, tuple[str, ...]] = {
    "host_path": ("shared_fs",),
    "storage_path": ("shared_fs",),
    "container_path": ("directory",),
    "url": ("fsspec",),
    **{k: ("s3",) for k in ("bucket", "prefix", "endpoint_url", "access_key", "secret_key")},
}


class CheckpointStorageConfig(Section):
    """Where checkpoints go, and how many are kept.

    Attributes:
        type: ``shared_fs`` (``host_path``/``storage_path``), ``directory`` (``container_path``),
            ``fsspec`` (any fsspec ``url``) or ``s3`` (``bucket`` required, ``prefix``,
            ``endpoint_url``, ``access_key``, ``secret_key``). Keys of another type are an error.
        save_experiment_best, save_trial_best, save_trial_latest: how many checkpoints garbage
            collection keeps (>= 0).

    Local paths starting with ``~`` are expanded to the home directory of the submitting user.

    Example:
        >>> CheckpointStorageConfig(type="s3", bucket="ckpts", prefix="exp1").resolve_url("/tmp")
        's3://ckpts/exp1'
        >>> CheckpointStorageConfig(host_path="~/ckpts").host_path == os.path.expanduser("~/ckpts")
        True
    """

    type: Literal["shared_fs", "directory", "fsspec", "s3"] = "shared_fs"
    host_path: str | None = None
    storage_path: str | None = None
    container_path: str | None = None
    url: Annotated[str, Field(min_length=1)] | None = None
    bucket: Annotated[str, Field(min_length=1)] | None = None
    prefix: str | None = None
    endpoint_url: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
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
        if kind not in ("shared_fs", "directory", "fsspec", "s3"):
            return []  # the type itself is reported by field validation
        problems = owner_problems(data, _STORAGE_OWNERS, "checkpoint storage", "type", kind)
        required = {
            "s3": ("bucket", "add `bucket: <bucket name>`"),
            "fsspec": ("url", "add `url: <fsspec URL>`"),
        }
        if kind in required and required[kind][0] not in given_keys(data):
            key, fix = required[kind]
            problems.append(Problem((key,), f"is required for {kind} checkpoint storage", fix))
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
        """
        if self.type == "s3":
            prefix = (self.prefix or "").strip("/")
            return f"s3://{self.bucket}/{prefix}" if prefix else f"s3://{self.bucket}"
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
        """Keyword arguments for fsspec (s3: endpoint and credentials, only those given).

        Example:
            >>> CheckpointStorageConfig(type="s3", bucket="b", endpoint_url="http://minio:9000").storage_options()
            {'client_kwargs': {'endpoint_url': 'http://minio:9000'}}
        """
        if self.type != "s3":
            return {}
        options: dict[str, Any] = {}
        if self.endpoint_url:
            options["client_kwargs"] = {"endpoint_url": self.endpoint_url}
        if self.access_key:
            options["key"] = self.access_key
        if self.secret_key:
            options["secret"] = self.secret_key
        return options


class ReproducibilityConfig(Section):
    """Seeds. ``experiment_seed`` (0 <= seed < 2**31) makes hyperparameter sampling repeatable.

    Example:
        >>> ReproducibilityConfig(experiment_seed=42).experiment_seed
        42
    """

    experiment_seed: Annotated[int, Strict(), Field(ge=0, lt=2**31)] | None = None


class EnvironmentConfig(Section):
    """The trial's environment.

    Attributes:
        env_vars: environment variables set for each trial; Determined's list form
            ``["KEY=value", ...]`` and a mapping are both accepted (numbers and booleans in a mapping
            are turned into strings).
        image: accepted so Determined configs load, but ignored: trials run in the Dask workers'
            own environment.

    Example:
        >>> EnvironmentConfig(env_vars=["OMP_NUM_THREADS=4"]).env_vars
        {'OMP_NUM_THREADS': '4'}
    """

    env_vars: dict[str, str] = Field(default_factory=dict)
    image: str | dict[str, str] | None = None

    UNSUPPORTED_KEYS = {
        "environment_variables": ("is Determined's name for env_vars", "rename it to `env_vars`"),
        **{k: DETERMINED_ONLY for k in ("pod_spec", "ports", "registry_auth", "force_pull_image")},
    }

    @classmethod
    def _check(cls, data: Mapping[str, Any], derived: dict[str, Any]) -> list[Problem]:
        items = data.get("env_vars")
        if not isinstance(items, list):
            return []
        return [
            Problem(
                ("env_vars", i),
                f"must look like KEY=value (got {show(item)})",
                "write it as `KEY=value`",
                item,
            )
            for i, item in enumerate(items)
            if not (isinstance(item, str) and "=" in item and item.split("=", 1)[0])
        ]

    @field_validator("env_vars", mode="before")
    @classmethod
    def _env_mapping(cls, value: Any) -> Any:
        if isinstance(value, list):  # bad items are reported by _check
            pairs = [item.split("=", 1) for item in value if isinstance(item, str) and "=" in item]
            return dict(pairs)
        if isinstance(value, Mapping):
            return {
                k: ("true" if v else "false")
                if isinstance(v, bool)
                else str(v)
                if isinstance(v, int | float)
                else v
                for k, v in value.items()
            }
        return value
