"""Public handles: create an experiment, and read it back as ``Experiment`` / ``Trial`` / ``Checkpoint``.

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

import atexit
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from det_jupyter.checkpoints import CheckpointStorage
from det_jupyter.config import ExperimentConfig, load_config
from det_jupyter.engine.definition import entrypoint_name, freeze, resolve_entrypoint, thaw
from det_jupyter.errors import CheckpointError, ConfigError
from det_jupyter.searcher.ranking import best_of
from det_jupyter.states import ControlAction, ExperimentState, TrialState
from det_jupyter.store import CheckpointRow, Store, TrialRow, default_home
from det_jupyter.worker.context import TrialContext

if TYPE_CHECKING:
    import pandas as pd
    from distributed import Client

    from det_jupyter.engine.controller import Controller

__all__ = [
    "Checkpoint",
    "Entrypoint",
    "Experiment",
    "MasterMode",
    "Trial",
    "create_experiment",
    "get_experiment",
    "list_experiments",
    "open_store",
]


Entrypoint: TypeAlias = Callable[[TrialContext], object] | type
"""What trials run: a Core-API function ``train(ctx)``, or a trial class (``TorchTrial``/``KerasTrial``
subclass, or any class with ``run_trial(ctx)``)."""


MasterMode: TypeAlias = Literal["process", "inprocess"]
"""Where controllers run: ``"process"``, the home's long-lived ``det-jupyter master`` (experiments outlive
the kernel), or ``"inprocess"``, a thread of this process (for debugging, and whenever ``cluster=`` is a
``distributed.Client``, which only this process can use)."""

MASTER_ENV = "DET_JUPYTER_MASTER"
DEFAULT_MASTER_MODE: MasterMode = "process"
"""The mode when neither ``master=`` nor ``$DET_JUPYTER_MASTER`` says."""


def master_mode(
    master: MasterMode | None = None,
    cluster: Client | str | None = None,
    store: Store | str | os.PathLike[str] | None = None,
) -> MasterMode:
    """Which mode a submission uses: a ``Client`` or a store outside ``$DET_JUPYTER_HOME`` → in-process;
    else ``master=``, else ``$DET_JUPYTER_MASTER``, else :data:`DEFAULT_MASTER_MODE`.

    Example:
        >>> master_mode("process"), master_mode("inprocess")
        ('process', 'inprocess')
    """
    from distributed import Client as DaskClient

    if isinstance(cluster, DaskClient):
        return "inprocess"
    if store is not None:
        path = store.path if isinstance(store, Store) else Path(store)
        if path.resolve() != (default_home() / "det_jupyter.db").resolve():
            return "inprocess"  # the home's master serves the home's store only
    chosen = master or os.environ.get(MASTER_ENV) or DEFAULT_MASTER_MODE
    if chosen not in ("process", "inprocess"):
        raise ValueError(f"master={chosen!r}: use 'process' (the det-jupyter master) or 'inprocess'")
    return "process" if chosen == "process" else "inprocess"


_inprocess: weakref.WeakSet[Controller] = weakref.WeakSet()
_atexit_lock = threading.Lock()
_atexit_registered = False


def _stop_inprocess_controllers() -> None:
    """At interpreter exit (a kernel shutting down), before Dask closes the cluster: stop controllers,
    so runs killed by the shutdown are recorded as interrupted, not failed (no restart spent)."""
    for controller in list(_inprocess):
        controller.stop(timeout=5.0)


def _track(controller: Controller) -> None:
    global _atexit_registered
    with _atexit_lock:
        _inprocess.add(controller)
        if not _atexit_registered:  # registered after distributed's own hooks, so it runs before them
            atexit.register(_stop_inprocess_controllers)
            _atexit_registered = True


def open_store(store: Store | str | os.PathLike[str] | None = None) -> Store:
    """A :class:`Store`: the one given, one at a path, or the default under ``$DET_JUPYTER_HOME``."""
    return store if isinstance(store, Store) else Store(store)


def create_experiment(
    config: ExperimentConfig | Mapping[str, object] | str | os.PathLike[str],
    entrypoint: Entrypoint | str | None = None,
    *,
    cluster: Client | str | None = None,
    load: Callable[..., object] | None = None,
    store: Store | str | os.PathLike[str] | None = None,
    namespace: Mapping[str, object] | None = None,
    master: MasterMode | None = None,
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
        cluster: ``None`` for the embedded local cluster, a scheduler address, or a ``Client`` (which
            makes the submission in-process: the master cannot use this process's client).
        load: optional hook ``load(path, **kwargs) -> model`` used by :meth:`Checkpoint.load` for Core-API code.
        store: the store (default: ``$DET_JUPYTER_HOME/det_jupyter.db``).
        namespace: where to look up a named entrypoint (default: ``__main__``).
        master: ``"process"`` or ``"inprocess"`` (default: ``$DET_JUPYTER_MASTER``, else the master).

    Raises:
        ConfigError: the config is invalid (every problem, with its path and fix).
        ClusterError: no worker offers ``resources.slots_per_trial`` slots ("the largest worker offers
            N"); raised before anything is written to the store.

    Example:
        >>> exp = create_experiment("experiment.yaml", train)       # doctest: +SKIP
        >>> exp.wait()                                               # doctest: +SKIP
        <ExperimentState.COMPLETED: 'COMPLETED'>
    """
    from det_jupyter.engine.cluster import cluster as get_client
    from det_jupyter.engine.controller import Controller
    from det_jupyter.engine.launcher import DaskLauncher

    cfg = load_config(config)
    target = resolve_entrypoint(entrypoint, cfg.entrypoint, namespace)
    blob = freeze(target)
    hook = freeze(load) if load is not None else None
    seed = cfg.reproducibility.experiment_seed
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    if (storage_problem := cfg.checkpoint_storage.local_path_problem()) is not None:
        raise ConfigError(storage_problem)  # before any row is written
    if master_mode(master, cluster, store) == "process":
        address = cluster if isinstance(cluster, str) else None
        return _submit_to_master(cfg, target, blob, hook, seed, address, open_store(store))
    st = open_store(store)
    # The one slot check (the config already checked slots_per_trial >= 1 and slot_type): the
    # launcher works out the slot resource when it is built, so "the largest worker offers N" is
    # raised before any row is written, and the controller reuses that launcher.
    launcher = DaskLauncher(get_client(cluster), cfg.resources.slots_per_trial, cfg.resources.slot_type)
    if cluster is None and not os.environ.get("DET_JUPYTER_CLUSTER"):
        # the kernel's embedded cluster dies with it: record no address, so a master can take over
        launcher.address = lambda: None  # type: ignore[method-assign]
    with st.transaction():  # the row is born owned, so a running master never picks it up
        exp_id = st.create_experiment(
            name=cfg.name,
            description=cfg.description,
            config=cfg.to_dict(),
            entrypoint=blob,
            entrypoint_name=entrypoint_name(target),
            load_hook=hook,
            seed=seed,
        )
        controller = Controller(st, exp_id, launcher, config=cfg)  # validated once, above
        st.update_experiment(exp_id, owner=controller.owner, heartbeat=time.time())
    controller.start()
    _track(controller)
    return Experiment(exp_id, st, controller=controller)


