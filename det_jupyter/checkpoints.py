"""Checkpoint storage over fsspec: atomic commit, restore, download, and the garbage-collection policy.

A checkpoint is a directory named by its UUID under the storage root, holding the user's files and a
``metadata.json`` written *last*. A checkpoint counts as committed only once ``metadata.json`` exists, so
a worker that dies mid-write never leaves a half checkpoint that anyone could restore from. On a local
or shared filesystem the files are written into ``<root>/.tmp-<uuid>`` in place (no copy) and the
directory is renamed into place, which is atomic on POSIX filesystems. On object stores (``s3://``...)
files are uploaded first and ``metadata.json`` last.

Object stores are reached with the storage options the config gives (``endpoint_url``, keys) or, without
keys, with the credentials the process finds itself (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``,
``~/.aws``, an instance role). :func:`storage_access_problem` writes and deletes one tiny object at
submission, so a wrong endpoint, a missing bucket or missing credentials fail before any trial runs.
Reads of remote roots bypass fsspec's listings cache: other processes write there.

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
import threading
import time
import uuid as uuidlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import fsspec
from fsspec.implementations.local import LocalFileSystem

from det_jupyter.errors import CheckpointError, FieldError
from det_jupyter.searcher.ranking import is_rankable, rank_key

if TYPE_CHECKING:
    from det_jupyter.config.sections import CheckpointStorageConfig

__all__ = [
    "METADATA_FILE",
    "PROBE_TIMEOUT",
    "AccessProblem",
    "CheckpointRecord",
    "CheckpointStorage",
    "checkpoints_to_delete",
    "storage_access_problem",
]

METADATA_FILE = "metadata.json"
_TMP_PREFIX = ".tmp-"
_WRITER = socket.gethostname().replace("/", "_").replace("@", "_")  # as it appears in staging names
_PROBE_PREFIX = ".det-jupyter-probe-"
PROBE_TIMEOUT = 30.0
"""Seconds :meth:`CheckpointStorage.check_access` waits for a remote root before calling it unreachable."""


@dataclass(frozen=True)
class AccessProblem:
    """Why a remote storage root cannot take checkpoints.

    Attributes:
        reason: ``endpoint`` (nothing answers there), ``bucket`` (the bucket or container does not
            exist), ``credentials`` (none found, or refused) or ``other``.
        detail: the storage library's own message (never a credential: they do not print them).
    """

    reason: Literal["endpoint", "bucket", "credentials", "other"]
    detail: str


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

    def _fresh(self, path: str) -> str:
        """``path``, with fsspec's listings cache of it dropped on remote roots: other processes
        (workers, the controller) write there, and a cached listing would hide their writes."""
        if not self.is_local:
            self.fs.invalidate_cache(path)
        return path

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
        path = self._fresh(f"{self._latest_dir()}/{experiment_id}-{trial_id}.json")
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
        return bool(self.fs.exists(self._fresh(f"{self.path_of(uuid)}/{METADATA_FILE}")))

    def metadata(self, uuid: str) -> dict[str, Any]:
        """The committed checkpoint's metadata; raises :class:`CheckpointError` if it is missing."""
        try:
            with self.fs.open(self._fresh(f"{self.path_of(uuid)}/{METADATA_FILE}"), "r") as f:
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

    # --- checking ------------------------------------------------------------------------------

    def check_access(self, *, timeout: float = PROBE_TIMEOUT) -> AccessProblem | None:
        """Write, read back and delete one tiny object under a remote root; why that failed, or ``None``.

        Local roots are not probed (``None``): the config's ``local_path_problem`` checks them without
        creating anything. The probe uses its own filesystem instance with few retries, so a dead
        endpoint answers in seconds; past ``timeout`` seconds the endpoint counts as unreachable.

        Example:
            >>> import tempfile
            >>> CheckpointStorage(tempfile.mkdtemp()).check_access() is None
            True
        """
        if _is_local_url(self.url):
            return None
        outcome: list[AccessProblem | None] = []

        def probe() -> None:
            try:
                fs, root = fsspec.core.url_to_fs(self.url, **self._probe_options())
                path = f"{root.rstrip('/')}/{_PROBE_PREFIX}{uuidlib.uuid4().hex}"
                with fs.open(path, "wb") as f:
                    f.write(b"det-jupyter probe")
                fs.invalidate_cache(path)
                with fs.open(path, "rb") as f:
                    f.read()
                fs.rm_file(path)
                outcome.append(None)
            except Exception as exc:
                outcome.append(_access_problem(exc))

        thread = threading.Thread(target=probe, name="det-jupyter-storage-probe", daemon=True)
        thread.start()
        thread.join(timeout)
        if not outcome:
            return AccessProblem("endpoint", f"no answer within {timeout:g} s")
        return outcome[0]

    def _probe_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {**self.storage_options, "skip_instance_cache": True}
        if self.url.split("://", 1)[0] in ("s3", "s3a"):  # botocore retries a dead endpoint for ~5 s
            config = dict(options.get("config_kwargs") or {})
            config.setdefault("retries", {"total_max_attempts": 2})
            config.setdefault("connect_timeout", 5)
            options["config_kwargs"] = config
        return options

    # --- deleting ------------------------------------------------------------------------------

    def delete(self, uuid: str) -> None:
        """Delete a checkpoint; its metadata goes first so it is never seen half-deleted."""
        path = self.path_of(uuid)
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(f"{path}/{METADATA_FILE}")
        if self.fs.exists(self._fresh(path)):
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


