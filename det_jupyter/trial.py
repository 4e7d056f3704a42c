"""Handles on a trial and a checkpoint: ``Trial`` and ``Checkpoint`` (``Checkpoint.load()`` → a model).

Like :class:`~det_jupyter.experiment.Experiment`, they hold only ids and a store: every property reads
the store, so they are always current, whoever runs the experiment.

Example:
    >>> trial = det_jupyter.get_experiment(1).best_trial()      # doctest: +SKIP
    >>> model = trial.checkpoints()[-1].load()                   # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from det_jupyter.checkpoints import CheckpointStorage
from det_jupyter.config import ExperimentConfig
from det_jupyter.engine.definition import thaw
from det_jupyter.errors import CheckpointError
from det_jupyter.states import TrialState
from det_jupyter.store import CheckpointRow, Store, TrialRow, default_home

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Checkpoint", "Trial", "metrics_frame"]


class Trial:
    """A live handle on one trial.

    Example:
        >>> t = exp.best_trial()                                     # doctest: +SKIP
        >>> t.hparams, t.state, t.metrics().tail()                   # doctest: +SKIP
    """

    def __init__(self, trial_id: int, store: Store) -> None:
        self.id = trial_id
        self._store = store

    def __repr__(self) -> str:
        r = self._row()
        return f"<Trial {self.id} {r.state.value} hparams={r.hparams} best={r.best_validation}>"

    def _row(self) -> TrialRow:
        return self._store.get_trial(self.id)

    @property
    def experiment_id(self) -> int:
        """The experiment this trial belongs to."""
        return self._row().experiment_id

    @property
    def hparams(self) -> dict[str, Any]:
        """This trial's hyperparameters."""
        return self._row().hparams

    @property
    def state(self) -> TrialState:
        """QUEUED, ACTIVE, PAUSED, COMPLETED, STOPPED, CANCELED or ERROR."""
        return self._row().state

    @property
    def restarts(self) -> int:
        """How many times the trial failed and was restarted."""
        return self._row().restarts

    @property
    def best_validation(self) -> float | None:
        """The best value of the searcher metric this trial reported."""
        return self._row().best_validation

    @property
    def error(self) -> str | None:
        """The traceback of the trial's last failure, if any."""
        return self._row().error

    def metrics(self, kind: str | None = None) -> pd.DataFrame:
        """This trial's reports as a DataFrame (see :meth:`Experiment.metrics`)."""
        return metrics_frame(self._store.metrics(trial_id=self.id, kind=kind))

    def checkpoints(self) -> list[Checkpoint]:
        """This trial's kept checkpoints, oldest first."""
        return [Checkpoint(r, self._store) for r in self._store.checkpoints(trial_id=self.id)]

    def logs(self, tail: int | None = None) -> list[str]:
        """The trial's output lines (prints, tracebacks), the last ``tail`` if given."""
        return [r.line for r in self._store.logs(self.id, tail=tail)]


class Checkpoint:
    """A committed checkpoint: download its files, or load it as a ready model.

    Example:
        >>> ckpt = exp.best_checkpoint()                             # doctest: +SKIP
        >>> model = ckpt.load()                                      # doctest: +SKIP
        >>> model(torch.tensor([[5.1, 3.5, 1.4, 0.2]]))              # doctest: +SKIP
    """

    def __init__(self, row: CheckpointRow, store: Store) -> None:
        self._row = row
        self._store = store
        self.uuid = row.uuid
        self.trial_id = row.trial_id
        self.experiment_id = row.experiment_id
        self.steps = row.steps
        self.metric = row.metric
        self.metadata = row.metadata
        self.resources = row.resources

    def __repr__(self) -> str:
        return f"<Checkpoint {self.uuid} trial={self.trial_id} steps={self.steps} metric={self.metric}>"

    def _storage(self) -> CheckpointStorage:
        cfg = ExperimentConfig.from_stored(self._store.get_experiment(self.experiment_id).config)
        url = cfg.checkpoint_storage.resolve_url(str(default_home() / "checkpoints"))
        return CheckpointStorage(url, cfg.checkpoint_storage.storage_options())

    def download(self, path: str | os.PathLike[str]) -> Path:
        """Copy the checkpoint's files into ``path``; returns it."""
        return self._storage().download(self.uuid, path)

    def load(self, **kwargs: Any) -> Any:
        """The trained model, ready to predict, built by the experiment's own (frozen) code.

        Resolution: the experiment's ``load=`` hook; else the trial class's ``load_checkpoint(path,
        hparams)``; else the checkpoint's ``format`` metadata (``torch-module``, ``keras-model``).
        Keyword arguments go to the loader (e.g. ``map_location="cuda"`` for torch).
        """
        blob, hook_blob = self._store.get_entrypoint(self.experiment_id)
        hparams = self._store.get_trial(self.trial_id).hparams
        fmt = self.metadata.get("format")
        with self._storage().restore_path(self.uuid) as path:
            if hook_blob is not None:
                return thaw(hook_blob)(path, **kwargs)
            entrypoint = thaw(blob)
            if callable(getattr(entrypoint, "resolve", None)):  # module:Attr of a model directory
                entrypoint = entrypoint.resolve()
            loader = getattr(entrypoint, "load_checkpoint", None) if isinstance(entrypoint, type) else None
            if callable(loader):
                return loader(path, hparams, **kwargs)
            if fmt == "torch-module":
                from det_jupyter.frameworks.torch import load_model as load_torch

                return load_torch(path, **kwargs)
            if fmt == "keras-model":
                from det_jupyter.frameworks.keras import load_model as load_keras

                return load_keras(path, **kwargs)
        raise CheckpointError(
            f"checkpoint {self.uuid} has no known format (metadata format={fmt!r}) and the experiment has no "
            "load hook: pass create_experiment(..., load=my_loader), save with det_jupyter.torch.save_model / "
            "det_jupyter.keras.save_model, or use checkpoint.download(path) and load the files yourself"
        )


def metrics_frame(rows: list[Any]) -> pd.DataFrame:
    import pandas as pd

    records = [
        {
            "trial_id": r.trial_id,
            "run_id": r.run_id,
            "kind": r.kind,
            "steps": r.steps,
            "reported_at": r.reported_at,
            **r.metrics,
        }
        for r in rows
    ]
    columns = ["trial_id", "run_id", "kind", "steps", "reported_at"]
    return pd.DataFrame.from_records(records, columns=None if records else columns)
