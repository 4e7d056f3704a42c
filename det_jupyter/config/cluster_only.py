"""Determined's cluster-only settings: accepted, validated by type and range, kept, and ignored.

A Determined config brings settings that mean something only on a Determined cluster (containers,
Slurm/PBS, pod specs, resource pools, profiling, log policies, ...). det_jupyter runs trials on Dask
workers in their own Python environment, so these do nothing here; refusing them would make every
Determined config need editing. They are validated as Determined validates them (a wrong type or
range is still an error naming the field), kept in the stored config, and :func:`ignored_settings`
lists the ones a config sets, with why, for the one :class:`~det_jupyter.errors.ConfigWarning` that
:func:`~det_jupyter.config.load_config` emits.

Example:
    >>> from det_jupyter.config import load_config
    >>> cfg = load_config({"searcher": {"name": "single", "metric": "loss"}, "debug": True,
    ...                    "resources": {"resource_pool": "gpu-pool"}}, warn=False)
    >>> [path for path, _ in ignored_settings(cfg)]
    ['debug', 'resources.resource_pool']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, Strict

from det_jupyter.config.formatting import Problem, show
from det_jupyter.config.sections import Bool, NonNegInt, PosInt, Section

if TYPE_CHECKING:
    from det_jupyter.config.experiment import ExperimentConfig

__all__ = [
    "BindMount",
    "ImageMap",
    "KerberosConfig",
    "LogPolicy",
    "OptimizationsConfig",
    "PbsConfig",
    "ProfilingConfig",
    "ProxyPort",
    "RegistryAuth",
    "RetentionPolicyConfig",
    "SecurityConfig",
    "SlurmConfig",
    "ignored_settings",
    "ignored_warning",
]

_CONTAINER = "trials run in the Dask workers' own Python environment, not in a container"
_SCHEDULER = "Dask schedules the trials (slots come from `slots_per_trial` and the workers' resources)"
_HPC = "det_jupyter schedules on Dask: start Dask workers on Slurm/PBS with dask-jobqueue instead"

IGNORED: dict[str, str] = {
    "bind_mounts": _CONTAINER + "; use paths the workers can read directly",
    "debug": "det_jupyter's trial logs are always complete",
    "profiling": "Determined's profiler is not available; use torch.profiler in the trial code",
    "slurm": _HPC,
    "pbs": _HPC,
    "security": "Determined's Kerberos setting has no counterpart here",
    "integrations": "Pachyderm and webhooks are Determined master features",
    "tensorboard_storage": "deprecated in Determined too",
    "log_policies": "Determined master log-pattern actions; trial logs are kept as they are",
    "retention_policy": "trial logs live in the experiment store until it is deleted",
    "optimizations": "Determined's Horovod settings; distributed training uses torch.distributed",
    "data_layer": "removed from Determined in 0.19.10",
    "preemption_timeout": "preemption here is the trial's own should_stop(); there is no timeout",
    **{
        f"environment.{key}": _CONTAINER
        for key in (
            "image",
            "force_pull_image",
            "registry_auth",
            "pod_spec",
            "proxy_ports",
            "ports",
            "add_capabilities",
            "drop_capabilities",
        )
    },
    **{
        f"resources.{key}": _SCHEDULER
        for key in (
            "slots",
            "native_parallel",
            "agent_label",
            "devices",
            "is_single_node",
            "priority",
            "resource_pool",
            "shm_size",
            "weight",
        )
    },
    **{
        f"checkpoint_storage.{key}": "a container mount setting; checkpoints go straight to the storage path"
        for key in ("propagation", "checkpoint_path", "tensorboard_path")
    },
}
"""Every setting det_jupyter accepts and ignores, by dotted path, with why."""


def _get(cfg: ExperimentConfig, path: str) -> Any:
    obj: Any = cfg
    for part in path.split("."):
        obj = getattr(obj, part, None)
    return obj


def ignored_settings(cfg: ExperimentConfig) -> list[tuple[str, str]]:
    """The ignored settings ``cfg`` sets to something that would matter, each as ``(path, why)``.

    A setting left empty or ``false`` (``debug: false``, ``resource_pool: ""``) is not listed: ignoring
    it changes nothing. (``checkpoint_policy``, ``perform_initial_validation`` and ``scheduling_unit``
    are applied by TorchTrial / KerasTrial: :mod:`det_jupyter.frameworks._common`.)
    A shared_fs ``container_path`` is listed too (it is where Determined mounts ``host_path``).

    Example:
        >>> from det_jupyter.config import load_config
        >>> cfg = load_config({"searcher": {"name": "single", "metric": "loss"}, "debug": False,
        ...                    "environment": {"image": "determinedai/pytorch:1"}}, warn=False)
        >>> ignored_settings(cfg)
        [('environment.image', "trials run in the Dask workers' own Python environment, not in a container")]
    """
    found = []
    for path, why in IGNORED.items():
        value = _get(cfg, path)
        if value is None or value is False or value == "" or value == [] or value == {}:
            continue
        found.append((path, why))
    storage = cfg.checkpoint_storage
    if storage.type == "shared_fs" and storage.container_path:
        why = "where Determined mounts host_path in its containers; checkpoints go to host_path here"
        found.append(("checkpoint_storage.container_path", why))
    return sorted(
        found, key=lambda item: list(IGNORED).index(item[0]) if item[0] in IGNORED else len(IGNORED)
    )


def ignored_warning(cfg: ExperimentConfig) -> str | None:
    """The text of the one warning about ``cfg``'s ignored settings, or ``None`` when it sets none.

    Settings ignored for the same reason are listed together.

    Example:
        >>> from det_jupyter.config import load_config
        >>> cfg = load_config({"searcher": {"name": "single", "metric": "loss"}, "slurm": {"gpu_type": "a100"},
        ...                    "pbs": {"slots_per_node": 4}}, warn=False)
        >>> print(ignored_warning(cfg))
        Determined cluster settings accepted but ignored by det_jupyter (kept in the stored config):
          slurm, pbs: det_jupyter schedules on Dask: start Dask workers on Slurm/PBS with dask-jobqueue instead
    """
    settings = ignored_settings(cfg)
    if not settings:
        return None
    by_reason: dict[str, list[str]] = {}
    for path, why in settings:
        by_reason.setdefault(why, []).append(path)
    lines = ["Determined cluster settings accepted but ignored by det_jupyter (kept in the stored config):"]
    lines += [f"  {', '.join(paths)}: {why}" for why, paths in by_reason.items()]
    return "\n".join(lines)


# --- the sections, typed as Determined's schema types them ---------------------------------------


class BindMount(Section):
    """One of Determined's ``bind_mounts`` (ignored here).

    Example:
        >>> BindMount(host_path="/data", container_path="/data").read_only is None
        True
    """

    host_path: str
    container_path: str
    read_only: Bool | None = None
    propagation: str | None = None

    @classmethod
    def _check(cls, data: Mapping[str, Any], derived: dict[str, Any]) -> list[Problem]:
        problems = []
        host, container = data.get("host_path"), data.get("container_path")
        if isinstance(host, str) and not host.startswith("/"):
            problems.append(
                Problem(
                    ("host_path",), f"must be an absolute path (got {show(host)})", "start it with /", host
                )
            )
        if container == ".":
            problems.append(
                Problem(
                    ("container_path",), 'must not be "."', "name a directory in the container", container
                )
            )
        return problems


class ProfilingConfig(Section):
    """Determined's profiler settings (ignored here).

    Example:
        >>> ProfilingConfig(enabled=True, begin_on_batch=1, end_after_batch=10).end_after_batch
        10
    """

    enabled: Bool | None = None
    begin_on_batch: NonNegInt | None = None
    end_after_batch: NonNegInt | None = None
    sync_timings: Bool | None = None

    @classmethod
    def _check(cls, data: Mapping[str, Any], derived: dict[str, Any]) -> list[Problem]:
        begin, end = data.get("begin_on_batch"), data.get("end_after_batch")
        if type(begin) is int and type(end) is int and begin > end:
            message = f"begin_on_batch ({begin}) must be <= end_after_batch ({end})"
            return [Problem(("begin_on_batch",), message, "swap them", begin)]
        return []


class SlurmConfig(Section):
    """Determined's Slurm options (ignored here: use dask-jobqueue)."""

    slots_per_node: PosInt | None = None
    gpu_type: str | None = None
    sbatch_args: list[str] | None = None


