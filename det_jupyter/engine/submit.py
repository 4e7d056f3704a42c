"""Where an experiment's controller runs, and submitting or resuming it there.

Two modes (:data:`MasterMode`): ``"process"``, the home's long-lived ``det-jupyter master`` (the
default: experiments outlive the kernel), or ``"inprocess"``, a controller thread of this process (for
debugging, and whenever ``cluster=`` is a ``distributed.Client`` object, which only this process can
use). :func:`master_mode` decides; ``create_experiment`` and ``Experiment.resume`` call the rest.

Example:
    >>> master_mode("inprocess")
    'inprocess'
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias

from det_jupyter.config import ExperimentConfig
from det_jupyter.states import ExperimentState
from det_jupyter.store import Store, default_home

if TYPE_CHECKING:
    from distributed import Client

    from det_jupyter.engine.controller import Controller

__all__ = [
    "DEFAULT_MASTER_MODE",
    "MASTER_ENV",
    "MasterMode",
    "master_mode",
    "resume_in_master",
    "resume_inprocess",
    "submit_inprocess",
    "submit_to_master",
    "track",
]


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


def track(controller: Controller) -> None:
    """Stop ``controller`` at interpreter exit (before Dask closes the cluster), unless it ended."""
    global _atexit_registered
    with _atexit_lock:
        _inprocess.add(controller)
        if not _atexit_registered:  # registered after distributed's own hooks, so it runs before them
            atexit.register(_stop_inprocess_controllers)
            _atexit_registered = True


def submit_inprocess(
    cfg: ExperimentConfig,
    entrypoint_name: str,
    blob: bytes,
    hook: bytes | None,
    seed: int,
    cluster: Client | str | None,
    st: Store,
    *,
    paused: bool = False,
) -> tuple[int, Controller]:
    """In-process mode: write the row already owned by a controller thread of this process; start it.

    The one slot check (the config already checked ``slots_per_trial >= 1`` and ``slot_type``): the
    launcher works out the slot resource when it is built, so "the largest worker offers N" is raised
    before any row is written, and the controller reuses that launcher.

    Example:
        >>> exp_id, controller = submit_inprocess(cfg, "train", blob, None, 42, client, store)  # doctest: +SKIP
    """
    from det_jupyter.engine.cluster import cluster as get_client
    from det_jupyter.engine.controller import Controller
    from det_jupyter.engine.launcher import DaskLauncher
    from det_jupyter.engine.worker_env import prepare_workers

    # the kernel's embedded cluster dies with it: record no address, so a master can take over
    embedded = cluster is None and not os.environ.get("DET_JUPYTER_CLUSTER")
    client = get_client(cluster)
    launcher = DaskLauncher(
        client,
        cfg.resources.slots_per_trial,
        cfg.resources.slot_type,
        record_address=not embedded,
    )
    prepare_workers(client, cfg, blob)  # environment.pip installed, versions checked: before any row
    with st.transaction():  # the row is born owned, so a running master never picks it up
        exp_id = _write_row(st, cfg, entrypoint_name, blob, hook, seed, paused=paused)
        controller = Controller(st, exp_id, launcher, config=cfg)  # validated once, by the caller
        st.update_experiment(exp_id, owner=controller.owner, heartbeat=time.time())
    controller.start()
    track(controller)
    return exp_id, controller


def resume_inprocess(st: Store, experiment_id: int, cluster: Client | str | None) -> Controller:
    """Take over an orphan experiment with a controller thread of this process (raises if owned).

    Example:
        >>> controller = resume_inprocess(store, 3, None)             # doctest: +SKIP
    """
    from det_jupyter.engine.cluster import cluster as get_client
    from det_jupyter.engine.controller import Controller

    controller = Controller(st, experiment_id, get_client(cluster))
    controller.start()
    track(controller)
    return controller


def resume_in_master(st: Store, experiment_id: int, address: str | None) -> None:
    """Make sure the home's master runs and looks at the store: it reclaims every orphan experiment.

    Example:
        >>> resume_in_master(store, 3, None)                          # doctest: +SKIP
    """
    from det_jupyter.master import ensure_master, poke

    if address is not None:
        st.update_experiment(experiment_id, cluster_address=address)
    ensure_master()
    poke()


def submit_to_master(
    cfg: ExperimentConfig,
    entrypoint_name: str,
    blob: bytes,
    hook: bytes | None,
    seed: int,
    cluster: str | None,
    st: Store,
    *,
    paused: bool = False,
) -> int:
    """Master mode: check slots against the master's published summary, write the row, poke; its id.

    Example:
        >>> exp_id = submit_to_master(cfg, "train", blob, None, 42, None, store)   # doctest: +SKIP
    """
    from det_jupyter.engine.cluster import cluster as get_client
    from det_jupyter.engine.cluster import slot_resource, slot_resource_of
    from det_jupyter.engine.worker_env import prepare_workers
    from det_jupyter.master import ensure_master, poke

    address = cluster or os.environ.get("DET_JUPYTER_CLUSTER") or None
    info = ensure_master()
    if address is None:  # an external cluster's slots are checked by the master (ERROR with the fix)
        resources = [dict(w.get("resources") or {}) for w in info.workers]
        slot_resource_of(resources, cfg.resources.slots_per_trial, cfg.resources.slot_type)
        if cfg.environment.pip and info.scheduler:  # the master's workers share this environment
            prepare_workers(get_client(info.scheduler), cfg, blob)
    else:  # slots, packing and versions checked here, with the kernel's versions (it froze the entrypoint)
        client = get_client(address)
        slot_resource(client, cfg.resources.slots_per_trial, cfg.resources.slot_type)
        prepare_workers(client, cfg, blob)
    with st.transaction():
        exp_id = _write_row(st, cfg, entrypoint_name, blob, hook, seed, paused=paused)
        st.update_experiment(exp_id, cluster_address=address, dashboard_link=info.dashboard_link)
    poke()
    return exp_id


def _write_row(
    st: Store,
    cfg: ExperimentConfig,
    entrypoint_name: str,
    blob: bytes,
    hook: bytes | None,
    seed: int,
    *,
    paused: bool,
) -> int:
    """The experiment's row (inside the caller's transaction); ``paused``: born PAUSED, so its trials
    wait for ``exp.activate()``."""
    exp_id = st.create_experiment(
        name=cfg.name,
        description=cfg.description,
        config=cfg.to_dict(),
        entrypoint=blob,
        entrypoint_name=entrypoint_name,
        load_hook=hook,
        seed=seed,
    )
    if paused:
        st.update_experiment(exp_id, state=ExperimentState.PAUSED)
    return exp_id