def _is_local_url(url: str) -> bool:
    return "://" not in url or url.startswith(("file://", "local://"))


_CREDENTIAL_ERRORS = {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}
_ENDPOINT_ERRORS = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "ClientConnectorError",
    "ServerTimeoutError",
    "InvalidURL",
    "gaierror",
}


def _access_problem(exc: BaseException) -> AccessProblem:
    """Classify what a storage library raised (by class name: no botocore / gcsfs / adlfs import)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    detail = f"{type(exc).__name__}: {exc}"[:400]
    if names & _CREDENTIAL_ERRORS or isinstance(exc, PermissionError):
        return AccessProblem("credentials", detail)
    if names & _ENDPOINT_ERRORS or isinstance(exc, (ConnectionError, TimeoutError)):
        return AccessProblem("endpoint", detail)
    if isinstance(exc, FileNotFoundError):
        return AccessProblem("bucket", detail)
    return AccessProblem("other", detail)


def storage_access_problem(
    config: CheckpointStorageConfig, default_root: str = "", *, timeout: float = PROBE_TIMEOUT
) -> FieldError | None:
    """Why the remote checkpoint storage a config names cannot take checkpoints, naming the field to fix.

    Probes with :meth:`CheckpointStorage.check_access` from this process, which needs the access the
    controller needs anyway (it reads ``latest/`` pointers and garbage-collects). ``None`` for local
    storage, and when the probe succeeds.

    Example:
        >>> from det_jupyter.config.sections import CheckpointStorageConfig
        >>> storage_access_problem(CheckpointStorageConfig(host_path="/tmp")) is None
        True
    """
    url = config.resolve_url(default_root)
    if _is_local_url(url):
        return None
    problem = CheckpointStorage(url, config.storage_options()).check_access(timeout=timeout)
    if problem is None:
        return None
    kind = config.type
    where = {"s3": "bucket", "gcs": "bucket", "azure": "container"}.get(kind, "url")
    if problem.reason == "endpoint":
        if kind == "s3" and config.endpoint_url:
            field, message = "endpoint_url", f"cannot reach the S3 endpoint {config.endpoint_url!r}"
            fix = "give the URL an S3 server answers at (scheme, host and port), and check it is running"
        elif kind == "azure":
            field, message = "account_url", f"cannot reach the storage account of {url!r}"
            fix = "check account_url / connection_string and the network"
        else:
            field, message = where, f"cannot reach the storage service for {url!r}"
            fix = "check the network, and the endpoint (`endpoint_url` for S3-compatible servers)"
    elif problem.reason == "bucket":
        noun = "container" if kind == "azure" else "bucket"
        field, message = where, f"the {noun} of {url!r} does not exist (or the endpoint is no S3 server)"
        fix = f"create the {noun} first (e.g. `aws s3 mb s3://NAME`), or name an existing one"
        if kind == "s3" and config.endpoint_url:
            fix += f"; check that endpoint_url {config.endpoint_url!r} is the S3 server"
    elif problem.reason == "credentials":
        if kind == "s3":
            field = "access_key" if config.access_key else "secret_key" if config.secret_key else "access_key"
            message = f"no working credentials for {url!r}"
            fix = (
                "give access_key and secret_key, or leave them out and set AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY (or ~/.aws, an instance role) where the kernel and the workers run"
            )
        elif kind == "azure":
            field, message = "credential", f"no working credentials for {url!r}"
            fix = "give connection_string, or account_url with credential (or AZURE_* variables)"
        else:
            field, message = where, f"no working credentials for {url!r}"
            fix = "make the storage library's credentials available where the kernel and the workers run"
    else:
        field, message = where, f"cannot write a checkpoint to {url!r}"
        fix = "check the URL and its storage options"
    return FieldError(f"checkpoint_storage.{field}", f"{message} ({problem.detail})", fix)


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