class PbsConfig(Section):
    """Determined's PBS options (ignored here: use dask-jobqueue)."""

    slots_per_node: PosInt | None = None
    pbsbatch_args: list[str] | None = None


class OptimizationsConfig(Section):
    """Determined's Horovod optimizations (ignored here)."""

    aggregation_frequency: PosInt | None = None
    auto_tune_tensor_fusion: Bool | None = None
    average_aggregated_gradients: Bool | None = None
    average_training_metrics: Bool | None = None
    gradient_compression: Bool | None = None
    grad_updates_size_file: str | None = None
    mixed_precision: Literal["O0", "O1", "O2", "O3"] | None = None
    tensor_fusion_cycle_time: NonNegInt | None = None
    tensor_fusion_threshold: NonNegInt | None = None


class RetentionPolicyConfig(Section):
    """Determined's log retention (ignored here)."""

    log_retention_days: Annotated[int, Strict(), Field(ge=-1, le=32767)] | None = None


class KerberosConfig(Section):
    """Determined's (long unused) Kerberos setting."""

    config_file: str


class SecurityConfig(Section):
    """Determined's (long unused) security section."""

    kerberos: KerberosConfig | None = None


class LegacyLogAction(Section):
    """The older object form of a log-policy action, ``{type: cancel_retries|exclude_node}``."""

    type: Literal["cancel_retries", "exclude_node"]


