"""The model behind the REST handlers: reads the store, writes control requests, describes the cluster.

One :class:`ExperimentService` lives in the Jupyter server's ``web_app.settings`` (key
:data:`SETTINGS_KEY`); handlers only parse a request, call one method here and write its JSON. Every
method is synchronous and thread-safe (the store gives each thread its own connection); handlers run
them on the service's small thread pool so SQLite and Dask never block the server's event loop.

Configure it like any Jupyter configurable, e.g. in ``jupyter_server_config.py``::

    c.ExperimentService.store_path = "/shared/det/det_jupyter.db"
    c.ExperimentService.scheduler_address = "tcp://scheduler:8786"
    c.ExperimentService.revive_master = False   # never start the det-jupyter master from the server

With ``revive_master`` (the default), the service starts the home's ``det-jupyter master`` when the
store holds experiments that a dead master left without one: when the extension loads, when the sidebar
lists experiments (at most every ``REVIVE_INTERVAL`` seconds) and after an action; always on a
background thread, only for the home's own store (``$DET_JUPYTER_HOME/det_jupyter.db``).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traitlets import Bool, Float, Integer, Unicode
from traitlets.config import LoggingConfigurable

from det_jupyter.errors import DetJupyterError, StoreError
from det_jupyter.server.dashboard import dashboard_proxy_path, proxy_installed
from det_jupyter.server.serializers import (
    max_time_of,
    serialize_action,
    serialize_cluster,
    serialize_experiment_detail,
    serialize_experiment_summary,
    serialize_log_page,
    serialize_metric_series,
    serialize_trial_detail,
    serialize_trial_summary,
)
from det_jupyter.server.wire_models import (
    ActionModel,
    ClusterModel,
    ExperimentDetailModel,
    ExperimentListModel,
    LogPageModel,
    MetricSeriesModel,
    TrialDetailModel,
    TrialListModel,
)
from det_jupyter.states import ControlAction, ExperimentState
from det_jupyter.store import Store
from det_jupyter.worker.gpu import gpu_inventory

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["SETTINGS_KEY", "ActionConflictError", "ExperimentService"]

SETTINGS_KEY = "det_jupyter_service"
REVIVE_INTERVAL = 5.0
"""Seconds between two looks for experiments without a live master (the sidebar polls every second)."""

# Which states each action may start from (the controller ignores the rest; the API says why).
_ALLOWED_FROM: dict[ControlAction, tuple[ExperimentState, ...]] = {
    ControlAction.PAUSE: (ExperimentState.ACTIVE,),
    ControlAction.ACTIVATE: (ExperimentState.PAUSED,),
    ControlAction.KILL: (ExperimentState.ACTIVE, ExperimentState.PAUSED, ExperimentState.STOPPING_CANCELED),
}


class ActionConflictError(DetJupyterError):
    """An action that the experiment's current state does not allow (HTTP 409)."""


