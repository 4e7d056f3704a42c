"""Package a model directory (or an IBM-style ``.zip``) for shipping to workers, and pick its entrypoint.

:func:`package_model_dir` zips a directory in memory, leaving out what ``.detignore`` (gitignore
syntax, as in Determined) and :data:`ALWAYS_IGNORED` name, and refuses more than :data:`MAX_BYTES`
(Determined's limit is 96 MB too): large data belongs in ``data.data_dir`` or object storage, not in
the code shipped with every experiment. A ``.zip`` is taken as it is (after the same size check).

:func:`directory_entrypoint` turns the config's ``entrypoint`` plus the packaged directory into what
the experiment freezes: a :class:`~det_jupyter.worker.command.CommandEntrypoint` for a command, a
:class:`~det_jupyter.worker.command.DirectoryEntrypoint` for ``module:Attr``.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "train.py").write_text("print('hi')")
    >>> _ = (d / "big.bin").write_bytes(b"0" * 10)
    >>> _ = (d / ".detignore").write_text("*.bin\\n")
    >>> package_model_dir(d).files
    ('.detignore', 'train.py')
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

from det_jupyter.errors import ConfigError, FieldError
from det_jupyter.worker.command import CommandEntrypoint, DirectoryEntrypoint
from det_jupyter.worker.model_dir import ModelDirectory

__all__ = ["ALWAYS_IGNORED", "MAX_BYTES", "directory_entrypoint", "package_model_dir"]

MAX_BYTES = 96 * 1024 * 1024
"""Largest model directory (uncompressed files) or zip shipped with an experiment."""

ALWAYS_IGNORED = ("__pycache__/", "*.pyc", ".git/", ".ipynb_checkpoints/", ".venv/", ".mypy_cache/")
"""Patterns left out of every model directory, on top of its ``.detignore``."""


def package_model_dir(path: str | os.PathLike[str], *, max_bytes: int = MAX_BYTES) -> ModelDirectory:
    """Zip a model directory (``.detignore`` applied) or read a ``.zip``; size-checked.

    Raises:
        ConfigError: the path does not exist, is not a directory or zip, or is too large (the error
            names the largest files and the fix).
    """
    import pathspec

    root = Path(path).expanduser()
    if root.is_file() and zipfile.is_zipfile(root):
        size = root.stat().st_size
        if size > max_bytes:
            raise _too_large(root, size, max_bytes, [(root.name, size)])
        return ModelDirectory.from_zip_bytes(root.read_bytes(), root.name)
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is neither a directory nor a .zip file"
        fix = "give the directory holding your training code (or a .zip of it)"
        raise ConfigError(FieldError("context", f"model directory {str(path)!r} {what}", fix))
    patterns = list(ALWAYS_IGNORED)
    ignore_file = root / ".detignore"
    if ignore_file.is_file():
        patterns += ignore_file.read_text(encoding="utf-8").splitlines()
    spec = pathspec.GitIgnoreSpec.from_lines(patterns)
    files: list[tuple[str, Path, int]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(d for d in dirnames if not spec.match_file(f"{(rel_dir / d).as_posix()}/"))
        for name in sorted(filenames):
            rel = (rel_dir / name).as_posix()
            full = Path(dirpath) / name
            if not spec.match_file(rel) and full.is_file():
                files.append((rel, full, full.stat().st_size))
    total = sum(size for _, _, size in files)
    if total > max_bytes:
        raise _too_large(root, total, max_bytes, [(rel, size) for rel, _, size in files])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for rel, full, _ in files:
            zf.write(full, rel)
    return ModelDirectory.from_zip_bytes(buf.getvalue(), root.name)


def _too_large(root: Path, size: int, limit: int, files: list[tuple[str, int]]) -> ConfigError:
    biggest = ", ".join(f"{rel} ({n / 2**20:.1f} MiB)" for rel, n in sorted(files, key=lambda f: -f[1])[:3])
    return ConfigError(
        FieldError(
            "context",
            f"model directory {str(root)!r} is {size / 2**20:.1f} MiB, over the {limit / 2**20:.0f} MiB limit "
            f"(largest: {biggest})",
            "list data, checkpoints and outputs in a .detignore file (gitignore syntax) and read data "
            "from data.data_dir or object storage",
        )
    )


def directory_entrypoint(
    entrypoint: str | Sequence[str], model_dir: ModelDirectory | None
) -> CommandEntrypoint | DirectoryEntrypoint:
    """What to freeze for a config ``entrypoint`` that is a command or ``module:Attr`` of ``model_dir``.

    A lone script name (``train.py``) runs with the worker's Python, as Determined does.

    Example:
        >>> directory_entrypoint("train.py", None).command
        'python3 train.py'
        >>> directory_entrypoint(["python3", "train.py"], None).command
        ('python3', 'train.py')
    """
    from det_jupyter.config.entrypoints import entrypoint_kind

    kind = entrypoint_kind(entrypoint)
    if kind == "command":
        if isinstance(entrypoint, str):
            text = entrypoint.strip()
            if not any(ch.isspace() for ch in text) and text.endswith(".py"):
                text = f"python3 {text}"
            return CommandEntrypoint(text, model_dir)
        return CommandEntrypoint(tuple(entrypoint), model_dir)
    assert isinstance(entrypoint, str)
    if model_dir is None:
        raise ValueError("a module:Attr entrypoint from a model directory needs the directory")
    target = entrypoint.strip()
    module = target.partition(":")[0].replace(".", "/")
    if f"{module}.py" not in model_dir.files and f"{module}/__init__.py" not in model_dir.files:
        raise ConfigError(
            FieldError(
                "entrypoint",
                f"{target!r}: model directory {model_dir.name!r} has no {module}.py",
                f"check the module name (files: {', '.join(model_dir.files[:8])})",
            )
        )
    return DirectoryEntrypoint(target, model_dir)
