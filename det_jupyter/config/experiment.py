"""Experiment configs: every key of Determined's experiment config (expconf v0), validated.

:func:`load_config` takes a dict, YAML text, a path to a YAML file, or an IBM deep-learning-service
manifest (see :mod:`det_jupyter.config.ibm`), and returns a frozen :class:`ExperimentConfig`. Anything wrong
raises one :class:`~det_jupyter.errors.ConfigError` listing *every* problem, each with its dotted
field path, the value found, the fix and, for YAML, the line::

    invalid experiment config:
      searcher.max_trails (line 5): unknown key. Fix: did you mean 'max_trials'?
      searcher.max_concurrent_trials (line 6): must be an integer (got 'four'). Fix: ...

Both ways Determined spells a training length are accepted and normalised: ``time_metric`` +
``max_time`` (Determined >= 0.38) and ``max_length: {batches|epochs|records: N}``; afterwards
``searcher.time_metric`` and ``searcher.max_time`` are set, or both ``None`` when the config gives no
length (allowed, as in Determined >= 0.38, except for the ASHA searchers: the trial code decides).

Determined's cluster-only settings (``bind_mounts``, ``slurm``, ``environment.image``,
``resources.resource_pool``, ...) are validated, kept and ignored, with one
:class:`~det_jupyter.errors.ConfigWarning` listing them (:mod:`det_jupyter.config.cluster_only`).
A key ``null`` counts as absent, as in Determined.

Example:
    >>> cfg = load_config('''
    ... name: mnist
    ... searcher: {name: single, metric: val_loss, max_length: {epochs: 3}}
    ... ''')
    >>> cfg.searcher.time_metric, cfg.searcher.max_time, cfg.searcher.max_trials
    ('epochs', 3, 1)
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import Field, PrivateAttr, Strict, ValidationError, field_validator

from det_jupyter.config.cluster_only import (
    BindMount,
    IntegrationsConfig,
    LogPolicy,
    OptimizationsConfig,
    PbsConfig,
    ProfilingConfig,
    RetentionPolicyConfig,
    SecurityConfig,
    SlurmConfig,
    ignored_warning,
)
from det_jupyter.config.environment import EnvironmentConfig
from det_jupyter.config.formatting import Problem, field_errors, parse_path, parse_yaml, show, with_lines
from det_jupyter.config.searcher import SearcherConfig
from det_jupyter.config.sections import (
    Bool,
    CheckpointStorageConfig,
    Length,
    NonNegInt,
    PosInt,
    ReproducibilityConfig,
    ResourcesConfig,
    Section,
)
from det_jupyter.errors import ConfigError, ConfigWarning, FieldError

if TYPE_CHECKING:
    from det_jupyter.hparams import HParamSpace

__all__ = ["ExperimentConfig", "load_config", "log_bound_warnings"]


class ExperimentConfig(Section):
    """A whole experiment: what to train, how to search, where checkpoints go.

    Build it with :func:`load_config` (user input) or :meth:`from_stored` (what the store kept).
    Cross-field rules: a ``min_validation_period`` or
    ``min_checkpoint_period`` in ``records`` needs ``records_per_epoch``; the hyperparameters must
    parse (:func:`det_jupyter.hparams.parse_hyperparameters`), and with the grid searcher every
    int/double/log hyperparameter needs a ``count``.

    Attributes:
        entrypoint: a name in the notebook, ``module:attr``, or a command (a shell command line or a
            list of arguments); :func:`~det_jupyter.config.entrypoints.entrypoint_kind` tells which.
        hyperparameters: the raw space as written; :attr:`hparam_space` is the parsed one.
        data: free-form, handed to the trial as ``context.data``.
        description, notes, labels, project, workspace: what the experiment is, kept and shown.
        checkpoint_policy, scheduling_unit, perform_initial_validation: Determined's, applied by
            TorchTrial / KerasTrial (``best``: save after a validation that is the trial's best so far,
            ``all``: after every one, ``none``: never because of a validation; one training report per
            ``scheduling_unit`` batches, their mean; a validation at steps 0 before training).
        records_per_epoch: training records in one epoch (for lengths and periods in records);
            Determined's ``0`` means not given.
        max_no_progress: det_jupyter only: seconds a started run may go without reporting metrics or
            saving a checkpoint before it is cut off (its worker restarted); ``None`` (default): never.
        no_progress_policy: det_jupyter only: what a cut-off for no progress does to the trial:
            ``restart`` (default; a failed run, restarted from its latest checkpoint while
            ``max_restarts`` allows) or ``error`` (the trial ends in ERROR at once).
        bind_mounts, debug, profiling, slurm, pbs, security, integrations, tensorboard_storage,
            log_policies, retention_policy, optimizations, internal, data_layer, preemption_timeout:
            Determined cluster settings, validated and kept, ignored with one warning.

    Example:
        >>> cfg = load_config({"searcher": {"name": "single", "metric": "loss", "max_length": {"batches": 5}}})
        >>> load_config(cfg.to_dict()) == cfg
        True
        >>> load_config({"searcher": {"name": "random", "metric": "loss", "max_trials": 2}}).searcher.max_time is None
        True
    """

    name: Annotated[str, Field(min_length=1)] = "experiment"
    description: str = ""
    notes: str | None = None
    labels: list[str] = Field(default_factory=list)
    project: str | None = None
    workspace: str | None = None
    entrypoint: str | Annotated[list[str], Field(min_length=1)] | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    searcher: SearcherConfig
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    max_restarts: NonNegInt = 5
    max_no_progress: Annotated[float, Field(gt=0)] | None = None
    no_progress_policy: Literal["restart", "error"] = "restart"
    checkpoint_storage: CheckpointStorageConfig = Field(default_factory=CheckpointStorageConfig)
    checkpoint_policy: Literal["best", "all", "none"] | None = None
    min_validation_period: Length | None = None
    min_checkpoint_period: Length | None = None
    records_per_epoch: PosInt | None = None
    scheduling_unit: PosInt | None = None
    perform_initial_validation: Bool | None = None
    reproducibility: ReproducibilityConfig = Field(default_factory=ReproducibilityConfig)
    environment: EnvironmentConfig = Field(default_factory=EnvironmentConfig)
    data: dict[str, Any] = Field(default_factory=dict)
    # Determined cluster settings: validated, kept, ignored (config/cluster_only.py says why)
    bind_mounts: list[BindMount] | None = None
    debug: Bool | None = None
    profiling: ProfilingConfig | None = None
    slurm: SlurmConfig | None = None
    pbs: PbsConfig | None = None
    security: SecurityConfig | None = None
    integrations: IntegrationsConfig | None = None
    tensorboard_storage: dict[str, Any] | None = None
    log_policies: list[LogPolicy] | None = None
    retention_policy: RetentionPolicyConfig | None = None
    optimizations: OptimizationsConfig | None = None
    internal: None = None
    data_layer: dict[str, Any] | None = None
    preemption_timeout: Annotated[int, Strict()] | None = None

    _hparam_space: Any = PrivateAttr(default=None)  # the parsed HParamSpace

    @field_validator("min_validation_period", "min_checkpoint_period", mode="before")
    @classmethod
    def _zero_period(cls, value: Any) -> Any:
        # Determined's default period is `{batches: 0}`: no period.
        if isinstance(value, Mapping) and len(value) == 1 and next(iter(value.values())) == 0:
            return None
        return value

    @field_validator("records_per_epoch", mode="before")
    @classmethod
    def _zero_records(cls, value: Any) -> Any:
        return None if value == 0 and type(value) is int else value  # Determined's default: not given

    @classmethod
    def _check(cls, data: Mapping[str, Any], derived: dict[str, Any]) -> list[Problem]:
        problems = []
        for key in ("min_validation_period", "min_checkpoint_period"):
            period = data.get(key)
            in_records = (isinstance(period, Mapping) and "records" in period) or (
                isinstance(period, Length) and period.unit == "records"
            )
            if in_records and data.get("records_per_epoch") is None:
                fix = "add `records_per_epoch: <training records in one epoch>`, or give the period in batches or epochs"
                problems.append(Problem((key, "records"), "a period in records needs records_per_epoch", fix))
        raw = data.get("hyperparameters")
        if isinstance(raw, Mapping):
            from det_jupyter.hparams import parse_hyperparameters  # lazily: hparams may come to import us

            searcher = data.get("searcher")
            try:
                space = derived["hparam_space"] = parse_hyperparameters(raw, "hyperparameters")
                if isinstance(searcher, Mapping) and searcher.get("name") == "grid":
                    space.grid_size("hyperparameters")  # Determined's grid needs a count on every range
            except ConfigError as exc:
                problems += [Problem(parse_path(e.path), e.message, e.fix) for e in exc.errors]
        return problems

    def _finish(self, derived: dict[str, Any]) -> None:
        self._hparam_space = derived.get("hparam_space")

    def __eq__(self, other: object) -> bool:
        # Fields only: the cached hyperparameter space is derived from them (and may not define ==).
        return type(other) is type(self) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # dict fields make it unhashable anyway

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> ExperimentConfig:
        """The config of a stored experiment: plain model validation of the canonical dict.

        The store keeps :meth:`to_dict` of the config :func:`create_experiment
        <det_jupyter.experiment.create_experiment>` validated, so reading it back needs no YAML, no IBM
        manifest translation and no compatibility rewriting: handles, reports, the widget and the
        controller call this instead of :func:`load_config`.

        Args:
            data: a dict written by :meth:`to_dict` (``ExperimentRow.config``).

        Raises:
            ConfigError: the dict is not a valid config (a store written by an incompatible version).

        Example:
            >>> cfg = load_config("searcher: {name: single, metric: loss, max_length: {batches: 5}}")
            >>> ExperimentConfig.from_stored(cfg.to_dict()) == cfg
            True
        """
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise ConfigError(field_errors(exc)) from None

    @property
    def hparam_space(self) -> HParamSpace:
        """The parsed hyperparameter space, parsed once at validation.

        Example:
            >>> cfg = load_config({"hyperparameters": {"lr": 0.1, "n": {"type": "int", "minval": 1, "maxval": 4}},
            ...                    "searcher": {"name": "single", "metric": "loss", "max_length": {"batches": 5}}})
            >>> cfg.hparam_space.names
            ['lr', 'n']
        """
        if self._hparam_space is None:  # only after model_copy(update=...), which skips validation
            from det_jupyter.hparams import parse_hyperparameters

            self._hparam_space = parse_hyperparameters(self.hyperparameters)
        return self._hparam_space

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict that loads back to an equal config (``null`` values left out).

        Example:
            >>> cfg = load_config({"searcher": {"name": "random", "metric": "loss", "max_trials": 4,
            ...                                 "time_metric": "batches", "max_time": 100}})
            >>> cfg.to_dict()["searcher"]
            {'name': 'random', 'metric': 'loss', 'smaller_is_better': True, 'max_trials': 4, 'max_concurrent_trials': 16, 'time_metric': 'batches', 'max_time': 100}
        """
        return self.model_dump(mode="json", exclude_none=True)

    def to_yaml(self) -> str:
        """The config as YAML text, in field order; ``load_config(cfg.to_yaml()) == cfg``.

        Example:
            >>> cfg = load_config({"searcher": {"name": "single", "metric": "loss", "max_length": {"epochs": 1}}})
            >>> cfg.to_yaml().splitlines()[0]
            'name: experiment'
        """
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=10**9)


