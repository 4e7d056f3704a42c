"""Worker environment (#11.5) on real external clusters: ``environment.pip`` installed on the workers
(and on a worker that joins later), idempotent, with a clear error when pip fails; and a clear error at
submit when a worker's versions differ from the kernel's.

The differing versions are real package metadata on the worker's ``PYTHONPATH``: a fake
``det_jupyter_probe`` package (2.0 there, 1.0 in the kernel, absent from the other worker) and a
``det_jupyter-0.0.1.dist-info`` that shadows det_jupyter's version there (its code is the real one).
pip runs for real on the worker, offline, from a wheel this test builds; the worker's pip settings
(``PIP_TARGET``, ``PIP_NO_INDEX``, ``PIP_FIND_LINKS``) keep it out of the shared virtualenv.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import zipfile
from pathlib import Path
from typing import Any

import pytest

import det_jupyter
from det_jupyter import ExperimentState
from det_jupyter.errors import ClusterError
from external_tests.procs import DaskProcesses

pytestmark = pytest.mark.slow


def _dist(folder: Path, name: str, version: str, module: str | None = None) -> None:
    """An installed distribution in ``folder``: its dist-info, and a module setting VERSION if asked."""
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "RECORD").write_text("")
    if module:
        (folder / module).mkdir()
        (folder / module / "__init__.py").write_text(f"VERSION = {version!r}\n")


def uses_probe(ctx: Any) -> None:
    import det_jupyter_probe  # the worker needs it

    ctx.report_validation_metrics(1, {"val_loss": float(det_jupyter_probe.VERSION)})


def plain(ctx: Any) -> None:
    ctx.report_validation_metrics(1, {"val_loss": 0.0})


CONFIG = {"searcher": {"name": "single", "metric": "val_loss"}}


def test_differing_worker_versions_are_a_clear_error_at_submit(
    det_home: Path, tmp_path: Path, dask_procs: DaskProcesses, monkeypatch: pytest.MonkeyPatch
) -> None:
    shadow = tmp_path / "worker-site"
    _dist(shadow, "det_jupyter_probe", "2.0", module="det_jupyter_probe")
    _dist(shadow, "det_jupyter", "0.0.1")  # metadata only: the code stays the real one
    dask_procs.start_worker("shadowed", "--nthreads", "1", env={"PYTHONPATH": str(shadow)})
    dask_procs.start_worker("bare", "--nthreads", "1")
    names = dask_procs.worker_names()
    kernel_site = tmp_path / "kernel-site"
    _dist(kernel_site, "det_jupyter_probe", "1.0", module="det_jupyter_probe")
    monkeypatch.syspath_prepend(str(kernel_site))
    importlib.invalidate_caches()
    monkeypatch.setenv("DET_JUPYTER_CHECK_PACKAGES", "det_jupyter_probe")
    ours = importlib.metadata.version("det_jupyter")

    with pytest.raises(ClusterError) as error:  # master mode: checked by the kernel before any row
        det_jupyter.create_experiment(CONFIG, uses_probe, cluster=dask_procs.address)
    text = str(error.value)
    assert f"det_jupyter 0.0.1 on worker(s) {names['shadowed']}, but {ours} in the kernel" in text
    assert f"det_jupyter_probe 2.0 on worker(s) {names['shadowed']}, but 1.0 in the kernel" in text
    assert f"det_jupyter_probe is not installed on worker(s) {names['bare']}" in text
    assert "environment: {pip: ['det-jupyter-probe==1.0']}" in text  # the fix
    assert det_jupyter.list_experiments() == []

    with pytest.raises(ClusterError) as error:  # in-process (a Client); the entrypoint needs no probe
        det_jupyter.create_experiment(CONFIG, plain, cluster=dask_procs.client)
    text = str(error.value)
    assert "det_jupyter 0.0.1" in text and "det_jupyter_probe 2.0" in text
    assert "not installed" not in text  # a package the entrypoint does not mention may be missing
    assert det_jupyter.list_experiments() == []


def _wheel(folder: Path, name: str, version: str, body: str) -> Path:
    """A pure-Python wheel of one module, built by hand (what pip installs offline)."""
    files = {
        f"{name}/__init__.py": body.encode(),
        f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{name}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{name}-{version}.dist-info/RECORD,,")
    files[f"{name}-{version}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return wheel


def uses_pipdemo(ctx: Any) -> None:
    import os

    import det_jupyter_pipdemo

    ctx.report_validation_metrics(1, {"val_loss": 0.0, "value": det_jupyter_pipdemo.VALUE,
                                      "env": os.environ.get("DEMO_VAR", "")})  # fmt: skip


def _pip_worker_env(tmp_path: Path, target: Path) -> dict[str, str]:
    target.mkdir(parents=True)
    return {"PIP_TARGET": str(target), "PYTHONPATH": str(target), "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": str(tmp_path / "wheels"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}  # fmt: skip


def test_environment_pip_is_installed_on_the_workers_once_and_failures_are_clear(
    det_home: Path, tmp_path: Path, dask_procs: DaskProcesses
) -> None:
    _wheel(tmp_path / "wheels", "det_jupyter_pipdemo", "1.0", "VALUE = 42\n")
    target = tmp_path / "w1-site"
    dask_procs.start_worker("w1", "--nthreads", "1", env=_pip_worker_env(tmp_path, target))
    cfg = {
        **CONFIG,
        "environment": {"pip": ["det_jupyter_pipdemo==1.0"], "environment_variables": ["DEMO_VAR=hi"]},
    }

    exp = det_jupyter.create_experiment(cfg, uses_pipdemo, cluster=dask_procs.address)
    assert exp.wait(timeout=180) == ExperimentState.COMPLETED, exp.error
    row = exp.metrics("validation").iloc[0]
    assert (row["value"], row["env"]) == (42, "hi")
    installed = target / "det_jupyter_pipdemo" / "__init__.py"
    stamp = installed.stat().st_mtime_ns

    again = det_jupyter.create_experiment(cfg, uses_pipdemo, cluster=dask_procs.address)
    assert again.wait(timeout=180) == ExperimentState.COMPLETED, again.error
    assert installed.stat().st_mtime_ns == stamp  # satisfied: not reinstalled
    plugins = dask_procs.client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.worker_plugins))
    assert len([p for p in plugins if p.startswith("det-jupyter-pip-")]) == 1

    late = tmp_path / "late-site"  # a worker that joins later installs the same packages as it starts
    dask_procs.start_worker("late", "--nthreads", "1", env=_pip_worker_env(tmp_path, late))
    # (it is listed as soon as it registers; it takes tasks only once its plugins are set up)
    dask_procs.wait_for(
        (late / "det_jupyter_pipdemo" / "__init__.py").exists, 120, "the late worker's install"
    )

    bad = {**CONFIG, "environment": {"pip": ["det_jupyter_nosuch==9.9"]}}
    for _ in range(2):  # a failed install is not remembered as done
        with pytest.raises(
            ClusterError, match=r"pip install det_jupyter_nosuch==9\.9 failed on worker tcp://"
        ) as error:
            det_jupyter.create_experiment(bad, plain, cluster=dask_procs.address)
        assert "No matching distribution found for det_jupyter_nosuch==9.9" in str(error.value)
    assert len(det_jupyter.list_experiments()) == 2