class LogPolicy(Section):
    """One of Determined's ``log_policies`` (ignored here).

    Example:
        >>> LogPolicy(name="CUDA OOM", pattern=".*CUDA out of memory.*", action="cancel_retries").action
        'cancel_retries'
    """

    name: str | None = None
    pattern: str | None = None
    action: Literal["cancel_retries", "exclude_node"] | LegacyLogAction | None = None

    @classmethod
    def _check(cls, data: Mapping[str, Any], derived: dict[str, Any]) -> list[Problem]:
        if data.get("name") is not None or (
            data.get("pattern") is not None and data.get("action") is not None
        ):
            return []
        fix = "add `name:` (and a `pattern:`, unless the policy disables a default one)"
        return [Problem(("name",), "a log policy needs a name, or a pattern and an action", fix)]


class IntegrationsConfig(Section):
    """Determined's Pachyderm / webhook integrations (ignored here)."""

    pachyderm: dict[str, Any] | None = None
    webhooks: dict[str, Any] | None = None


class ImageMap(Section):
    """``environment.image`` per accelerator (ignored here); ``gpu`` is Determined's old name of ``cuda``."""

    cpu: str | None = None
    cuda: str | None = None
    rocm: str | None = None
    gpu: str | None = None


class RegistryAuth(Section):
    """Docker registry credentials (ignored here; shown redacted)."""

    username: str | None = None
    password: str | None = None
    auth: str | None = None
    email: str | None = None
    serveraddress: str | None = None
    identitytoken: str | None = None
    registrytoken: str | None = None


class ProxyPort(Section):
    """One of Determined's ``environment.proxy_ports`` (ignored here)."""

    proxy_port: Annotated[float, Strict()] | Annotated[int, Strict()]
    proxy_tcp: Bool | None = None
    unauthenticated: Bool | None = None
    default_service_id: Bool | None = None


_FIXED_CONTAINER_KEYS = (
    "image",
    "command",
    "args",
    "working_dir",
    "ports",
    "liveness_probe",
    "readiness_probe",
    "startup_probe",
    "lifecycle",
    "termination_message_path",
    "termination_message_policy",
    "image_pull_policy",
    "security_context",
)


def pod_spec_problems(pod_spec: Any) -> list[Problem]:
    """Determined's pod_spec rules: no pod name / namespace, and the ``determined-container`` is not edited.

    Example:
        >>> [p.loc for p in pod_spec_problems({"spec": {"containers": [{"name": "determined-container", "image": "x"}]}})]
        [('pod_spec', 'spec', 'containers', 0)]
    """
    if not isinstance(pod_spec, Mapping):
        return []
    problems = [
        Problem(("pod_spec", key), f"pod {key} is not a configurable option", "remove it", pod_spec[key])
        for key in ("name", "name_space")
        if key in pod_spec
    ]
    spec = pod_spec.get("spec")
    containers = spec.get("containers") if isinstance(spec, Mapping) else None
    for i, container in enumerate(containers if isinstance(containers, list) else []):
        if not (isinstance(container, Mapping) and container.get("name") == "determined-container"):
            continue
        fixed = [k for k in _FIXED_CONTAINER_KEYS if k in container]
        if fixed:
            message = f"the determined-container's {', '.join(fixed)} is not configurable"
            loc = ("pod_spec", "spec", "containers", i)
            problems.append(
                Problem(loc, message, "remove it (det_jupyter ignores pod_spec anyway)", container)
            )
    return problems
