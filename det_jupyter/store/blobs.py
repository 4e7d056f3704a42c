"""Large binary values of the store (frozen model definitions) as content-addressed files beside the db.

A frozen entrypoint with big captured globals can be hundreds of MB; inside SQLite it bloats the db
and, worse, the WAL (every page is written twice). Values of at least :data:`INLINE_LIMIT` bytes are
written once to ``<dir of the db>/blobs/<sha256>`` (atomically: a temp file in the same directory,
then a rename; an existing file with that name is the same content and is kept) and the row keeps
the digest. Reading checks the digest, so a truncated or edited file is an error, never a bad pickle.

Example:
    >>> import tempfile
    >>> blobs = BlobFiles(Path(tempfile.mkdtemp()))
    >>> digest = blobs.put(b"x" * 10)
    >>> blobs.get(digest)
    b'xxxxxxxxxx'
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from det_jupyter.errors import StoreError

__all__ = ["INLINE_LIMIT", "BlobFiles"]

INLINE_LIMIT = 256 * 1024
"""Values at least this large (bytes) are kept out of SQLite."""


class BlobFiles:
    """Content-addressed, write-once files under ``root`` (``blobs/`` beside the store's db).

    Args:
        root: the directory holding the files (created with mode 0700 on first write).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_of(self, digest: str) -> Path:
        """Where the value with this sha256 hex digest lives."""
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise StoreError(f"{digest!r} is not a sha256 hex digest")
        return self.root / digest

    def put(self, data: bytes) -> str:
        """Store ``data`` (once) and return its sha256 hex digest.

        Example:
            >>> import tempfile
            >>> BlobFiles(Path(tempfile.mkdtemp())).put(b"")[:12]
            'e3b0c44298fc'
        """
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_of(digest)
        if path.exists() and path.stat().st_size == len(data):
            return digest  # written before: the name is the content
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{digest[:12]}-", suffix=".tmp", dir=self.root)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get(self, digest: str) -> bytes:
        """The value stored under ``digest``; :class:`StoreError` if it is missing or damaged.

        Example:
            >>> import tempfile
            >>> blobs = BlobFiles(Path(tempfile.mkdtemp()))
            >>> blobs.get(blobs.put(b"abc"))
            b'abc'
        """
        path = self.path_of(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise StoreError(
                f"blob {path} of the store is missing; the store's blobs/ directory must stay beside its db"
            ) from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise StoreError(f"blob {path} is damaged: its content no longer matches its name")
        return data
