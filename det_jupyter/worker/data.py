"""A trial's data as a local directory: ``data.data_dir`` given as any fsspec URL.

A local path (or ``file://`` URL) is used as it is. A remote URL (``s3://bucket/mnist``, ``gs://...``,
``https://...``) is downloaded once per worker into the worker's scratch space, cached by URL: trials
that follow on the same worker reuse the copy, and trials running at the same time on one worker wait
for the one download (an exclusive ``flock`` per URL; the copy appears under its final name only when
complete, by an atomic rename). The cache is never refreshed while the worker lives: publish new data
under a new URL.

Command trials get the directory as ``$DATA_DIR``; Python trials as ``ctx.data_dir``. The fsspec
options (endpoint, keys) come from ``data.storage_options``; without keys, the storage library finds
credentials itself (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, ``~/.aws``, an instance role).

Example:
    >>> import tempfile
    >>> local_data(tempfile.gettempdir()) == Path(tempfile.gettempdir())
    True
    >>> local_data("file:///srv/data/mnist")
    PosixPath('/srv/data/mnist')
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from det_jupyter.worker.model_dir import worker_scratch

__all__ = ["is_local_url", "local_data"]

try:  # POSIX; elsewhere concurrent first downloads may each fetch, and one rename wins
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def is_local_url(url: str) -> bool:
    """True for a local path or a ``file://`` URL.

    Example:
        >>> [is_local_url(u) for u in ("/data", "~/data", "file:///data", "s3://b/data")]
        [True, True, True, False]
    """
    return "://" not in url or url.startswith("file://")


def local_data(url: str, storage_options: Mapping[str, Any] | None = None) -> Path:
    """``url`` as a local directory: a local path as is, a remote URL downloaded once per worker.

    Args:
        url: a local path, ``file://`` URL, or any fsspec URL of a directory (or of a single file,
            which then sits alone in the returned directory).
        storage_options: fsspec options for the remote filesystem (``client_kwargs``, ``key``...).

    Raises:
        FileNotFoundError: the remote URL names nothing (the message names the URL).
    """
    if is_local_url(url):
        return Path(os.path.expanduser(url.removeprefix("file://")))
    root = worker_scratch("data")
    target = root / hashlib.sha256(url.encode()).hexdigest()[:16]
    if target.is_dir():
        return target
    with _exclusive(root / f"{target.name}.lock"):
        if target.is_dir():  # another trial of this worker downloaded it while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".dl-{target.name}-", dir=root))
        try:
            _download(url, dict(storage_options or {}), tmp)
            try:
                os.rename(tmp, target)
            except OSError:
                if not target.is_dir():  # else another download (without flock) finished first: use it
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _download(url: str, storage_options: dict[str, Any], dest: Path) -> None:
    import fsspec

    fs, path = fsspec.core.url_to_fs(url, **storage_options)
    path = path.rstrip("/")
    if fs.isfile(path):
        fs.get_file(path, str(dest / path.rsplit("/", 1)[-1]))
        return
    if not fs.exists(path):
        raise FileNotFoundError(f"data.data_dir {url!r} names nothing: no file or directory there")
    fs.get(path + "/", str(dest), recursive=True)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (threads of one process and processes alike)."""
    with open(lock_path, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
