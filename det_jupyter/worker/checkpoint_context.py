"""``ctx.checkpoint``: save and restore a trial's checkpoints (Determined's ``core.CheckpointContext``).

A save stages files in a local directory and commits them atomically to the
:class:`~det_jupyter.checkpoints.CheckpointStorage`; only then does the trial send its
:class:`~det_jupyter.worker.events.CheckpointSaved` event (after flushing buffered metrics, so the
controller sees the metrics a checkpoint was taken after first).

Example:
    >>> from det_jupyter.worker.context import local_context
    >>> ctx = local_context(hparams={})
    >>> with ctx.checkpoint.save(steps=5) as path:
    ...     _ = (path / "state.txt").write_text("5")
    >>> with ctx.checkpoint.restore() as path:
    ...     (path / "state.txt").read_text()
    '5'
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid as uuidlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from det_jupyter.checkpoints import CheckpointStorage
from det_jupyter.worker.events import CheckpointSaved
from det_jupyter.worker.metric_values import jsonable

if TYPE_CHECKING:
    from det_jupyter.worker.context import TrialContext

__all__ = ["TRAINING_KEY", "VALIDATION_KEY", "CheckpointContext"]

VALIDATION_KEY = "det_jupyter_validation"
"""Key of a checkpoint's metadata.json holding the validation metrics reported at its steps."""
TRAINING_KEY = "det_jupyter_training"
"""Key of a checkpoint's metadata.json holding ``[steps, metrics, reported_at]`` of the training reports
since the run's previous checkpoint (the newest :data:`~det_jupyter.worker.context.RECENT_TRAINING`)."""