def _read(source: str | os.PathLike[str]) -> tuple[Any, yaml.Node | None]:
    """Parse YAML text, or the YAML file a path (or a one-line str naming a file) points to."""
    is_path = isinstance(source, os.PathLike) or (
        "\n" not in source and (source.endswith((".yaml", ".yml")) or os.path.isfile(source))
    )
    if not is_path:
        return parse_yaml(str(source))
    path = Path(source)
    try:
        return parse_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        fix = f"check the path (relative paths start at {os.getcwd()})"
        raise ConfigError(FieldError("", f"config file not found: {str(path)!r}", fix)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            FieldError("", f"cannot read config file {str(path)!r}: {exc}", "check the file")
        ) from None


def load_config(
    source: Mapping[str, Any] | str | os.PathLike[str] | ExperimentConfig, *, warn: bool = True
) -> ExperimentConfig:
    """Parse and validate an experiment config.

    Args:
        source: a dict; YAML text; a path to a ``.yaml``/``.yml`` file (a ``str`` naming an
            existing file, or a path-like); or an :class:`ExperimentConfig`, returned as is. A mapping
            with a top-level ``model_definition`` is an IBM manifest, translated first
            (:func:`det_jupyter.config.ibm.from_ibm_manifest`).
        warn: emit the :class:`ConfigWarning` s (one listing the Determined settings accepted but
            ignored, and one per ``log`` bound that looks like a value); ``False`` to skip them.

    Returns:
        The validated, normalised config.

    Raises:
        ConfigError: listing every problem, with the YAML line of each when the source was YAML.

    Example:
        >>> load_config("searcher: {name: grid, metric: loss, time_metric: epochs, max_time: 2}").searcher.max_time
        2
        >>> try:
        ...     load_config("searcher:\\n  name: single\\n  metric: loss\\n  max_time: 1\\n  time_metric: x\\n  max_trails: 3\\n")
        ... except ConfigError as e:
        ...     print(e.errors[0])
        searcher.max_trails (line 6): unknown key. Fix: did you mean 'max_trials'?
    """
    if isinstance(source, ExperimentConfig):
        return source
    if isinstance(source, Mapping):
        raw, root = source, None
    elif isinstance(source, str | os.PathLike):
        raw, root = _read(source)
    else:
        raise TypeError(f"load_config() takes a dict, YAML text or a path, not {type(source).__name__}")
    if not isinstance(raw, Mapping):
        message = f"the config must be a mapping of keys to values (got {show(raw)})"
        raise ConfigError(
            FieldError("", message, "start with `name:` and `searcher:` keys", 1 if root else None)
        )
    if "model_definition" in raw:
        from det_jupyter.config.ibm import from_ibm_manifest

        try:
            raw = from_ibm_manifest(raw)
        except ConfigError as exc:
            raise ConfigError(sorted(with_lines(exc.errors, root), key=lambda e: e.line or 0)) from None
        root = None  # the translated config's paths are not the manifest's
    try:
        cfg = ExperimentConfig.model_validate(dict(raw))
    except ValidationError as exc:
        errors = with_lines(field_errors(exc), root)
        raise ConfigError(sorted(errors, key=lambda e: e.line or 0)) from None  # stable: YAML order
    if not warn:
        return cfg
    ignored = ignored_warning(cfg)
    if ignored is not None:
        warnings.warn(ignored, ConfigWarning, stacklevel=2)
    for warning in with_lines(log_bound_warnings(cfg.hyperparameters), root):
        warnings.warn(str(warning), ConfigWarning, stacklevel=2)
    return cfg


