"""Where trial runs execute: the :class:`Launcher` interface and :class:`DaskLauncher`, its Dask version.

The controller never touches ``distributed`` itself: it submits runs, asks them to stop and listens to
their events through a launcher. Tests drive the real controller with a fake one (no Dask at all).

Example:
    >>> from distributed import Client                                      # doctest: +SKIP
    >>> launcher = DaskLauncher(Client(), slots_per_trial=1)                # doctest: +SKIP
    >>> launcher.resource                                                   # doctest: +SKIP
    'CPU'
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from distributed import Client, Future

from det_jupyter.engine.cluster import SlotType, dashboard_link, slot_resource
from det_jupyter.engine.runs import TaskEnd
from det_jupyter.worker.context import TrialSpec
from det_jupyter.worker.runtime import request_stop, run_trial

__all__ = ["DaskLauncher", "Launcher"]

log = logging.getLogger(__name__)


class Launcher(ABC):
    """Runs trial tasks for one controller.

    Contract:

    - Every method is called from the controller's loop thread only; the callbacks it is given
      (``on_done``, the topic ``handler``) may be called from any thread and must only enqueue.
    - Runs are named by their task key (``spec.run_key``), unique across controllers.
    - :meth:`submit` never blocks on a free slot: runs queue until the cluster has
      ``slots_per_trial`` slots for them; ``on_done(key)`` is called once when the task ends for any
      reason, after which :meth:`task_end` tells how.
    - :meth:`release` is called once the controller has finalized a run; the launcher then forgets it.
    - Stops are best effort: a run that cannot be reached ends by itself or is lost.
    """

    @abstractmethod
    def subscribe(self, topic: str, handler: Callable[[Any], None]) -> None:
        """Deliver every message sent to ``topic`` from now on to ``handler(msg)`` (no history)."""

    @abstractmethod
    def unsubscribe(self, topic: str) -> None:
        """Stop delivering ``topic``; must not raise if the connection is gone."""

    @abstractmethod
    def submit(self, spec: TrialSpec, blob: bytes, digest: str, on_done: Callable[[str], None]) -> None:
        """Start one run of a trial: ``run_trial(spec, blob, digest)`` with the trial's slots."""

    @abstractmethod
    def task_end(self, key: str) -> tuple[TaskEnd, str | None]:
        """How a run's ended task ended, and the error of a failed one (``"Type: message"``)."""

    @abstractmethod
    def result(self, key: str) -> object:
        """What a finished run's task returned (its summary); may block briefly."""

    @abstractmethod
    def request_stop(self, key: str, worker: str | None) -> None:
        """Set the run's stop flag on ``worker`` (all workers when ``None``)."""

    @abstractmethod
    def is_queued(self, key: str) -> bool:
        """True while the run's task has not been given to a worker."""

    @abstractmethod
    def cancel(self, key: str) -> None:
        """Cancel the run's task (queued or running); ``on_done`` follows."""

    @abstractmethod
    def restart_worker(self, worker: str) -> None:
        """Restart a worker process (a run ignored its stop flag); must not raise."""

    @abstractmethod
    def release(self, key: str) -> None:
        """Forget a finalized run."""

    @abstractmethod
    def dashboard_link(self) -> str | None:
        """A link to the cluster's dashboard, if any."""

    @abstractmethod
    def address(self) -> str | None:
        """The scheduler's address, if any."""