def _submit_to_master(
    cfg: ExperimentConfig,
    target: Any,
    blob: bytes,
    hook: bytes | None,
    seed: int,
    cluster: str | None,
    st: Store,
) -> Experiment:
    """Master mode: check slots against the master's published summary, write the row, poke, return."""
    from det_jupyter.engine.cluster import slot_resource_of
    from det_jupyter.master import ensure_master, poke

    address = cluster or os.environ.get("DET_JUPYTER_CLUSTER") or None
    info = ensure_master()
    if address is None:  # an external cluster's slots are checked by the master (ERROR with the fix)
        resources = [dict(w.get("resources") or {}) for w in info.workers]
        slot_resource_of(resources, cfg.resources.slots_per_trial, cfg.resources.slot_type)
    with st.transaction():
        exp_id = st.create_experiment(
            name=cfg.name,
            description=cfg.description,
            config=cfg.to_dict(),
            entrypoint=blob,
            entrypoint_name=entrypoint_name(target),
            load_hook=hook,
            seed=seed,
        )
        st.update_experiment(exp_id, cluster_address=address, dashboard_link=info.dashboard_link)
    poke()
    return Experiment(exp_id, st)


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

        Raises ``TimeoutError`` (the experiment keeps running) after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self.state
            if state.is_terminal:
                return state
            if self._controller is not None and self._controller.finished:
                return self.state
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"experiment {self.id} is still {state.value} after {timeout}s; it keeps running "
                    f"(exp.pause() or exp.kill() to stop it)"
                )
            if self._controller is not None:
                self._controller.join(interval)
            else:
                time.sleep(interval)

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
        return _metrics_frame(self._store.metrics(experiment_id=self.id, kind=kind))

    def pause(self) -> None:
        """Ask the controller to checkpoint and stop all trials; :meth:`activate` resumes them."""
        self._store.add_request(self.id, ControlAction.PAUSE)

    def activate(self) -> None:
        """Resume a paused experiment (trials continue from their latest checkpoints)."""
        self._store.add_request(self.id, ControlAction.ACTIVATE)

    def kill(self) -> None:
        """Stop the experiment for good: running trials checkpoint and end CANCELED."""
        self._store.add_request(self.id, ControlAction.KILL)

    def resume(self, *, cluster: Client | str | None = None, master: MasterMode | None = None) -> Experiment:
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
        from det_jupyter.engine.cluster import cluster as get_client
        from det_jupyter.engine.controller import Controller

        row = self._store.get_experiment(self.id)
        if row.state.is_terminal:
            raise RuntimeError(
                f"experiment {self.id} is {row.state.value}: it has ended and there is nothing to resume; "
                "submit it again (e.g. with a higher max_restarts) to run it once more"
            )
        if master_mode(master, cluster, self._store) == "process":
            from det_jupyter.master import ensure_master, poke

            if isinstance(cluster, str):
                self._store.update_experiment(self.id, cluster_address=cluster)
            ensure_master()
            poke()
            return self
        controller = Controller(self._store, self.id, get_client(cluster))
        controller.start()
        _track(controller)
        self._controller = controller
        return self

    def _smaller_is_better(self) -> bool:
        return self.config.searcher.smaller_is_better


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
        return _metrics_frame(self._store.metrics(trial_id=self.id, kind=kind))

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


def _metrics_frame(rows: list[Any]) -> pd.DataFrame:
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
