"""A model directory shipped to workers: a zip in memory, unpacked once per worker, copied per trial.

:func:`det_jupyter.engine.packaging.package_model_dir` builds a :class:`ModelDirectory` on the
submitting machine (``.detignore`` applied, size limited); it travels inside the experiment's frozen
entrypoint (so it is stored with the experiment, for reproducibility, and shipped once per worker by
the definition cache). On a worker, :meth:`ModelDirectory.unpacked` extracts it once (atomically,
keyed by digest) and :meth:`ModelDirectory.working_copy` gives each trial run its own copy to run in.

Example:
    >>> import io, zipfile
    >>> buf = io.BytesIO()
    >>> with zipfile.ZipFile(buf, "w") as zf:
    ...     zf.writestr("train.py", "print('hi')")
    >>> md = ModelDirectory.from_zip_bytes(buf.getvalue(), name="demo")
    >>> md.files, (md.unpacked() / "train.py").read_text()
    (('train.py',), "print('hi')")
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ModelDirectory", "worker_scratch"]


def worker_scratch(kind: str) -> Path:
    """A per-worker directory for ``kind`` (models, trials, data): under the Dask worker's local
    directory when on a worker, else under the system temp directory."""
    base: str = tempfile.gettempdir()
    with contextlib.suppress(ImportError, ValueError):
        from distributed import get_worker

        base = str(get_worker().local_directory)
    path = Path(base) / f"det-jupyter-{kind}"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class ModelDirectory:
    """A packaged model directory.

    Attributes:
        archive: the zip bytes.
        digest: sha256 of ``archive`` (first 20 hex digits): the cache key on workers.
        name: the directory's (or zip's) name on the submitting machine, for messages.
        files: the paths in the archive, sorted.
    """

    archive: bytes
    digest: str
    name: str
    files: tuple[str, ...]

    @classmethod
    def from_zip_bytes(cls, archive: bytes, name: str) -> ModelDirectory:
        """Wrap zip bytes (checked: a bad zip raises ``zipfile.BadZipFile``)."""
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            files = tuple(sorted(n for n in zf.namelist() if not n.endswith("/")))
        return cls(archive, hashlib.sha256(archive).hexdigest()[:20], name, files)

    def __repr__(self) -> str:
        return f"ModelDirectory({self.name!r}, {len(self.files)} files, {len(self.archive)} bytes)"

    def unpacked(self) -> Path:
        """This worker's read-only-by-convention copy, extracted once (later calls reuse it)."""
        root = worker_scratch("models")
        target = root / self.digest
        if target.is_dir():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.digest}-", dir=root))
        with zipfile.ZipFile(io.BytesIO(self.archive)) as zf:
            for member in zf.namelist():  # refuse paths that would escape the directory
                resolved = (tmp / member).resolve()
                if not resolved.is_relative_to(tmp.resolve()):
                    raise ValueError(f"model directory {self.name!r}: unsafe path in archive: {member!r}")
            zf.extractall(tmp)
        try:
            os.rename(tmp, target)  # atomic: a concurrent extraction of the same digest may win
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    @contextlib.contextmanager
    def working_copy(self, label: str) -> Iterator[Path]:
        """A fresh copy for one trial run (removed afterwards), so runs never see each other's files."""
        workdir = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=worker_scratch("trials")))
        try:
            shutil.copytree(self.unpacked(), workdir, dirs_exist_ok=True)
            yield workdir
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
