"""Checkpoint storage over fsspec: atomic commit, restore, download, and the garbage-collection policy.

A checkpoint is a directory named by its UUID under the storage root, holding the user's files and a
``metadata.json`` written *last*. A checkpoint counts as committed only once ``metadata.json`` exists, so
a worker that dies mid-write never leaves a half checkpoint that anyone could restore from. On a local
or shared filesystem the files are written into ``<root>/.tmp-<uuid>`` in place (no copy) and the
directory is renamed into place, which is atomic on POSIX filesystems. On object stores (``s3://``...)
files are uploaded first and ``metadata.json`` last.

Besides the checkpoints, the root holds one small pointer per trial, ``latest/<experiment>-<trial>.json``,
rewritten atomically after each commit. A trial restarted by Dask itself (a rescheduled task whose
worker died) reads it to resume from the newest checkpoint, whatever its task arguments said.

Example:
    >>> import tempfile, pathlib
    >>> storage = CheckpointStorage(tempfile.mkdtemp())
    >>> with storage.stage("0f1e") as path:
    ...     _ = (path / "weights.txt").write_text("42")
    ...     info = storage.commit("0f1e", path, {"steps": 10})
    >>> with storage.restore_path("0f1e") as path:
    ...     (path / "weights.txt").read_text()
    '42'
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from det_jupyter.errors import CheckpointError
from det_jupyter.searcher.ranking import is_rankable, rank_key

__all__ = [
    "METADATA_FILE",
    "CheckpointRecord",
    "CheckpointStorage",
    "checkpoints_to_delete",
]

METADATA_FILE = "metadata.json"
_TMP_PREFIX = ".tmp-"
_WRITER = socket.gethostname().replace("/", "_").replace("@", "_")  # as it appears in staging names


class CheckpointStorage:
    """Checkpoints under one fsspec root (a local path, ``file://``, ``s3://bucket/prefix``, ...).

    Instances are cheap, picklable (they hold only the URL and options) and thread-safe: every method
    works on distinct paths.

    Args:
        url: the storage root; a plain path means the local filesystem.
        storage_options: passed to fsspec (e.g. ``{"client_kwargs": {"endpoint_url": ...}}`` for S3).
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.url = str(url)
        self.storage_options = dict(storage_options or {})
        self._fs: fsspec.AbstractFileSystem | None = None
        self._root = ""

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "storage_options": self.storage_options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["storage_options"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"CheckpointStorage({self.url!r})"

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The fsspec filesystem, created on first use."""
        if self._fs is None:
            fs, root = fsspec.core.url_to_fs(self.url, **self.storage_options)
            self._fs, self._root = fs, root.rstrip("/")
            if isinstance(fs, LocalFileSystem):
                os.makedirs(self._root, exist_ok=True)
        return self._fs

    @property
    def is_local(self) -> bool:
        """True when checkpoints live on a filesystem this process can open directly."""
        return isinstance(self.fs, LocalFileSystem)

    def path_of(self, uuid: str) -> str:
        """The storage path of a checkpoint (inside the fsspec filesystem)."""
        _ = self.fs
        return f"{self._root}/{uuid}"

    # --- writing -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def stage(self, uuid: str) -> Iterator[Path]:
        """A local directory to write a checkpoint into; removed afterwards unless committed.

        On a local filesystem it is ``<root>/.tmp-<uuid>@<host>:<pid>`` so that commit is a rename and
        :meth:`remove_incomplete` can tell a dead writer's leftovers from a live save.
        """
        if self.is_local:
            path = Path(f"{self._root}/{_TMP_PREFIX}{uuid}@{_WRITER}:{os.getpid()}")
            path.mkdir(parents=True, exist_ok=False)
        else:
            path = Path(tempfile.mkdtemp(prefix=f"det-ckpt-{uuid}-"))
        try:
            yield path
        finally:
            if path.exists():
                shutil.rmtree(path, ignore_errors=True)

    def commit(self, uuid: str, staged: Path, metadata: Mapping[str, Any]) -> dict[str, int]:
        """Make a staged directory a committed checkpoint; returns ``{relative file: size}``.

        ``metadata.json`` is written last, so a crash at any point leaves no committed checkpoint.
        """
        resources = _list_resources(staged)
        meta = dict(metadata, uuid=uuid, resources=resources, committed_at=time.time())
        final = self.path_of(uuid)
        if self.is_local:
            if os.path.exists(final):
                raise CheckpointError(f"checkpoint {uuid} already exists at {final}")
            _atomic_write_text(staged / METADATA_FILE, json.dumps(meta))
            os.replace(staged, final)
            return resources
        for rel in resources:
            self.fs.put_file(str(staged / rel), f"{final}/{rel}")
        with self.fs.open(f"{final}/{METADATA_FILE}", "w") as f:
            f.write(json.dumps(meta))
        return resources

    def write_latest(
        self, experiment_id: int, trial_id: int, uuid: str, steps: int, *, experiment_key: str = ""
    ) -> None:
        """Point a trial's ``latest`` pointer at a committed checkpoint (atomically where possible).

        ``experiment_key`` tells this experiment from another with the same id: two stores (a deleted
        and re-created one, say) may share a checkpoint root, and ids restart at 1 in a new store.
        """
        doc = json.dumps({"uuid": uuid, "steps": steps, "experiment_key": experiment_key})
        path = f"{self._latest_dir()}/{experiment_id}-{trial_id}.json"
        if self.is_local:
            _atomic_write_text(Path(path), doc)
        else:
            with self.fs.open(path, "w") as f:
                f.write(doc)

    def read_latest(
        self, experiment_id: int, trial_id: int, *, experiment_key: str = ""
    ) -> tuple[str, int] | None:
        """The ``(uuid, steps)`` of a trial's newest committed checkpoint, or ``None``.

        ``None`` too when the pointer was written for another experiment with the same id (its
        ``experiment_key`` differs: a pointer left by an older store) or its checkpoint is gone.

        Example:
            >>> import tempfile
            >>> storage = CheckpointStorage(tempfile.mkdtemp())
            >>> storage.read_latest(1, 1, experiment_key="1-1700000000.0") is None
            True
        """
        path = f"{self._latest_dir()}/{experiment_id}-{trial_id}.json"
        try:
            with self.fs.open(path, "r") as f:
                doc = json.loads(f.read())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if doc.get("experiment_key", "") != experiment_key or not self.exists(doc["uuid"]):
            return None
        return str(doc["uuid"]), int(doc["steps"])

    def _latest_dir(self) -> str:
        _ = self.fs
        path = f"{self._root}/latest"
        if self.is_local:
            os.makedirs(path, exist_ok=True)
        return path

    # --- reading -------------------------------------------------------------------------------

    def exists(self, uuid: str) -> bool:
        """True if the checkpoint is committed (its ``metadata.json`` exists)."""
        return bool(self.fs.exists(f"{self.path_of(uuid)}/{METADATA_FILE}"))

    def metadata(self, uuid: str) -> dict[str, Any]:
        """The committed checkpoint's metadata; raises :class:`CheckpointError` if it is missing."""
        try:
            with self.fs.open(f"{self.path_of(uuid)}/{METADATA_FILE}", "r") as f:
                return dict(json.loads(f.read()))
        except FileNotFoundError:
            raise CheckpointError(
                f"checkpoint {uuid} is not in storage {self.url} (deleted by the GC policy, or never "
                "committed); keep more with checkpoint_storage.save_trial_latest / save_trial_best"
            ) from None

    @contextlib.contextmanager
    def restore_path(self, uuid: str) -> Iterator[Path]:
        """A local directory holding the checkpoint's files; treat it as read-only.

        Local storage yields the checkpoint directory itself; remote storage downloads to a temp dir.
        """
        self.metadata(uuid)  # raises a clear error if absent
        if self.is_local:
            yield Path(self.path_of(uuid))
            return
        tmp = Path(tempfile.mkdtemp(prefix=f"det-restore-{uuid}-"))
        try:
            self.download(uuid, tmp)
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def download(self, uuid: str, dest: str | os.PathLike[str]) -> Path:
        """Copy a committed checkpoint's files into ``dest`` (created if needed); returns ``dest``."""
        meta = self.metadata(uuid)
        dest_path = Path(dest)
        dest_path.mkdir(parents=True, exist_ok=True)
        src = self.path_of(uuid)
        for rel in [*meta.get("resources", {}), METADATA_FILE]:
            target = dest_path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(f"{src}/{rel}", str(target))
        return dest_path

    # --- deleting ------------------------------------------------------------------------------

    def delete(self, uuid: str) -> None:
        """Delete a checkpoint; its metadata goes first so it is never seen half-deleted."""
        path = self.path_of(uuid)
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(f"{path}/{METADATA_FILE}")
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def remove_incomplete(self, *, older_than: float = 3600.0) -> int:
        """Remove staged directories left by crashed writers (local storage); returns how many.

        A directory whose writer (named in it as ``host:pid``) is a process of this host that no
        longer exists goes at once; others only once nothing changed in them for ``older_than``
        seconds: one root serves many experiments and hosts, and a staging directory written right
        now belongs to a live trial's save.

        Example:
            >>> import tempfile
            >>> storage = CheckpointStorage(tempfile.mkdtemp())
            >>> _ = storage.fs
            >>> os.makedirs(f"{storage._root}/.tmp-dead@{_WRITER}:999999999")
            >>> storage.remove_incomplete()
            1
        """
        if not self.is_local:
            return 0
        cutoff = time.time() - older_than
        removed = 0
        for entry in Path(self._root).glob(f"{_TMP_PREFIX}*"):
            if not _writer_is_dead(entry.name) and _last_modified(entry) >= cutoff:
                continue
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
        return removed


def _list_resources(root: Path) -> dict[str, int]:
    return {
        p.relative_to(root).as_posix(): p.stat().st_size
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != METADATA_FILE
    }


def _writer_is_dead(name: str) -> bool:
    """True when a staging directory's writer (``...@host:pid``) is a process of this host that is gone."""
    _, at, writer = name.rpartition("@")
    host, _, pid_text = writer.rpartition(":")
    if not at or host != _WRITER or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except (ProcessLookupError, OverflowError):
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _last_modified(root: Path) -> float:
    try:
        return max(p.stat().st_mtime for p in [root, *root.rglob("*")])
    except FileNotFoundError:  # committed (renamed) or removed while we looked: not ours to remove
        return time.time()


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --- garbage collection policy ---------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointRecord:
    """What the GC policy needs to know of one committed checkpoint.

    ``metric`` is the searcher metric validated at the checkpoint's steps, or ``None``.
    """

    uuid: str
    trial_id: int
    steps: int
    metric: float | None


def checkpoints_to_delete(
    checkpoints: Iterable[CheckpointRecord],
    *,
    save_experiment_best: int,
    save_trial_best: int,
    save_trial_latest: int,
    smaller_is_better: bool,
    active_trials: Iterable[int] = (),
) -> set[str]:
    """Determined's checkpoint GC policy: which checkpoints to delete.

    Kept: the ``save_experiment_best`` best checkpoints of the experiment, the ``save_trial_best`` best
    of each trial, the ``save_trial_latest`` newest of each trial, and always the newest checkpoint of
    each trial in ``active_trials`` (it is what a restart or a resume needs). Everything else goes.
    Only checkpoints with a rankable validation metric (a finite number) rank as "best", in
    :mod:`det_jupyter.searcher.ranking`'s order; ties go to the newer checkpoint (more steps).

    Example:
        >>> cks = [CheckpointRecord("a", 1, 10, 0.5), CheckpointRecord("b", 1, 20, 0.9),
        ...        CheckpointRecord("c", 1, 30, 0.7)]
        >>> sorted(checkpoints_to_delete(cks, save_experiment_best=0, save_trial_best=1,
        ...        save_trial_latest=1, smaller_is_better=False))
        ['a']
    """
    items = list(checkpoints)

    def best_first(cks: list[CheckpointRecord]) -> list[CheckpointRecord]:
        scored = [c for c in cks if is_rankable(c.metric)]
        return sorted(
            scored, key=lambda c: rank_key(c.metric, smaller_is_better=smaller_is_better, tiebreak=-c.steps)
        )

    keep: set[str] = {c.uuid for c in best_first(items)[:save_experiment_best]}
    by_trial: dict[int, list[CheckpointRecord]] = {}
    for c in items:
        by_trial.setdefault(c.trial_id, []).append(c)
    active = set(active_trials)
    for trial_id, cks in by_trial.items():
        newest = sorted(cks, key=lambda c: c.steps, reverse=True)
        keep.update(c.uuid for c in newest[:save_trial_latest])
        keep.update(c.uuid for c in best_first(cks)[:save_trial_best])
        if trial_id in active:
            keep.add(newest[0].uuid)
    return {c.uuid for c in items} - keep