def log_bound_warnings(hyperparameters: Mapping[str, Any], path: str = "hyperparameters") -> list[FieldError]:
    """``log`` hyperparameters whose bounds look like values rather than exponents of ``base``.

    ``{type: log, minval: 0.0001, maxval: 0.1}`` samples ``10 ** U(0.0001, 0.1)``, i.e. 1.0002..1.26,
    which is never what was meant: bounds with ``0 < minval < maxval <= 1`` are reported, with the
    exponents that give those values. :func:`load_config` turns each into a :class:`ConfigWarning`.

    Example:
        >>> print(log_bound_warnings({"lr": {"type": "log", "minval": 0.0001, "maxval": 0.1}})[0])
        hyperparameters.lr: minval and maxval of a `log` hyperparameter are exponents of base 10, so minval: 0.0001, maxval: 0.1 samples 10^0.0001..10^0.1 (1.0002..1.2589), not 0.0001..0.1. Fix: for values from 0.0001 to 0.1 write minval: -4, maxval: -1
        >>> log_bound_warnings({"lr": {"type": "log", "minval": -4, "maxval": -1}})
        []
    """
    found: list[FieldError] = []
    for name, value in hyperparameters.items():
        where = f"{path}.{name}"
        if not isinstance(value, Mapping):
            continue
        if "type" not in value:
            found += log_bound_warnings(value, where)
            continue
        bounds = [value.get("minval"), value.get("maxval"), value.get("base", 10)]
        if value.get("type") != "log" or not all(_is_number(v) for v in bounds):
            continue
        lo, hi, base = (float(v) for v in bounds)
        if not (0 < lo < hi <= 1 and base > 1):
            continue
        exps = [round(math.log(v, base), 4) for v in (lo, hi)]
        lo_exp, hi_exp = (f"{e:g}" for e in exps)
        message = (
            f"minval and maxval of a `log` hyperparameter are exponents of base {base:g}, so minval: {lo:g}, "
            f"maxval: {hi:g} samples {base:g}^{lo:g}..{base:g}^{hi:g} ({base**lo:.5g}..{base**hi:.5g}), "
            f"not {lo:g}..{hi:g}"
        )
        fix = f"for values from {lo:g} to {hi:g} write minval: {lo_exp}, maxval: {hi_exp}"
        found.append(FieldError(where, message, fix))
    return found


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
