"""Helpers of the suite's benchmarks: machine description, interleaved runs, medians, goals, JSON.

The markdown section writer lives in ``bench/_report.py`` (shared by every benchmark); this module
re-exports it. Each benchmark writes its own section of ``docs/benchmarks.md`` and may drop a
machine-readable summary (``--json``) that ``bench/run.py`` collects.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

from _report import write_section

__all__ = [
    "Goal",
    "interleaved",
    "machine",
    "machine_line",
    "median",
    "write_json",
    "write_section",
]


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    """Write a benchmark's summary for ``bench/run.py`` (no-op without a path)."""
    if path:
        with open(path, "w") as f:
            json.dump(payload, f, indent=1, default=str)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


def machine(*, torch_needed: bool = True) -> dict[str, Any]:
    """What the numbers were measured on: CPU model, cores, memory, GPU, versions, date."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages * size / 2**30)
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import distributed

        info["dask"] = distributed.__version__
    except ImportError:
        pass
    if torch_needed:
        try:
            import torch

            info["torch"] = torch.__version__
            if torch.cuda.is_available():
                info["gpu"] = torch.cuda.get_device_name(0)
                info["cuda"] = torch.version.cuda
        except ImportError:
            pass
    return info


def machine_line(info: dict[str, Any]) -> str:
    """One markdown line describing the machine."""
    parts = [f"{info['cpu']}, {info['cores']} cores"]
    if "memory_gib" in info:
        parts[0] += f", {info['memory_gib']} GiB"
    if info.get("gpu"):
        parts.append(f"GPU {info['gpu']} (CUDA {info.get('cuda')})")
    parts.append(f"Python {info['python']}")
    if "torch" in info:
        parts.append(f"torch {info['torch']}")
    if "dask" in info:
        parts.append(f"dask {info['dask']}")
    parts.append(info["date"])
    return "Machine: " + "; ".join(parts) + "."


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def interleaved(
    runners: dict[str, Callable[[], Any]], repeats: int, *, warmup: bool = True
) -> dict[str, list[Any]]:
    """Run every runner once per repeat, alternating their order each round (AB, BA, ...).

    Side-by-side measurement: drift on the machine (other load, page cache) hits all alike. Returns
    each runner's results in run order; a warm-up round (not returned) runs first.
    """
    names = list(runners)
    if warmup:
        for name in names:
            runners[name]()
    out: dict[str, list[Any]] = {name: [] for name in names}
    for i in range(repeats):
        for name in names if i % 2 == 0 else list(reversed(names)):
            out[name].append(runners[name]())
    return out


class Goal:
    """A goal and whether a figure met it, with the cause when it did not."""

    def __init__(self, name: str, value: float, target: str, met: bool, cause: str = "") -> None:
        self.name, self.value, self.target, self.met, self.cause = name, value, target, met, cause

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "goal": self.target,
            "met": self.met,
            "cause": self.cause,
        }

    @staticmethod
    def table(goals: Sequence[Goal], fmt: str = "{:.3f}") -> list[str]:
        lines = ["| goal | measured | target | met |", "|---|---|---|---|"]
        for g in goals:
            value = fmt.format(g.value) if isinstance(g.value, float) else str(g.value)
            verdict = "yes" if g.met else f"**no**: {g.cause}" if g.cause else "**no**"
            lines.append(f"| {g.name} | {value} | {g.target} | {verdict} |")
        return lines
