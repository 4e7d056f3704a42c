"""Embedded workers write their own output to a log file in the home, never into the user's cell.

The embedded cluster's worker processes are children of the process that starts it (the kernel in
``master="inprocess"`` mode), so they inherit its file descriptors 1 and 2, which ipykernel forwards
to the running cell: TensorFlow's C++ logging, warnings of native libraries and Dask's own log lines
would appear above the widget. ``local_cluster`` preloads this module in every worker (Dask's
``--preload``) with :data:`LOG_ENV` naming ``<home>/logs/workers.log``; :func:`dask_setup` points fds 1
and 2 there before the worker runs anything. What a *trial* prints still goes to the trial's log (the
runtime captures it per thread); this is the rest.

Example:
    >>> LOG_ENV
    'DET_JUPYTER_WORKER_LOG'
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["LOG_ENV", "dask_setup", "redirect_output"]

LOG_ENV = "DET_JUPYTER_WORKER_LOG"
"""The file embedded workers append their stdout and stderr to."""


def redirect_output(path: str | os.PathLike[str]) -> None:
    """Point this process's file descriptors 1 and 2 at ``path`` (appended; created 0600)."""
    target = Path(path)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken stream: nothing to keep
            stream.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def dask_setup(worker: Any) -> None:
    """Dask's preload hook: redirect when the cluster asked for it."""
    path = os.environ.get(LOG_ENV)
    if path:
        redirect_output(path)
