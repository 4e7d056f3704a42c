"""Workers' software environment: ``environment.pip`` installed on them, and their versions checked.

Two things can make a trial fail on a worker for reasons that have nothing to do with the user's code:
a package the trial needs is not installed there, or the worker runs other versions than the kernel
that froze the entrypoint (cloudpickle ships notebook code *by value*: its bytecode needs the same
Python minor version, and cloudpickle, det_jupyter, torch and tensorflow must agree on what their
pickles mean). :func:`prepare_workers` deals with both at submission, before the experiment exists:

- ``environment.pip`` (pip requirement strings; items starting with ``-`` are pip options) is installed
  by :class:`PipPlugin`, a *named* Dask worker plugin registered on the scheduler, so workers that join
  later install it too. It is idempotent: requirements a worker already satisfies are not reinstalled
  (the same list registers once), and pip runs one at a time per host. A failure is a
  :class:`~det_jupyter.errors.ClusterError` naming the worker, pip's last lines and the fix.
- :func:`check_worker_versions` compares the kernel's Python and :data:`CHECKED_PACKAGES` (plus the
  import names in ``$DET_JUPYTER_CHECK_PACKAGES``) with every worker's, read from package metadata
  (nothing is imported: Dask's ``client.get_versions(packages=...)`` would import torch and tensorflow on
  every worker). A difference is a ``ClusterError`` naming the package, both versions, the worker and the
  fix. A package the kernel has and a worker lacks is an error only when the frozen entrypoint
  mentions it (:func:`mentioned_modules`).

``environment_variables`` need nothing here: the worker runtime sets them around each trial.

Example:
    >>> compare_versions({"python": "3.11.9", "torch": "2.13.0+cpu"},
    ...                  {"tcp://w:1": {"python": "3.11.4", "torch": "2.13.0+cu124"}}, required=set())
    []
    >>> [m.package for m in compare_versions({"cloudpickle": "3.1.1"}, {"tcp://w:1": {"cloudpickle": "3.0.0"}},
    ...                                      required=set())]
    ['cloudpickle']
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import importlib
import importlib.metadata
import logging
import os
import pickletools
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distributed import WorkerPlugin

from det_jupyter.errors import ClusterError

if TYPE_CHECKING:
    from distributed import Client

    from det_jupyter.config import ExperimentConfig

__all__ = [
    "CHECKED_PACKAGES",
    "CHECK_PACKAGES_ENV",
    "PipPlugin",
    "VersionMismatch",
    "check_worker_versions",
    "compare_versions",
    "install_packages",
    "mentioned_modules",
    "package_versions",
    "prepare_workers",
]

log = logging.getLogger(__name__)

CHECKED_PACKAGES: tuple[str, ...] = ("python", "det_jupyter", "cloudpickle", "torch", "tensorflow")
"""Import names whose versions must agree between the kernel and the workers (``python``: the
interpreter's major.minor)."""
CHECK_PACKAGES_ENV = "DET_JUPYTER_CHECK_PACKAGES"
"""More import names to check, comma-separated (e.g. ``transformers,my_lib``)."""
ALWAYS_REQUIRED = frozenset({"python", "det_jupyter", "cloudpickle"})
"""Packages every worker must have (whatever the entrypoint mentions)."""

_DISTRIBUTIONS = {
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-macos", "tf-nightly"),
    "det_jupyter": ("det_jupyter", "det-jupyter"),
}


def package_versions(names: Sequence[str]) -> dict[str, str | None]:
    """Installed versions by import name, from package metadata (``None``: not installed); runs anywhere.

    ``python`` is the interpreter's version. Nothing is imported.

    Example:
        >>> package_versions(["python", "no_such_package_xyz"])["no_such_package_xyz"] is None
        True
    """
    out: dict[str, str | None] = {}
    mapping: Mapping[str, list[str]] | None = None
    for name in names:
        if name == "python":
            out[name] = platform.python_version()
            continue
        version = None
        for dist in _DISTRIBUTIONS.get(name, (name,)):
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                version = importlib.metadata.version(dist)
                break
        if version is None and name not in _DISTRIBUTIONS:
            if mapping is None:
                mapping = importlib.metadata.packages_distributions()
            for dist in mapping.get(name, []):
                with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                    version = importlib.metadata.version(dist)
                    break
        out[name] = version
    return out


@dataclass(frozen=True)
class VersionMismatch:
    """One package whose version differs between the kernel and some workers."""

    package: str
    kernel: str | None
    worker: str | None
    workers: tuple[str, ...]

    def message(self) -> str:
        """One line: the package, both versions, where, and the fix."""
        where = ", ".join(self.workers[:3]) + (
            f" and {len(self.workers) - 3} more" if len(self.workers) > 3 else ""
        )
        if self.package == "python":
            return (
                f"Python {self.worker} on worker(s) {where}, but the kernel runs Python {self.kernel}: "
                "notebook code travels as bytecode, which needs the same Python minor version; start the "
                f"workers with Python {_minor(self.kernel or '')} (the kernel's environment)"
            )
        if self.worker is None:
            return (
                f"{self.package} is not installed on worker(s) {where} (the kernel has {self.kernel}) and the "
                f"entrypoint uses it; install {self.package}=={self.kernel} on the workers, e.g. "
                f"environment: {{pip: ['{_pip_name(self.package)}=={_release(self.kernel or '')}']}}"
            )
        if self.kernel is None:
            return (
                f"{self.package} {self.worker} on worker(s) {where}, but the kernel has no {self.package}; "
                f"install {self.package}=={self.worker} in the kernel's environment"
            )
        return (
            f"{self.package} {self.worker} on worker(s) {where}, but {self.kernel} in the kernel; install "
            f"the same version on both (e.g. environment: {{pip: ['{_pip_name(self.package)}=={_release(self.kernel)}']}}"
            " for the workers, or the workers' version in the kernel)"
        )


def _release(version: str) -> str:
    """The version without its local label (``2.13.0+cpu`` → ``2.13.0``: CPU and CUDA builds agree)."""
    return version.split("+", 1)[0]


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _pip_name(package: str) -> str:
    return package.replace("_", "-")


def compare_versions(
    kernel: Mapping[str, str | None],
    workers: Mapping[str, Mapping[str, str | None]],
    *,
    required: set[str],
) -> list[VersionMismatch]:
    """The packages whose versions differ between ``kernel`` and ``workers`` (pure).

    Python must agree on major.minor, other packages on their release (a local label such as ``+cpu``
    or ``+cu124`` is ignored). A package missing on a worker counts only if it is in ``required`` or
    :data:`ALWAYS_REQUIRED`; one missing in the kernel counts if it is required.
    """
    found: dict[tuple[str, str | None], list[str]] = {}
    for address, versions in sorted(workers.items()):
        for package, mine in kernel.items():
            theirs = versions.get(package)
            needed = package in required or package in ALWAYS_REQUIRED
            if package == "python":
                differs = _minor(mine or "") != _minor(theirs or "")
            elif mine is None or theirs is None:
                differs = needed and mine != theirs
            else:
                differs = _release(mine) != _release(theirs)
            if differs:
                found.setdefault((package, theirs), []).append(address)
    return [VersionMismatch(p, kernel.get(p), v, tuple(ws)) for (p, v), ws in found.items()]


def mentioned_modules(blob: bytes, names: Iterable[str]) -> set[str]:
    """Which of the import ``names`` a pickle mentions: as a module of a pickled reference, or any
    string the pickle holds (a by-value function's code names the modules it imports).

    Example:
        >>> import pickle, json
        >>> sorted(mentioned_modules(pickle.dumps(json.dumps), ["json", "torch"]))
        ['json']
    """
    strings: set[str] = set()
    try:
        for opcode, arg, _pos in pickletools.genops(blob):
            if isinstance(arg, str):
                strings.add(arg.split(" ", 1)[0] if opcode.name == "GLOBAL" else arg)
    except Exception:  # not a pickle we can read: mention nothing (no false error)
        return set()
    tops = {s.split(".", 1)[0] for s in strings}
    return {name for name in names if name in tops}


def _checked_names() -> list[str]:
    extra = [n.strip() for n in os.environ.get(CHECK_PACKAGES_ENV, "").split(",") if n.strip()]
    return list(dict.fromkeys([*CHECKED_PACKAGES, *extra]))


def check_worker_versions(client: Client, blob: bytes | None = None) -> None:
    """Raise a :class:`ClusterError` when a worker's versions differ from this process's.

    Args:
        client: the cluster's client.
        blob: the frozen entrypoint (decides which optional packages are needed).

    Raises:
        ClusterError: every mismatch, one per line, with the fix.
    """
    names = _checked_names()
    kernel = package_versions(names)
    try:
        answers = client.run(package_versions, names, on_error="return")
    except OSError as exc:
        raise ClusterError(f"could not ask the workers for their package versions ({exc})") from exc
    workers = {addr: v for addr, v in answers.items() if isinstance(v, dict)}
    broken = {addr: v for addr, v in answers.items() if not isinstance(v, dict)}
    if broken:
        error = next(iter(broken.values()))
        raise ClusterError(
            f"worker(s) {', '.join(broken)} could not report their package versions ({type(error).__name__}: "
            f"{error}); is det_jupyter {kernel.get('det_jupyter')} installed there? Install it on the workers "
            "(the kernel's environment), then submit again"
        )
    required = mentioned_modules(blob, names) if blob is not None else set()
    mismatches = compare_versions(kernel, workers, required=required)
    if mismatches:
        raise ClusterError(
            "the workers' software differs from the kernel's:\n"
            + "\n".join(f"  - {m.message()}" for m in mismatches)
        )


# --- environment.pip ----------------------------------------------------------------------------


def _satisfied(requirement: str) -> bool:
    """Whether this Python already has ``requirement`` (an unparsable one never counts as satisfied)."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        return False
    if req.marker is not None and not req.marker.evaluate():
        return True  # not for this platform
    try:
        version = importlib.metadata.version(req.name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return req.url is not None or req.specifier.contains(version, prereleases=True)


class PipPlugin(WorkerPlugin):
    """Installs ``environment.pip`` on a worker (and on every worker that joins later).

    Idempotent: requirements already satisfied are skipped without running pip; pip runs one at a
    time per host (a lock file), since the workers of a host usually share one environment. A pip
    failure fails the plugin's setup with pip's last lines (the client turns it into a ClusterError).

    Example:
        >>> PipPlugin(["six>=1.0"]).name.startswith("det-jupyter-pip-")
        True
    """

    idempotent = True  # the scheduler keeps one plugin per requirement list

    def __init__(self, requirements: Sequence[str]) -> None:
        self.requirements = list(requirements)
        digest = hashlib.sha256("\n".join(self.requirements).encode()).hexdigest()[:12]
        self.name = f"det-jupyter-pip-{digest}"

    @property
    def packages(self) -> list[str]:
        return [r for r in self.requirements if not r.startswith("-")]

    @property
    def options(self) -> list[str]:
        return [r for r in self.requirements if r.startswith("-")]

    async def setup(self, worker: Any) -> None:
        missing = [r for r in self.packages if not _satisfied(r)]
        if not missing:
            return
        await asyncio.to_thread(self._install, missing, str(getattr(worker, "address", "?")))

    def _install(self, missing: list[str], where: str) -> None:
        lock = Path(os.environ.get("TMPDIR", "/tmp")) / f"det-jupyter-pip-{os.getuid()}.lock"
        with lock.open("ab") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # one pip per host at a time
            still = [r for r in missing if not _satisfied(r)]  # another worker of the host did it
            if still:
                command = [
                    sys.executable,
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    *self.options,
                    *still,
                ]
                log.warning("det_jupyter: worker %s installs %s", where, " ".join(still))
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-6:])
                    raise RuntimeError(
                        f"pip install {' '.join(still)} failed on worker {where} (exit {done.returncode}):\n{tail}"
                    )
        importlib.invalidate_caches()
        stale = [r for r in missing if not _satisfied(r)]
        if stale:
            raise RuntimeError(
                f"pip installed {' '.join(stale)} on worker {where}, but this worker's Python "
                f"({sys.executable}) still does not see it: pip installed it elsewhere (check the worker's "
                "pip configuration, PIP_TARGET / PYTHONPATH)"
            )


def install_packages(client: Client, requirements: Sequence[str]) -> None:
    """Install ``requirements`` on every worker, now and as they join (:class:`PipPlugin`).

    Raises:
        ClusterError: pip failed on a worker (its message, and the fix).
    """
    plugin = PipPlugin(requirements)
    try:
        client.register_plugin(plugin, name=plugin.name)
    except Exception as exc:
        with contextlib.suppress(Exception):  # registered on the scheduler even though it failed:
            client.unregister_worker_plugin(plugin.name)  # else the next submit would skip it
        raise ClusterError(
            f"environment.pip {plugin.packages}: {exc}\nFix the requirement (name, version, index options "
            "such as '--index-url URL'), make the package reachable from the workers, or install it in the "
            "workers' image"
        ) from None


def prepare_workers(client: Client, cfg: ExperimentConfig, blob: bytes | None = None) -> None:
    """At submission: install ``environment.pip`` on the workers, then check their versions.

    Example:
        >>> prepare_workers(client, cfg, blob)     # doctest: +SKIP
    """
    if cfg.environment.pip:
        install_packages(client, cfg.environment.pip)
    check_worker_versions(client, blob)
