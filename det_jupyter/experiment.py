"""Public handles: create an experiment, and read it back as an ``Experiment`` (its trials and
checkpoints are the ``Trial`` / ``Checkpoint`` handles of :mod:`det_jupyter.trial`).

Handles hold only ids and a store: every property reads the store, so they are always current and
work from any process (a second kernel, a script, the CLI), whoever runs the experiment.

Example:
    >>> import det_jupyter
    >>> def train(ctx):
    ...     for step in range(1, 11):
    ...         ctx.report_validation_metrics(step, {"loss": ctx.hparams["x"] ** 2 / step})
    >>> exp = det_jupyter.create_experiment(
    ...     {"searcher": {"name": "random", "metric": "loss", "max_trials": 4, "max_time": 10,
    ...                   "time_metric": "batches"},
    ...      "hyperparameters": {"x": {"type": "double", "minval": -1, "maxval": 1}}},
    ...     train)                                             # doctest: +SKIP
    >>> exp.wait().value, exp.best_trial().hparams            # doctest: +SKIP
    ('COMPLETED', {'x': 0.07})
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeAlias

from det_jupyter.checkpoints import storage_access_problem
from det_jupyter.config import ExperimentConfig, load_config
from det_jupyter.engine.cluster import cluster_target
from det_jupyter.engine.definition import entrypoint_name, freeze, resolve_entrypoint
from det_jupyter.engine.presubmit import check_config_fits
from det_jupyter.engine.submit import (
    MasterMode,
    master_mode,
    resume_in_master,
    resume_inprocess,
    submit_inprocess,
    submit_to_master,
)
from det_jupyter.errors import CheckpointError, ConfigError, FieldError
from det_jupyter.searcher.ranking import best_of
from det_jupyter.states import ControlAction, ExperimentState
from det_jupyter.store import Store
from det_jupyter.trial import Checkpoint, Trial, metrics_frame
from det_jupyter.worker.context import TrialContext

if TYPE_CHECKING:
    import pandas as pd
    from distributed import Client

    from det_jupyter.engine.controller import Controller

__all__ = [
    "Entrypoint",
    "Experiment",
    "create_experiment",
    "get_experiment",
    "list_experiments",
    "open_store",
]


_REVIVE_EVERY = 5.0  # seconds between two looks for a dead master while waiting

Entrypoint: TypeAlias = Callable[[TrialContext], object] | type
"""What trials run: a Core-API function ``train(ctx)``, or a trial class (``TorchTrial``/``KerasTrial``
subclass, or any class with ``run_trial(ctx)``)."""


def open_store(store: Store | str | os.PathLike[str] | None = None) -> Store:
    """A :class:`Store`: the one given, one at a path, or the default under ``$DET_JUPYTER_HOME``."""
    return store if isinstance(store, Store) else Store(store)


def create_experiment(
    config: ExperimentConfig | Mapping[str, object] | str | os.PathLike[str],
    entrypoint: Entrypoint | str | None = None,
    *,
    cluster: Client | str | object | None = None,
    load: Callable[..., object] | None = None,
    store: Store | str | os.PathLike[str] | None = None,
    namespace: Mapping[str, object] | None = None,
    master: MasterMode | None = None,
    context: str | os.PathLike[str] | None = None,
    activate: bool = True,
) -> Experiment:
    """Submit an experiment and return at once; a controller runs it on the Dask cluster.

    In ``"process"`` mode (see :func:`master_mode`) the experiment row is written and the home's
    ``det-jupyter master`` (started on demand) runs it, so it outlives this kernel; in ``"inprocess"``
    mode a controller thread of this process runs it.

    Args:
        config: the experiment config: an :class:`ExperimentConfig`, a dict, YAML text, or a path to a
            YAML file. It is validated here, once; the controller gets the validated config.
        entrypoint: a function ``train(ctx)`` or a trial class (``TorchTrial``/``KerasTrial`` subclass),
            or its name; default: the config's ``entrypoint`` name looked up in ``namespace`` (the notebook).
        cluster: ``None`` for the embedded local cluster, a scheduler address, a ``Client`` (which
            makes the submission in-process: the master cannot use this process's client), or a cluster
            object of dask-jobqueue / dask-kubernetes / dask-gateway (``engine.cluster.cluster_target``).
        load: optional hook ``load(path, **kwargs) -> model`` used by :meth:`Checkpoint.load` for Core-API code.
        store: the store (default: ``$DET_JUPYTER_HOME/det_jupyter.db``).
        namespace: where to look up a named entrypoint (default: ``__main__``).
        master: ``"process"`` or ``"inprocess"`` (default: ``$DET_JUPYTER_MASTER``, else the master).
        context: a model directory (or ``.zip``), as Determined's ``det e create CONFIG DIR``: shipped to
            workers once per experiment and stored with it (``.detignore`` applied, 96 MiB at most).
            The config's ``entrypoint`` is then a command run in a copy of it per trial
            (``python3 train.py --lr {hparams.lr}``; Determined's Core API inside works with
            ``import det_jupyter as det``) or ``module:Attr`` imported from it (a trial class, a
            ``train(ctx)`` function). A command entrypoint without ``context`` runs in an empty directory.
        activate: ``False`` creates the experiment PAUSED (``exp.activate()`` starts it).

    Raises:
        ConfigError: the config is invalid (every problem, with its path and fix).
        ClusterError: no worker offers ``resources.slots_per_trial`` slots ("the largest worker offers
            N"); raised before anything is written to the store.

    Example:
        >>> exp = create_experiment("experiment.yaml", train)       # doctest: +SKIP
        >>> exp.wait()                                               # doctest: +SKIP
        <ExperimentState.COMPLETED: 'COMPLETED'>
    """
    cfg = load_config(config)
    target = _entrypoint(cfg, entrypoint, context, namespace)
    check_config_fits(target, cfg)  # what only the entrypoint reveals (a TorchTrial needs a length)
    blob = freeze(target)
    hook = freeze(load) if load is not None else None
    seed = cfg.reproducibility.experiment_seed
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    storage = cfg.checkpoint_storage
    storage_problem = storage.local_path_problem() or storage_access_problem(storage)
    if storage_problem is not None:
        raise ConfigError(storage_problem)  # before any row is written (remote storage: one probe write)
    cluster = cluster_target(cluster)  # a cluster object: its tcp:// address, else its client
    if master_mode(master, cluster, store) == "process":
        address = cluster if isinstance(cluster, str) else None
        st = open_store(store)
        exp_id = submit_to_master(
            cfg, entrypoint_name(target), blob, hook, seed, address, st, paused=not activate
        )
        return Experiment(exp_id, st)
    st = open_store(store)
    exp_id, controller = submit_inprocess(
        cfg, entrypoint_name(target), blob, hook, seed, cluster, st, paused=not activate
    )
    return Experiment(exp_id, st, controller=controller)


def _entrypoint(
    cfg: ExperimentConfig,
    entrypoint: Entrypoint | str | None,
    context: str | os.PathLike[str] | None,
    namespace: Mapping[str, object] | None,
) -> object:
    """The object to freeze: a notebook function or class, or a command / ``module:Attr`` of a model dir."""
    from det_jupyter.config.entrypoints import entrypoint_kind

    if entrypoint is not None and not isinstance(entrypoint, str):
        if context is not None:
            raise TypeError("pass either an entrypoint object or context= (a model directory), not both")
        return resolve_entrypoint(entrypoint, cfg.entrypoint, namespace)
    named = entrypoint if entrypoint is not None else cfg.entrypoint
    kind = entrypoint_kind(named) if named else None
    if kind == "command" or (kind == "module" and context is not None):
        from det_jupyter.engine.packaging import directory_entrypoint, package_model_dir

        assert named is not None
        return directory_entrypoint(named, package_model_dir(context) if context is not None else None)
    if context is not None:
        shown = named or "(none)"
        raise ConfigError(
            FieldError(
                "entrypoint",
                f"{shown!r} names no command and no module of the model directory given with context=",
                "set `entrypoint: python3 train.py` (a command run in the directory) or "
                "`entrypoint: model_def:MyTrial` (a module of the directory and the attribute in it)",
            )
        )
    return resolve_entrypoint(entrypoint, cfg.entrypoint, namespace)


def get_experiment(experiment_id: int, *, store: Store | str | os.PathLike[str] | None = None) -> Experiment:
    """A handle on an existing experiment (raises :class:`~det_jupyter.errors.NotFoundError`).

    Example:
        >>> exp = get_experiment(3)                                  # doctest: +SKIP
        >>> model = exp.best_checkpoint().load()                     # doctest: +SKIP
    """
    st = open_store(store)
    st.get_experiment(experiment_id)
    return Experiment(experiment_id, st)


def list_experiments(*, store: Store | str | os.PathLike[str] | None = None) -> list[Experiment]:
    """All experiments in the store, newest first.

    Example:
        >>> [e.name for e in list_experiments()]                     # doctest: +SKIP
        ['iris-asha', 'mnist-grid']
    """
    st = open_store(store)
    return [Experiment(row.id, st) for row in st.list_experiments()]


class Experiment:
    """A live handle on an experiment in the store.

    Example:
        >>> exp = get_experiment(1)                                  # doctest: +SKIP
        >>> exp.state, len(exp.trials()), exp.best_trial().hparams   # doctest: +SKIP
    """

    def __init__(self, experiment_id: int, store: Store, *, controller: Controller | None = None) -> None:
        self.id = experiment_id
        self._store = store
        self._controller = controller

    def __repr__(self) -> str:
        row = self._store.get_experiment(self.id)
        return f"<Experiment {self.id} {row.name!r} {row.state.value} progress={row.progress:.0%}>"

    def _ipython_display_(self) -> None:
        """In a notebook, show the live :class:`~det_jupyter.notebook.widget.widget.ExperimentWidget`; elsewhere the repr."""
        from det_jupyter.notebook.widget.widget import display_experiment

        display_experiment(self)

    @property
    def store(self) -> Store:
        """The store this handle reads."""
        return self._store

    @property
    def name(self) -> str:
        """The config's ``name``."""
        return self._store.get_experiment(self.id).name

    @property
    def state(self) -> ExperimentState:
        """The current state (ACTIVE, PAUSED, STOPPING_CANCELED, COMPLETED, CANCELED, ERROR)."""
        return self._store.get_experiment(self.id).state

    @property
    def progress(self) -> float:
        """The searcher's progress in ``[0, 1]``."""
        return self._store.get_experiment(self.id).progress

    @property
    def error(self) -> str | None:
        """Why the experiment is ERROR, if it is."""
        return self._store.get_experiment(self.id).error

    @property
    def config(self) -> ExperimentConfig:
        """The validated experiment config (as stored at submission).

        Example:
            >>> exp.config.searcher.metric                           # doctest: +SKIP
            'val_loss'
        """
        return ExperimentConfig.from_stored(self._store.get_experiment(self.id).config)

    @property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard of the cluster running it."""
        return self._store.get_experiment(self.id).dashboard_link

    def wait(self, timeout: float | None = None, *, interval: float = 0.1) -> ExperimentState:
        """Block until the experiment is COMPLETED, CANCELED or ERROR; returns that state.

        Raises ``TimeoutError`` (the experiment keeps running) after ``timeout`` seconds. Waiting on an
        experiment of the home's store that no controller runs (its master died) starts the next
        master, which resumes it (checked every few seconds).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        next_revive = time.monotonic() + _REVIVE_EVERY
        while True:
            state = self.state
            if state.is_terminal:
                return state
            if self._controller is not None and self._controller.finished:
                return self.state
            if self._controller is None and time.monotonic() >= next_revive:
                next_revive = time.monotonic() + _REVIVE_EVERY
                self._revive_master()
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"experiment {self.id} is still {state.value} after {timeout}s; it keeps running "
                    f"(exp.pause() or exp.kill() to stop it)"
                )
            if self._controller is not None:
                self._controller.join(interval)
            else:
                time.sleep(interval)

    def _revive_master(self) -> None:
        from det_jupyter.master import revive_if_orphaned, serves_store

        if serves_store(self._store.path):
            revive_if_orphaned()

    def trials(self) -> list[Trial]:
        """The experiment's trials in creation order."""
        return [Trial(row.id, self._store) for row in self._store.list_trials(self.id)]

    def best_trial(self) -> Trial | None:
        """The trial with the best validation metric so far, or ``None`` before any validation.

        "Best" is :mod:`det_jupyter.searcher.ranking`'s: finite values only, ties to the older trial.
        """
        best = best_of(
            self._store.list_trials(self.id),
            lambda r: r.best_validation,
            smaller_is_better=self._smaller_is_better(),
            tiebreak=lambda r: r.id,
        )
        return None if best is None else Trial(best.id, self._store)

    def best_checkpoint(self) -> Checkpoint:
        """The checkpoint with the best validation metric (else the best trial's newest one).

        Raises :class:`~det_jupyter.errors.CheckpointError` when no checkpoint exists.
        """
        rows = self._store.checkpoints(experiment_id=self.id)
        best = best_of(
            rows, lambda r: r.metric, smaller_is_better=self._smaller_is_better(), tiebreak=lambda r: -r.steps
        )  # ties: the newest checkpoint
        if best is not None:
            return Checkpoint(best, self._store)
        trial = self.best_trial()
        candidates = [r for r in rows if trial is None or r.trial_id == trial.id] or rows
        if not candidates:
            raise CheckpointError(
                f"experiment {self.id} has no checkpoints yet: trials save them with "
                "`with ctx.checkpoint.save(steps) as path:` (TorchTrial/KerasTrial do it for you)"
            )
        return Checkpoint(candidates[-1], self._store)

    def checkpoints(self) -> list[Checkpoint]:
        """All kept checkpoints of the experiment, oldest first."""
        return [Checkpoint(r, self._store) for r in self._store.checkpoints(experiment_id=self.id)]

    def metrics(self, kind: str | None = None) -> pd.DataFrame:
        """Every report as a DataFrame: ``trial_id, run_id, kind, steps, reported_at`` + one column per metric.

        Args:
            kind: ``"training"`` or ``"validation"`` to keep one kind.
        """
        return metrics_frame(self._store.metrics(experiment_id=self.id, kind=kind))

    def pause(self) -> None:
        """Ask the controller to checkpoint and stop all trials; :meth:`activate` resumes them."""
        self._store.add_request(self.id, ControlAction.PAUSE)

    def activate(self) -> None:
        """Resume a paused experiment (trials continue from their latest checkpoints)."""
        self._store.add_request(self.id, ControlAction.ACTIVATE)

    def kill(self) -> None:
        """Stop the experiment for good: running trials checkpoint and end CANCELED."""
        self._store.add_request(self.id, ControlAction.KILL)

    def resume(
        self, *, cluster: Client | str | object | None = None, master: MasterMode | None = None
    ) -> Experiment:
        """Run this experiment again after its controller died (a kernel restart, a killed master).

        In ``"process"`` mode (:func:`master_mode`) this makes sure the home's master runs: it reclaims
        every orphan experiment. In-process, a controller thread of this process takes it over. The
        searcher continues exactly where it stopped; interrupted trials restart from their latest
        checkpoints without counting a restart.

        Raises:
            RuntimeError: the experiment is terminal (nothing to resume), or (in-process) a live
                controller still owns it.

        Example:
            >>> get_experiment(3).resume()                               # doctest: +SKIP
        """
        row = self._store.get_experiment(self.id)
        if row.state.is_terminal:
            raise RuntimeError(
                f"experiment {self.id} is {row.state.value}: it has ended and there is nothing to resume; "
                "submit it again (e.g. with a higher max_restarts) to run it once more"
            )
        cluster = cluster_target(cluster)
        if master_mode(master, cluster, self._store) == "process":
            resume_in_master(self._store, self.id, cluster if isinstance(cluster, str) else None)
        else:
            self._controller = resume_inprocess(self._store, self.id, cluster)
        return self

    def _smaller_is_better(self) -> bool:
        return self.config.searcher.smaller_is_better