class CheckpointContext:
    """Save and restore this trial's checkpoints (``ctx.checkpoint``).

    Args:
        trial: the context it belongs to (for ids, hparams and sending the event).
        storage: where checkpoints are committed.
        latest: UUID of the trial's newest committed checkpoint, or ``None`` on a fresh start.
        steps: steps at which ``latest`` was saved.

    Example:
        >>> from det_jupyter.worker.context import local_context
        >>> local_context(hparams={}).checkpoint.latest is None
        True
    """

    def __init__(self, trial: TrialContext, storage: CheckpointStorage, latest: str | None, steps: int):
        self._trial = trial
        self._storage = storage
        self.latest: str | None = latest
        """UUID of this trial's newest committed checkpoint, or ``None``."""
        self.latest_steps: int = steps
        """Steps at which ``latest`` was saved (0 on a fresh start)."""

    @contextlib.contextmanager
    def save(self, steps: int, metadata: Mapping[str, Any] | None = None) -> Iterator[Path]:
        """Write a checkpoint: yields an empty local directory; on exit it is committed atomically.

        Args:
            steps: training progress at this checkpoint (same unit as your metric reports).
            metadata: small JSON-safe facts to keep with it (framework, format, epoch...).

        If the block raises, nothing is committed and the exception propagates.
        """
        with self._save(steps, metadata) as (path, _):
            yield path

    # --- Determined's Core API names -------------------------------------------------------------

    @contextlib.contextmanager
    def store_path(self, metadata: Mapping[str, Any], *, shard: bool = False) -> Iterator[tuple[Path, str]]:
        """Determined's ``store_path``: yields ``(path, storage_id)``; the files written there are
        committed when the block exits. ``metadata["steps_completed"]`` is the checkpoint's steps.

        Example:
            >>> from det_jupyter.worker.context import local_context
            >>> ckpt = local_context({}).checkpoint
            >>> with ckpt.store_path({"steps_completed": 7}) as (path, storage_id):
            ...     _ = (path / "w.txt").write_text("7")
            >>> ckpt.get_metadata(storage_id)["steps_completed"], ckpt.latest == storage_id
            (7, True)
        """
        with self._save(_steps_of(metadata, "store_path"), metadata) as (path, uuid):
            yield path, uuid

    def upload(
        self, ckpt_dir: str | os.PathLike[str], metadata: Mapping[str, Any], *, shard: bool = False
    ) -> str:
        """Determined's ``upload``: commit a copy of the files in ``ckpt_dir``; returns the storage id.

        Example:
            >>> import tempfile
            >>> from det_jupyter.worker.context import local_context
            >>> ckpt, src, dst = local_context({}).checkpoint, Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp())
            >>> _ = (src / "model.bin").write_bytes(b"x")
            >>> storage_id = ckpt.upload(src, {"steps_completed": 3})
            >>> ckpt.download(storage_id, dst); sorted(p.name for p in dst.iterdir())
            ['metadata.json', 'model.bin']
        """
        source = Path(ckpt_dir)
        if not source.is_dir():
            raise FileNotFoundError(f"checkpoint.upload({str(ckpt_dir)!r}): not a directory")
        with self._save(_steps_of(metadata, "upload"), metadata) as (path, uuid):
            shutil.copytree(source, path, dirs_exist_ok=True)
        return uuid

    def download(self, storage_id: str, ckpt_dir: str | os.PathLike[str], **_: Any) -> None:
        """Determined's ``download``: copy a checkpoint's files into ``ckpt_dir``."""
        self._storage.download(storage_id, ckpt_dir)

    @contextlib.contextmanager
    def restore_path(self, storage_id: str | None = None, **_: Any) -> Iterator[Path]:
        """Determined's ``restore_path``: yields a local directory holding a checkpoint's files
        (default: this trial's newest, e.g. ``det.get_cluster_info().latest_checkpoint``)."""
        uuid = storage_id or self.latest
        if uuid is None:
            raise FileNotFoundError("checkpoint.restore_path(): this trial has no checkpoint yet")
        with self._storage.restore_path(uuid) as path:
            yield path

    def get_metadata(self, storage_id: str) -> dict[str, Any]:
        """The metadata a checkpoint was saved with (``steps_completed`` included)."""
        meta = dict(self._storage.metadata(storage_id))
        meta.setdefault("steps_completed", meta.get("steps"))
        return meta

    def delete(self, storage_id: str) -> None:
        """Delete a checkpoint's files (the experiment's garbage collection also does this)."""
        self._storage.delete(storage_id)

    @contextlib.contextmanager
    def _save(self, steps: int, metadata: Mapping[str, Any] | None) -> Iterator[tuple[Path, str]]:
        if steps < 0:
            raise ValueError(f"ctx.checkpoint.save(steps={steps}): steps must be non-negative")
        uuid = str(uuidlib.uuid4())
        user_metadata = jsonable(dict(metadata or {}))  # numpy / tensor values as in the event below
        trial = self._trial
        with self._storage.stage(uuid) as path:
            yield path, uuid
            meta = {
                **user_metadata,
                "steps": int(steps),
                "experiment_id": trial.experiment_id,
                "trial_id": trial.trial_id,
                "run_id": trial.run_id,
                "hparams": trial.hparams,
            }
            trial._flush()  # the reports up to here are sent, and remembered for the lines below
            training = trial._training_since(self.latest_steps, int(steps))
            if training:
                # like the validation: reports whose event may still be in flight when the worker or
                # the master dies; the rerun resumes past them and would never report them again
                meta[TRAINING_KEY] = training
            validation = trial._recent_validations.get(int(steps))
            if validation is not None:
                # the validation at these steps travels with the checkpoint: if the worker dies before
                # its events are out, the controller still registers both from storage
                meta[VALIDATION_KEY] = validation
            resources = self._storage.commit(uuid, path, meta)
        self._storage.write_latest(
            trial.experiment_id, trial.trial_id, uuid, int(steps), experiment_key=trial.experiment_key
        )
        self.latest, self.latest_steps = uuid, int(steps)
        trial._flush()
        trial._emit(CheckpointSaved(uuid, int(steps), user_metadata, resources))

    @contextlib.contextmanager
    def restore(self) -> Iterator[Path | None]:
        """Yields the local directory of this trial's newest checkpoint, or ``None`` on a fresh start."""
        if self.latest is None:
            yield None
            return
        with self._storage.restore_path(self.latest) as path:
            yield path


def _steps_of(metadata: Mapping[str, Any], where: str) -> int:
    """``metadata["steps_completed"]`` (Determined's required key), checked."""
    steps = metadata.get("steps_completed", metadata.get("steps"))
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(
            f"checkpoint.{where}(metadata): metadata needs 'steps_completed', the batches trained so far "
            f"(a non-negative int; got {steps!r})"
        )
    return steps
