"""Command entrypoints run in the kernel's process (no cluster): output, errors, templating, data and
result directories, stop escalation, and model-directory packaging."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from det_jupyter.engine.packaging import directory_entrypoint, package_model_dir
from det_jupyter.errors import ConfigError
from det_jupyter.worker import command
from det_jupyter.worker.command import CommandEntrypoint, CommandFailed, render_command
from det_jupyter.worker.context import local_context
from det_jupyter.worker.model_dir import ModelDirectory


def _logs(ctx: Any) -> list[str]:
    return [line for e in ctx.sink.events if e["type"] == "log" for _, line in e["lines"]]


def _model_dir(tmp_path: Path, files: dict[str, str]) -> ModelDirectory:
    root = tmp_path / "model"
    root.mkdir(exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return package_model_dir(root)


def test_output_becomes_trial_logs_and_python_is_the_workers(tmp_path: Path) -> None:
    md = _model_dir(
        tmp_path,
        {"train.py": "import sys, helper\nprint(helper.X, sys.executable)\n", "helper.py": "X = 7\n"},
    )
    ctx = local_context({})
    directory_entrypoint("train.py", md)(ctx)
    import sys

    [line] = _logs(ctx)
    x, exe = line.split(" ", 1)
    assert x == "7" and Path(exe).parent == Path(sys.executable).parent  # the worker's venv


def test_a_failing_command_raises_with_the_end_of_stderr(tmp_path: Path) -> None:
    ctx = local_context({})
    script = "import sys; print('starting'); print('bad value: 3', file=sys.stderr); sys.exit(4)"
    with pytest.raises(CommandFailed, match=r"exited with status 4; last lines of stderr:\nbad value: 3"):
        CommandEntrypoint(("python3", "-c", script))(ctx)
    assert "starting" in _logs(ctx) and "bad value: 3" in _logs(ctx)


def test_hparams_templating_and_unknown_names() -> None:
    assert render_command("t.py --lr={hparams.lr}", {"lr": 1e-3}) == "t.py --lr=0.001"
    with pytest.raises(KeyError, match=r"\{hparams\.lrr\} but this trial has no such hyperparameter"):
        render_command("t.py --lr={hparams.lrr}", {"lr": 1e-3})


def test_data_dir_and_result_dir(tmp_path: Path) -> None:
    data, results = tmp_path / "data", tmp_path / "results"
    data.mkdir()
    (data / "train.csv").write_text("1,2\n")
    ctx = local_context({}, data={"data_dir": str(data), "result_dir": f"file://{results}"})
    CommandEntrypoint('cat "$DATA_DIR/train.csv" && echo done > "$RESULT_DIR/out.txt"')(ctx)
    assert _logs(ctx) == ["1,2"]
    assert (results / "0" / "0" / "out.txt").read_text() == "done\n"


def test_an_unresponsive_command_is_terminated_after_the_stop_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(command, "STOP_GRACE", 0.2)
    ctx = local_context({})
    ctx._stop.set()
    with pytest.raises(CommandFailed, match="signal 15"):
        CommandEntrypoint("sleep 60")(ctx)
    assert any("did not exit" in line for line in _logs(ctx))


def test_detignore_and_the_default_excludes(tmp_path: Path) -> None:
    md = _model_dir(
        tmp_path,
        {
            "train.py": "",
            "pkg/__init__.py": "",
            "pkg/__pycache__/x.pyc": "",
            "data/big.csv": "x",
            "notes.md": "",
            ".detignore": "data/\n*.md\n",
        },
    )
    assert md.files == (".detignore", "pkg/__init__.py", "train.py")


def test_too_large_a_directory_names_its_largest_files(tmp_path: Path) -> None:
    root = tmp_path / "model"
    root.mkdir()
    (root / "weights.bin").write_bytes(b"0" * 4096)
    (root / "train.py").write_text("")
    with pytest.raises(ConfigError, match=r"over the 0 MiB limit \(largest: weights\.bin.*\.detignore"):
        package_model_dir(root, max_bytes=1024)


def test_a_zip_is_taken_as_is_and_unsafe_paths_are_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("train.py", "print(1)")
    (tmp_path / "m.zip").write_bytes(buf.getvalue())
    assert package_model_dir(tmp_path / "m.zip").files == ("train.py",)
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escape.py", "")
    with pytest.raises(ValueError, match="unsafe path"):
        ModelDirectory.from_zip_bytes(evil.getvalue(), "evil").unpacked()


def test_missing_directory_and_missing_module(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        package_model_dir(tmp_path / "nope")
    md = _model_dir(tmp_path, {"train.py": ""})
    with pytest.raises(ConfigError, match=r"has no model_def\.py"):
        directory_entrypoint("model_def:Trial", md)
