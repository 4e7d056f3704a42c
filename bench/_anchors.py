"""The anchors' own venv: Optuna and Ray Tune are benchmarked, never det_jupyter dependencies.

:func:`anchor_python` returns the interpreter of a throwaway venv (``$DET_BENCH_ANCHOR_VENV``, default
``/tmp/det-bench-anchors``) that has the packages, creating it with pip from the package registry on
first use. ``None`` (and a printed reason) when that fails, e.g. offline: the benchmark then reports
the anchor as not measured.
"""

from __future__ import annotations

import os
import subprocess
import sys

__all__ = ["anchor_python"]

DEFAULT_VENV = "/tmp/det-bench-anchors"


def _modules(packages: list[str]) -> list[str]:
    return [p.split("[")[0].split("=")[0].split("<")[0].split(">")[0].replace("-", "_") for p in packages]


def anchor_python(packages: list[str]) -> str | None:
    venv = os.environ.get("DET_BENCH_ANCHOR_VENV", DEFAULT_VENV)
    python = os.path.join(venv, "bin", "python")
    check = "import " + ", ".join(_modules(packages))
    try:
        if not os.path.exists(python):
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", venv], check=True, capture_output=True, timeout=300)
        if subprocess.run([python, "-c", check], capture_output=True, timeout=300).returncode != 0:
            print(f"[bench] installing {' '.join(packages)} into {venv} (benchmark anchors only)", flush=True)
            subprocess.run(
                [python, "-m", "pip", "install", "-q", *packages],
                check=True,
                capture_output=True,
                timeout=1200,
            )
        subprocess.run([python, "-c", check], check=True, capture_output=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:
        print(
            f"[bench] anchors {packages} unavailable ({exc}); they are reported as not measured", flush=True
        )
        return None
    return python