class ExperimentService(LoggingConfigurable):
    """Reads and controls the experiments of one store for the server extension."""

    store_path = Unicode(
        "",
        config=True,
        help="The det_jupyter store file; default: $DET_JUPYTER_HOME/det_jupyter.db of the server process.",
    )
    scheduler_address = Unicode(
        "",
        config=True,
        help="A Dask scheduler to describe in the cluster view (e.g. tcp://scheduler:8786).",
    )
    follow_experiment_clusters = Bool(
        True,
        config=True,
        help="Without scheduler_address, describe the cluster of the newest running experiment.",
    )
    cluster_timeout = Float(5.0, config=True, help="Seconds to connect to and query a Dask scheduler.")
    default_page_size = Integer(50, config=True, help="Experiments or trials per page when not given.")
    max_page_size = Integer(1000, config=True, help="The largest page a request may ask for.")
    default_logs_tail = Integer(100, config=True, help="Log lines of a trial's detail when not given.")
    default_max_points = Integer(500, config=True, help="Points per metric series when not given.")
    revive_master = Bool(
        True,
        config=True,
        help="Start the det-jupyter master (in the background) when experiments of the home's store have "
        "no live one, e.g. after a master was killed: on load and when experiments are listed.",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.store = Store(self.store_path or None)
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="det-jupyter-api")
        self._clients: dict[str, Client] = {}
        self._clients_lock = threading.Lock()
        self._revive_lock = threading.Lock()
        self._revive_thread: threading.Thread | None = None
        self._revive_at = float("-inf")

    @property
    def path(self) -> Path:
        """The store file this service reads."""
        return self.store.path

    # --- experiments ---------------------------------------------------------------------------

    def maybe_revive(self, *, force: bool = False) -> threading.Thread | None:
        """Look, on a background thread, for experiments without a live master and start one if needed.

        Does nothing when ``revive_master`` is off, when the store is not the home's own (the master
        serves ``$DET_JUPYTER_HOME/det_jupyter.db`` only), while a look is under way, or (unless
        ``force``) within ``REVIVE_INTERVAL`` seconds of the last one. Returns the thread it started.
        What it did goes to the server's log.

        Example:
            >>> service.maybe_revive(force=True)            # doctest: +SKIP
            <Thread(det-jupyter-revive, started daemon ...)>
        """
        from det_jupyter.master import serves_store

        if not self.revive_master or not serves_store(self.path):
            return None
        with self._revive_lock:
            now = time.monotonic()
            busy = self._revive_thread is not None and self._revive_thread.is_alive()
            if busy or (not force and now - self._revive_at < REVIVE_INTERVAL):
                return None
            self._revive_at = now
            thread = threading.Thread(target=self._revive, name="det-jupyter-revive", daemon=True)
            self._revive_thread = thread
        thread.start()
        return thread

    def _revive(self) -> None:
        from det_jupyter.master import revive_if_orphaned

        try:
            revive_if_orphaned(self.path.parent, logger=self.log)
        except Exception as exc:  # never take the server down; say why in its log
            self.log.warning("det_jupyter: could not start the master for %s: %s", self.path.parent, exc)

    def list_experiments(self, *, limit: int, offset: int) -> ExperimentListModel:
        """A page of experiments, newest first, with trial aggregates from one SQL query."""
        self.maybe_revive()
        rows = self.store.list_experiments(limit=limit, offset=offset)
        aggregates = self.store.experiment_aggregates(rows)  # no trial rows read, whatever their number
        bests = self.store.best_validations([r.id for r in rows])
        return {
            "experiments": [
                serialize_experiment_summary(
                    r, aggregates[r.id].stats, bests[r.id], aggregate=aggregates[r.id]
                )
                for r in rows
            ],
            "total": self.store.count_experiments(),
            "limit": limit,
            "offset": offset,
        }

    def experiment(self, experiment_id: int, *, limit: int, offset: int) -> ExperimentDetailModel:
        """One experiment with its config and a page of its trials (``NotFoundError`` if unknown)."""
        row = self.store.get_experiment(experiment_id)
        aggregate = self.store.experiment_aggregates([row])[experiment_id]
        bests = self.store.best_validations([experiment_id])[experiment_id]
        page = self.store.list_trials(experiment_id, limit=limit, offset=offset)
        return serialize_experiment_detail(
            row, aggregate.stats, bests, page, limit=limit, offset=offset, aggregate=aggregate
        )

    def trials(self, experiment_id: int, *, limit: int, offset: int) -> TrialListModel:
        """A page of an experiment's trials in creation order (the best one marked); reads that page only."""
        row = self.store.get_experiment(experiment_id)
        best = self.store.best_trial_ids([row]).get(experiment_id)
        max_time = max_time_of(row.config)
        return {
            "trials": [
                serialize_trial_summary(t, max_time=max_time, best_id=best)
                for t in self.store.list_trials(experiment_id, limit=limit, offset=offset)
            ],
            "total": sum(self.store.trial_counts(experiment_id).values()),
            "limit": limit,
            "offset": offset,
        }

    # --- trials --------------------------------------------------------------------------------

    def trial(self, trial_id: int, *, max_points: int | None, logs_tail: int) -> TrialDetailModel:
        """One trial with metric series, checkpoints and log tail (``NotFoundError`` if unknown)."""
        row = self.store.get_trial(trial_id)
        experiment = self.store.get_experiment(row.experiment_id)
        max_time, best = (
            max_time_of(experiment.config),
            self.store.best_trial_ids([experiment]).get(experiment.id),
        )
        cursor, _, logs = self.store.logs_since(trial_id, tail=logs_tail)
        return serialize_trial_detail(
            row,
            self.store.metrics(trial_id=trial_id),
            self.store.checkpoints(trial_id=trial_id),
            logs,
            max_points=max_points,
            logs_cursor=cursor,
            max_time=max_time,
            best_id=best,
        )

    def trial_logs(self, trial_id: int, *, after: int, tail: int) -> LogPageModel:
        """A trial's log lines after cursor ``after`` (the newest ``tail``), for live tails."""
        row = self.store.get_trial(trial_id)
        cursor, skipped, lines = self.store.logs_since(trial_id, after_id=after, tail=tail)
        return serialize_log_page(row, lines, cursor=cursor, skipped=skipped)

    def trial_metrics(
        self, trial_id: int, *, kind: str | None, max_points: int | None
    ) -> list[MetricSeriesModel]:
        """A trial's metric series (one kind, or both)."""
        self.store.get_trial(trial_id)
        return serialize_metric_series(
            self.store.metrics(trial_id=trial_id, kind=kind), max_points=max_points
        )

    # --- actions -------------------------------------------------------------------------------

    def act(self, experiment_id: int, action: ControlAction) -> ActionModel:
        """Write a control request for the experiment's controller; refuse actions its state forbids."""
        state = self.store.get_experiment(experiment_id).state
        allowed = _ALLOWED_FROM[action]
        if state not in allowed:
            raise ActionConflictError(
                f"experiment {experiment_id} is {state.value}: {action.value.lower()} applies only to "
                f"{' or '.join(s.value for s in allowed)} experiments"
            )
        request_id = self.store.add_request(experiment_id, action)
        self.maybe_revive(force=True)  # activating a PAUSED experiment that no master runs needs one
        return serialize_action(experiment_id, action.value, request_id, state.value)

    def delete(self, experiment_id: int) -> None:
        """Delete a terminal experiment's records (its checkpoint files stay)."""
        state = self.store.get_experiment(experiment_id).state
        if not state.is_terminal:
            raise ActionConflictError(
                f"experiment {experiment_id} is {state.value}: only COMPLETED, CANCELED or ERROR experiments "
                "can be deleted; kill it first and wait until it is CANCELED"
            )
        try:
            self.store.delete_experiment(experiment_id)
        except StoreError as exc:  # it became non-terminal in between (activated by someone else)
            raise ActionConflictError(str(exc)) from exc

    # --- cluster -------------------------------------------------------------------------------

    def cluster(self, *, base_url: str = "/") -> ClusterModel:
        """The cluster the experiments run on: its workers, slots and GPUs; else this machine's GPUs.

        Which cluster: ``scheduler_address`` if configured; else the external cluster of the newest
        running experiment; else the embedded cluster of the store's det-jupyter master (its
        ``master.json``; the workers' GPUs are asked from its scheduler, and ``master.json``'s
        workers stand in when the scheduler does not answer). ``base_url`` is the Jupyter server's,
        for the dashboard's jupyter-server-proxy path.
        """
        from det_jupyter.engine.cluster import cluster_summary
        from det_jupyter.master import running_master

        address, source = self._cluster_address()
        master = None
        if address is None:
            master = running_master(self.path.parent)
            if master is not None and master.scheduler:
                address, source = master.scheduler, "master"
        if address is None:
            return serialize_cluster(
                None,
                server_gpus=gpu_inventory(),
                message="no cluster running (the det-jupyter master starts one with the next experiment); "
                "GPUs of the Jupyter server",
            )
        running = [r.id for r in self.store.list_experiments(limit=100) if not r.state.is_terminal]
        if master is not None:
            what = f"det-jupyter master (pid {master.pid}), embedded cluster at {address}"
            experiments = list(master.experiments)
        else:
            what = f"cluster at {address}" + (" (configured)" if source == "configured" else "")
            experiments = running
        try:
            summary = cluster_summary(self._client(address))
        except (OSError, TimeoutError) as exc:
            self._drop_client(address)
            if master is None:
                return serialize_cluster(
                    None,
                    server_gpus=gpu_inventory(),
                    message=f"cluster at {address} unreachable ({exc}); GPUs of the Jupyter server",
                    experiments=experiments,
                )
            summary = {
                "scheduler": master.scheduler,
                "dashboard_link": master.dashboard_link,
                "workers": [{"name": str(w.get("name", "")), **w} for w in master.workers],
                "slots": master.slots,
            }
            what += f" (its scheduler did not answer: {exc}; workers from master.json)"
        link = summary.get("dashboard_link") or (master.dashboard_link if master else None)
        summary = {**summary, "dashboard_link": link}
        return serialize_cluster(
            summary,
            server_gpus=[],
            message=what,
            source=source,
            dashboard_proxy_path=dashboard_proxy_path(link, base_url) if proxy_installed() else None,
            master_pid=master.pid if master is not None else None,
            experiments=experiments,
        )

    def _cluster_address(self) -> tuple[str | None, str]:
        if self.scheduler_address:
            return str(self.scheduler_address), "configured"
        if not self.follow_experiment_clusters:
            return None, "none"
        for row in self.store.list_experiments(limit=20):
            if not row.state.is_terminal and row.cluster_address:
                return row.cluster_address, "experiment"
        return None, "none"

    def _client(self, address: str) -> Client:
        from distributed import Client

        with self._clients_lock:
            client = self._clients.get(address)
            if client is not None and client.status == "running":
                return client
        if client is not None:
            self._drop_client(address)
        client = Client(address, timeout=self.cluster_timeout, set_as_default=False)
        with self._clients_lock:
            self._clients[address] = client
            stale = [a for a in self._clients if a != address]
        for other in stale:  # only the current cluster stays connected
            self._drop_client(other)
        return client

    def _drop_client(self, address: str) -> None:
        with self._clients_lock:
            client = self._clients.pop(address, None)
        if client is not None:
            try:
                client.close(timeout=self.cluster_timeout)
            except (OSError, TimeoutError, RuntimeError) as exc:
                self.log.debug("closing the Dask client of %s: %s", address, exc)

    def close(self) -> None:
        """Disconnect from clusters and stop the thread pool (server shutdown)."""
        for address in list(self._clients):
            self._drop_client(address)
        self.executor.shutdown(wait=False, cancel_futures=True)