class DaskLauncher(Launcher):
    """A :class:`Launcher` over a ``distributed.Client``: one task per run, slots as Dask resources.

    The slot resource is worked out once, here (``slot_resource``): building a launcher raises
    :class:`~det_jupyter.errors.ClusterError` when no worker offers ``slots_per_trial`` slots.

    Args:
        client: the Dask client to submit with.
        slots_per_trial: ``resources.slots_per_trial``.
        slot_type: ``resources.slot_type`` (``auto``, ``gpu`` or ``cpu``).
    """

    def __init__(
        self,
        client: Client,
        slots_per_trial: int = 1,
        slot_type: SlotType = "auto",
        *,
        record_address: bool = True,
    ) -> None:
        self.client = client
        self.record_address = record_address
        """False for a cluster that dies with this process (a kernel's embedded one): :meth:`address`
        then names none, so the experiment row records no address a master could try to join."""
        self.slots_per_trial = slots_per_trial
        self.resource = slot_resource(client, slots_per_trial, slot_type)
        """``"GPU"``, ``"CPU"`` or ``None`` (workers declare no resources)."""
        self._futures: dict[str, Future] = {}

    def subscribe(self, topic: str, handler: Callable[[Any], None]) -> None:
        """Forward the topic's messages (the ``(timestamp, msg)`` pairs' ``msg``) to ``handler``."""
        self.client.subscribe_topic(topic, lambda event: handler(event[1]))

    def unsubscribe(self, topic: str) -> None:
        """Stop listening; the client may be closed already (nothing to clean then)."""
        try:
            self.client.unsubscribe_topic(topic)
        except Exception as exc:  # closed client / gone scheduler
            log.debug("unsubscribe_topic(%s) failed: %s", topic, exc)

    def submit(self, spec: TrialSpec, blob: bytes, digest: str, on_done: Callable[[str], None]) -> None:
        """Submit ``run_trial`` under the run's key, asking for ``{resource: slots_per_trial}``."""
        key = spec.run_key
        resources = {self.resource: self.slots_per_trial} if self.resource else None
        future = self.client.submit(run_trial, spec, blob, digest, key=key, resources=resources, pure=False)
        self._futures[key] = future
        future.add_done_callback(lambda _f: on_done(key))

    def task_end(self, key: str) -> tuple[TaskEnd, str | None]:
        """Read the future's status (a failed one's exception is fetched from the scheduler)."""
        future = self._futures[key]
        if future.status == "finished":
            return TaskEnd.FINISHED, None
        if future.status == "cancelled":
            return TaskEnd.CANCELLED, None
        exc = future.exception()
        return TaskEnd.FAILED, f"{type(exc).__name__}: {exc}"

    def result(self, key: str) -> object:
        """The finished task's return value."""
        return self._futures[key].result()

    def request_stop(self, key: str, worker: str | None) -> None:
        """``client.run(request_stop, key)`` into the worker plugin's flag."""
        try:
            self.client.run(request_stop, key, workers=[worker] if worker else None, on_error="ignore")
        except OSError as exc:  # worker gone: the future will fail and be handled
            log.warning("could not ask run %s to stop: %s", key, exc)

    def is_queued(self, key: str) -> bool:
        """Ask the scheduler for the task's state."""

        def task_state(dask_scheduler: Any, key: str) -> str | None:
            ts = dask_scheduler.tasks.get(key)
            return None if ts is None else str(ts.state)

        state = self.client.run_on_scheduler(task_state, key=key)
        return state in ("released", "waiting", "queued", "no-worker")

    def cancel(self, key: str) -> None:
        """Cancel the task's future."""
        future = self._futures.get(key)
        if future is not None:
            future.cancel()

    def restart_worker(self, worker: str) -> None:
        """``client.restart_workers``; an external cluster may refuse (the task was cancelled anyway)."""
        try:
            self.client.restart_workers([worker], raise_for_error=False)
        except Exception as exc:
            log.warning("could not restart worker %s: %s", worker, exc)

    def release(self, key: str) -> None:
        """Drop the future, so Dask may forget the task."""
        self._futures.pop(key, None)

    def dashboard_link(self) -> str | None:
        """The client's dashboard link."""
        return dashboard_link(self.client)

    def address(self) -> str | None:
        """The scheduler's address (``None`` when ``record_address`` is off)."""
        scheduler = getattr(self.client, "scheduler", None) if self.record_address else None
        return str(scheduler.address) if scheduler is not None else None
