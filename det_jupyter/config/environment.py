"""The ``environment`` section: the trial's environment variables, and Determined's container settings.

Environment variables are written any way Determined allows, under its name
``environment_variables`` or det_jupyter's ``env_vars`` (one name is stored: ``env_vars``):

- a list ``["KEY=value", ...]`` or a mapping ``{KEY: value}``: for every trial;
- per accelerator, ``{cpu: [...], cuda: [...], rocm: [...]}`` (``gpu`` is Determined's older name of
  ``cuda``): as in Determined, a trial gets the list of the device it runs on, a CPU trial ``cpu``
  and a GPU trial ``cuda`` (:meth:`EnvironmentConfig.env_vars_for`).

The container settings (``image``, ``pod_spec``, ``registry_auth``, ...) are validated and kept but
ignored: trials run in the Dask workers' own environment (:mod:`det_jupyter.config.cluster_only`).

Example:
    >>> env = EnvironmentConfig.model_validate({"environment_variables": ["OMP_NUM_THREADS=4"]})
    >>> env.env_vars, env.env_vars_for("cuda")
    ({'OMP_NUM_THREADS': '4'}, {'OMP_NUM_THREADS': '4'})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, Strict, field_validator

from det_jupyter.config.cluster_only import ImageMap, ProxyPort, RegistryAuth, pod_spec_problems
from det_jupyter.config.formatting import Problem, show
from det_jupyter.config.sections import Bool, Section

__all__ = ["DEVICE_KINDS", "DeviceKind", "EnvironmentConfig"]

DeviceKind = Literal["cpu", "cuda", "rocm"]
"""The accelerator a trial runs on, as Determined names it."""
DEVICE_KINDS: tuple[DeviceKind, ...] = ("cpu", "cuda", "rocm")
_DEVICE_KEYS = (*DEVICE_KINDS, "gpu")  # gpu: Determined's older name of cuda
_FORMS = (
    "a list of KEY=value strings, a mapping of names to values, or {cpu: [...], cuda: [...], rocm: [...]}"
)


def _is_per_device(value: Any) -> bool:
    """Determined's map form: only device keys, each holding a list (or, once stored, a mapping)."""
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(k in _DEVICE_KEYS for k in value)
        and all(v is None or isinstance(v, list | Mapping) for v in value.values())
    )


def _text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else value


def _pairs(value: Any) -> Any:
    """A list of KEY=value (bad items are reported by ``_check``) or a mapping, as a str → str dict."""
    if isinstance(value, list):
        return dict(item.split("=", 1) for item in value if isinstance(item, str) and "=" in item)
    if isinstance(value, Mapping):
        return {k: _text(v) for k, v in value.items()}
    return value


def _list_problems(items: list[Any], loc: tuple[str | int, ...]) -> list[Problem]:
    return [
        Problem((*loc, i), f"must look like KEY=value (got {show(item)})", "write it as `KEY=value`", item)
        for i, item in enumerate(items)
        if not (isinstance(item, str) and "=" in item and item.split("=", 1)[0])
    ]


def _mapping_problems(values: Mapping[Any, Any], loc: tuple[str | int, ...]) -> list[Problem]:
    return [
        Problem((*loc, str(k)), f"must be a string (got {show(v)})", "put the value in quotes", v)
        for k, v in values.items()
        if not isinstance(v, str | int | float | bool)
    ]


class EnvironmentConfig(Section):
    """The trial's environment.

    Attributes:
        env_vars: environment variables set for each trial (also written ``environment_variables``,
            Determined's name): ``{KEY: value}`` for every trial, or ``{cpu: {...}, cuda: {...},
            rocm: {...}}`` when given per accelerator.
        pip: our extension: packages (pip requirement strings) installed on every worker before the
            experiment runs, and on workers that join later; items starting with ``-`` are pip
            options (``--index-url URL``). Already satisfied requirements are not reinstalled
            (:mod:`det_jupyter.engine.worker_env`).
        image, force_pull_image, registry_auth, pod_spec, proxy_ports, ports, add_capabilities,
            drop_capabilities: Determined's container settings, validated and kept but ignored.

    Example:
        >>> EnvironmentConfig(env_vars=["OMP_NUM_THREADS=4"]).env_vars
        {'OMP_NUM_THREADS': '4'}
        >>> env = EnvironmentConfig.model_validate({"environment_variables": {"cpu": ["A=1"], "gpu": ["A=2"]}})
        >>> env.env_vars
        {'cpu': {'A': '1'}, 'cuda': {'A': '2'}}
        >>> env.env_vars_for("cuda"), env.env_vars_for("rocm")
        ({'A': '2'}, {})
    """

    env_vars: dict[str, Any] = Field(default_factory=dict)
    pip: list[str] = Field(default_factory=list)
    image: str | ImageMap | None = None
    force_pull_image: Bool | None = None
    registry_auth: RegistryAuth | None = None
    pod_spec: dict[str, Any] | None = None
    proxy_ports: list[ProxyPort] | None = None
    ports: dict[str, Annotated[int, Strict()]] | None = None
    add_capabilities: list[str] | None = None
    drop_capabilities: list[str] | None = None

    ALIASES = {"environment_variables": "env_vars"}

    @classmethod
    def _check(cls, data: Mapping[str, Any], derived: dict[str, Any]) -> list[Problem]:
        problems = pod_spec_problems(data.get("pod_spec"))
        value, loc = data.get("env_vars"), ("env_vars",)
        if value is None:
            return problems
        if isinstance(value, list):
            return problems + _list_problems(value, loc)
        if not isinstance(value, Mapping):
            return [
                *problems,
                Problem(
                    loc, f"must be {_FORMS} (got {show(value)})", "write it in one of those forms", value
                ),
            ]
        if not _is_per_device(value):
            return problems + _mapping_problems(value, loc)
        if value.get("gpu") is not None and value.get("cuda") is not None:
            fix = "keep `cuda` (`gpu` is its older name)"
            problems.append(Problem((*loc, "gpu"), "given together with cuda", fix, value["gpu"]))
        for device, items in value.items():
            if isinstance(items, list):
                problems += _list_problems(items, (*loc, device))
            elif isinstance(items, Mapping):
                problems += _mapping_problems(items, (*loc, device))
        return problems

    @field_validator("env_vars", mode="before")
    @classmethod
    def _normalise(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not _is_per_device(value):
            return _pairs(value)
        out = {device: _pairs(items or {}) for device, items in value.items() if device != "gpu"}
        if "gpu" in value and value.get("cuda") is None:
            out["cuda"] = _pairs(value["gpu"] or {})
        return {device: out.get(device, {}) for device in DEVICE_KINDS if device in out}

    @property
    def per_device(self) -> bool:
        """Whether the variables were given per accelerator (``{cpu: ..., cuda: ...}``).

        Example:
            >>> EnvironmentConfig(env_vars={"A": "1"}).per_device
            False
        """
        return _is_per_device(self.env_vars)

    def env_vars_for(self, device: DeviceKind) -> dict[str, str]:
        """The variables a trial running on ``device`` gets (Determined: a per-device form gives each
        device its own list; the other forms give every device the same).

        Example:
            >>> EnvironmentConfig(env_vars={"cpu": ["A=1"]}).env_vars_for("cuda")
            {}
        """
        if self.per_device:
            return dict(self.env_vars.get(device) or {})
        return dict(self.env_vars)
