"""What the CLI tests share: running ``det-jupyter`` in-process or as a real subprocess, and model
directories holding ``module:attr`` and command entrypoints."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from det_jupyter.cli import main

DET_JUPYTER = Path(sys.executable).with_name("det-jupyter")
"""The installed console script (``.venv/bin/det-jupyter``)."""


@dataclass(frozen=True)
class Ran:
    """A finished ``det-jupyter`` command: exit status and what it printed."""

    rc: int
    out: str
    err: str


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> Ran:
    """``det-jupyter ARGS`` in this process, through :func:`det_jupyter.cli.main`."""
    capsys.readouterr()
    rc = main(list(args))
    captured = capsys.readouterr()
    return Ran(rc, captured.out, captured.err)


def run_script(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> Ran:
    """``.venv/bin/det-jupyter ARGS`` as a real subprocess (the environment of this test plus ``env``)."""
    done = subprocess.run(
        [str(DET_JUPYTER), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return Ran(done.returncode, done.stdout, done.stderr)


MODEL_DEF = '''
"""A model directory's module: train(ctx) with the notebook API, one that waits at a gate file, one that fails."""

from pathlib import Path


def train(ctx):
    x = ctx.hparams["x"]
    print(f"training with x={x:.4f}")
    for step in range(1, ctx.searcher.max_time + 1):
        ctx.report_training_metrics(step, {"loss": x * x + 1.0 / step})
    ctx.report_validation_metrics(ctx.searcher.max_time, {"val_loss": x * x})
    with ctx.checkpoint.save(ctx.searcher.max_time) as path:
        (Path(path) / "weights.txt").write_text(repr(x))
    print("done")


def gated(ctx):
    import time

    print("waiting at the gate")
    while not Path(ctx.hparams["gate"]).exists() and not ctx.should_stop():
        time.sleep(0.02)
    train(ctx)


def fail(ctx):
    print("about to fail")
    raise RuntimeError("this trial fails on purpose")
'''


def model_dir(tmp_path: Path) -> tuple[Path, str]:
    """A model directory with a uniquely named module (``train``, ``gated``, ``fail``); returns (dir, module)."""
    module = f"cli_model_{uuid.uuid4().hex[:8]}"
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / f"{module}.py").write_text(MODEL_DEF)
    return directory, module


def config_file(tmp_path: Path, entrypoint: str, *, max_trials: int = 2, name: str = "cli-test") -> Path:
    """A random-search config over ``x`` in [-1, 1] with checkpoints under ``tmp_path``."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            name: {name}
            entrypoint: {entrypoint}
            hyperparameters:
              x: {{type: double, minval: -1, maxval: 1}}
            searcher:
              name: random
              metric: val_loss
              smaller_is_better: true
              max_trials: {max_trials}
              time_metric: batches
              max_time: 3
            max_restarts: 0
            reproducibility: {{experiment_seed: 7}}
            checkpoint_storage: {{type: shared_fs, host_path: {tmp_path / "checkpoints"}}}
            """
        )
    )
    return path
