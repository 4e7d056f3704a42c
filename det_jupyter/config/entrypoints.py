"""What kind of thing a config's ``entrypoint`` names: a notebook name, ``module:Attr``, or a command.

Determined writes an entrypoint as ``model_def:Trial`` (a class to import), as a shell command
(``python3 train.py``, the Core API way) or as a list of arguments (``[python3, train.py]``).
det_jupyter adds a bare name, looked up in the notebook. :func:`entrypoint_kind` is the one rule
every part of det_jupyter uses to tell them apart.

Example:
    >>> [entrypoint_kind(v) for v in ("IrisTrial", "model_def:Trial", "python3 train.py", ["python3", "t.py"])]
    ['name', 'module', 'command', 'command']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

__all__ = ["EntrypointKind", "entrypoint_kind"]

EntrypointKind = Literal["name", "module", "command"]
"""``name``: a function or class in the notebook; ``module``: ``package.module:Attr`` to import;
``command``: a process to run (a list of arguments, or a shell command line)."""

_SCRIPT_SUFFIXES = (".py", ".sh")


def entrypoint_kind(value: str | Sequence[str]) -> EntrypointKind:
    """Whether ``value`` is a notebook name, a ``module:Attr`` to import, or a command to run.

    A command is a list of strings, a string with whitespace in it (``python3 train.py``) or a string
    ending in ``.py`` / ``.sh`` (``train.py``, a script run as is). Otherwise a string with a colon
    is ``module:Attr`` and anything else a name in the notebook.

    Args:
        value: the config's ``entrypoint`` (a string or a list of strings).

    Raises:
        TypeError: ``value`` is neither a string nor a sequence of strings.

    Example:
        >>> entrypoint_kind("  train  "), entrypoint_kind("train.py"), entrypoint_kind("pkg.mod:Trial")
        ('name', 'command', 'module')
        >>> entrypoint_kind("python3 -m pkg.mod:main")
        'command'
    """
    if isinstance(value, str):
        text = value.strip()
        if any(ch.isspace() for ch in text) or text.endswith(_SCRIPT_SUFFIXES):
            return "command"
        return "module" if ":" in text else "name"
    if isinstance(value, Sequence) and all(isinstance(item, str) for item in value):
        return "command"
    raise TypeError(f"an entrypoint is a string or a list of strings, not {type(value).__name__}")
