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
import queue
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from distributed import Client, Future, Variable

from det_jupyter.engine.cluster import SlotType, dashboard_link, slot_resource
from det_jupyter.engine.gang import (
    QUEUE_TTL,
    RESERVATION_TTL,
    by_value,
    plan_ranks,
    release_on_scheduler,
    reserve_on_scheduler,
)
from det_jupyter.engine.runs import TaskEnd
from det_jupyter.worker.context import TrialSpec
from det_jupyter.worker.ranks import GangRank, RankFailed
from det_jupyter.worker.runtime import allow_run, request_stop, run_trial

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
    - A launcher may hold submitted runs back until :meth:`flush` (the controller calls it at the end of
      every loop pass), to hand a pass's runs to the cluster at once; every other method acts on a
      held-back run as if it had been handed over.
    """

    def flush(self) -> None:  # noqa: B027 (optional: a launcher that holds nothing back needs none)
        """Hand the runs :meth:`submit` held back to the cluster."""

    def capacity(self) -> int | None:
        """How many runs the cluster can run at once now (``None``: unknown). The controller keeps a
        few times this many runs submitted (the submission window, ``engine/lifecycle.py``)."""
        return None

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
    def allow(self, key: str, worker: str | None, time: float) -> None:
        """The searcher let the run continue past its validation at trial length ``time`` (its
        ``should_stop()`` waits for this at rungs; without it the wait times out)."""

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


CAPACITY_TTL = 5.0
"""Seconds :meth:`DaskLauncher.capacity` reuses its count of the cluster's slots (workers come and go)."""

GANG_POLL = 0.2
"""Seconds between two admission attempts of a waiting multi-slot run, and between two looks at
the ranks of a running one."""
GANG_GRACE = 30.0
"""Seconds the other ranks of a failed (or finished) multi-slot run get to end after their stop
request before their workers are restarted (a rank stuck in a collective never returns)."""


@dataclass(eq=False)
class _Gang:
    """The launcher's record of one multi-slot run: N rank tasks that start together and end as one."""

    spec: TrialSpec
    blob: bytes
    digest: str
    on_done: Callable[[str], None]
    size: int
    placed_at: float | None = None
    workers: list[str] = field(default_factory=list)
    futures: list[Future] = field(default_factory=list)
    ended: set[int] = field(default_factory=set)
    failure: str | None = None
    cancelled: bool = False
    secondary: str | None = None
    """The first error of a rank that only saw a peer go away (reported when no cause is known)."""
    chief_first: bool = False
    """The chief ended before any rank failed: its own exit (event) tells how the run ended."""
    grace_until: float | None = None
    done: bool = False
    end: tuple[TaskEnd, str | None] = (TaskEnd.FINISHED, None)

    @property
    def key(self) -> str:
        return self.spec.run_key

    def rank_keys(self) -> list[str]:
        """Task keys: the run's key for the chief (so the run's task *is* the chief's), then one per rank."""
        return [self.key] + [f"{self.key}-rank{r}" for r in range(1, self.size)]


class DaskLauncher(Launcher):
    """A :class:`Launcher` over a ``distributed.Client``: one task per run, slots as Dask resources.

    The slot resource is worked out once, here (``slot_resource``): building a launcher raises
    :class:`~det_jupyter.errors.ClusterError` when the cluster cannot offer ``slots_per_trial`` slots.

    A multi-slot run (``slots_per_trial`` N > 1) is a *gang* of N rank tasks, one per worker process,
    each asking for one slot and pinned to the worker its gang was placed on (``engine/gang.py``: FIFO
    across gangs, all ranks or none, hosts filled first). To the controller it is still one run, named
    by the chief's task key: :meth:`is_queued` while waiting for its slots, ``on_done`` once when every
    rank has ended, :meth:`task_end` FAILED when any rank failed (its error), :meth:`request_stop` and
    :meth:`cancel` reach every rank. When one rank fails, or the chief ends while others still run,
    the others are asked to stop and, past :data:`GANG_GRACE`, their workers are restarted.

    Single-slot runs are held back until :meth:`flush` and then submitted together (``client.map``:
    one graph, one message to the scheduler, the model definition serialised once per batch): one
    ``client.submit`` per run cost the scheduler an ``update-graph`` round per trial.

    Args:
        client: the Dask client to submit with.
        slots_per_trial: ``resources.slots_per_trial``.
        slot_type: ``resources.slot_type`` (``auto``, ``gpu`` or ``cpu``).
    """

    def __init__(
        self,
        client: Client,
        slots_per_trial: float = 1,
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
        self.gang_size = int(slots_per_trial) if slots_per_trial > 1 else 1
        """Ranks per run: ``slots_per_trial`` when it is more than 1, else 1 (one plain task)."""
        self._gangs: dict[str, _Gang] = {}
        self._gang_lock = threading.RLock()
        self._gang_events: queue.SimpleQueue[tuple[str, int]] = queue.SimpleQueue()
        self._gang_thread: threading.Thread | None = None
        self._recent_workers: dict[str, list[str]] = {}  # worker -> its last gang's workers
        self._unsent: dict[str, tuple[TrialSpec, bytes, str, Callable[[str], None]]] = {}
        self._dropped: set[str] = set()  # held-back runs cancelled before they were ever handed over
        self._capacity: tuple[float, int | None] = (-float("inf"), None)  # (when counted, slots)
        self.batches = 0
        """How many batches :meth:`flush` handed to the scheduler (for tests and benchmarks)."""

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
        """Hold ``run_trial`` back for :meth:`flush`, which asks for ``{resource: slots_per_trial}``."""
        key = spec.run_key
        if self.gang_size > 1:
            with self._gang_lock:
                self._gangs[key] = _Gang(spec, blob, digest, on_done, self.gang_size)
            self._ensure_gang_thread()
            return
        self._unsent[key] = (spec, blob, digest, on_done)

    def flush(self) -> None:
        """Submit the held-back runs, one ``client.map`` per model definition (one per controller)."""
        if not self._unsent:
            return
        unsent, self._unsent = self._unsent, {}
        resources = {self.resource: self.slots_per_trial} if self.resource else None
        by_digest: dict[str, list[str]] = {}
        for key, (_, _, digest, _) in unsent.items():
            by_digest.setdefault(digest, []).append(key)
        for digest, keys in by_digest.items():
            blob = unsent[keys[0]][1]
            specs = [unsent[k][0] for k in keys]
            # blob and digest as (repeated) positional arguments: Dask turns a large keyword argument of
            # map() into a task of its own, named after the keyword, which breaks the next batch
            n = len(keys)
            futures = self.client.map(
                run_trial, specs, [blob] * n, [digest] * n, key=keys, resources=resources, pure=False
            )
            self.batches += 1
            for key, future in zip(keys, futures):
                self._futures[key] = future
                on_done = unsent[key][3]
                future.add_done_callback(lambda _f, key=key, on_done=on_done: on_done(key))

    def capacity(self) -> int | None:
        """Runs the workers can hold at once: their slots (``nthreads`` when they declare no resources)
        divided by ``slots_per_trial``; counted at most every :data:`CAPACITY_TTL` s."""
        counted_at, slots = self._capacity
        now = time.monotonic()
        if now - counted_at < CAPACITY_TTL:
            return slots
        try:
            workers = self.client.scheduler_info(n_workers=-1)["workers"].values()
        except Exception as exc:  # a closed client: keep the last count
            log.debug("capacity: %s", exc)
            return slots
        if self.resource:
            total = sum(float((w.get("resources") or {}).get(self.resource, 0)) for w in workers)
        else:
            total = float(sum(int(w.get("nthreads") or 1) for w in workers))
        slots = int(total // self.slots_per_trial) if self.slots_per_trial > 0 else int(total)
        self._capacity = (now, slots)
        return slots

    def _sent(self, key: str) -> None:
        """Make sure a held-back run has been handed over before acting on it."""
        if key in self._unsent:
            self.flush()

    def task_end(self, key: str) -> tuple[TaskEnd, str | None]:
        """Read the future's status (a failed one's exception is fetched from the scheduler)."""
        if key in self._dropped:
            return TaskEnd.CANCELLED, None
        self._sent(key)
        gang = self._gangs.get(key)
        if gang is not None:
            return gang.end
        future = self._futures[key]
        if future.status == "finished":
            return TaskEnd.FINISHED, None
        if future.status == "cancelled":
            return TaskEnd.CANCELLED, None
        exc = future.exception()
        return TaskEnd.FAILED, f"{type(exc).__name__}: {exc}"

    def result(self, key: str) -> object:
        """The finished task's return value (a multi-slot run's: its chief's)."""
        self._sent(key)
        gang = self._gangs.get(key)
        if gang is not None:
            return gang.futures[0].result()
        return self._futures[key].result()

    def request_stop(self, key: str, worker: str | None) -> None:
        """``client.run(request_stop, key)`` into the worker plugin's flag (every rank's worker)."""
        self._sent(key)
        gang = self._gangs.get(key)
        if gang is not None:
            if gang.workers:  # else still waiting for its slots: nothing runs yet
                self._stop_ranks(gang)
            return
        try:
            self.client.run(request_stop, key, workers=[worker] if worker else None, on_error="ignore")
        except OSError as exc:  # worker gone: the future will fail and be handled
            log.warning("could not ask run %s to stop: %s", key, exc)

    def allow(self, key: str, worker: str | None, time: float) -> None:
        """``client.run(allow_run, key, time)`` on the worker of the run (a gang's: its chief's)."""
        self._sent(key)
        gang = self._gangs.get(key)
        if gang is not None:
            if not gang.workers:
                return
            worker = gang.workers[0]
        try:
            self.client.run(allow_run, key, time, workers=[worker] if worker else None, on_error="ignore")
        except OSError as exc:  # worker gone: its run fails and is handled
            log.warning("could not tell run %s to continue: %s", key, exc)

    def is_queued(self, key: str) -> bool:
        """Ask the scheduler for the task's state."""

        def task_state(dask_scheduler: Any, key: str) -> str | None:
            ts = dask_scheduler.tasks.get(key)
            return None if ts is None else str(ts.state)

        if key in self._unsent:
            return True  # held back: not even handed to the scheduler
        gang = self._gangs.get(key)
        if gang is not None and not gang.futures:
            return True  # waiting for its slots
        state = self.client.run_on_scheduler(task_state, key=key)
        return state in ("released", "waiting", "queued", "no-worker")

    def cancel(self, key: str) -> None:
        """Cancel the task's future (a multi-slot run's: every rank's, and ask them to stop).

        A held-back run is dropped, never submitted: handing it over and cancelling it at once would
        race (the cancel travels on its own connection and may reach the scheduler first, which then
        runs the task all the same, unwatched)."""
        held = self._unsent.pop(key, None)
        if held is not None:
            self._dropped.add(key)
            held[3](key)
            return
        gang = self._gangs.get(key)
        if gang is not None:
            self._cancel_gang(gang)
            return
        future = self._futures.get(key)
        if future is not None:
            future.cancel()

    def restart_worker(self, worker: str) -> None:
        """``client.restart_workers``; an external cluster may refuse (the task was cancelled anyway).

        A worker that last ran a rank of a multi-slot run is restarted with the workers of the other
        ranks (they are stuck in the same collectives)."""
        workers = self._recent_workers.get(worker, [worker])
        try:
            self.client.restart_workers(workers, raise_for_error=False)
        except Exception as exc:
            log.warning("could not restart worker(s) %s: %s", workers, exc)

    def release(self, key: str) -> None:
        """Drop the future, so Dask may forget the task."""
        self._unsent.pop(key, None)
        self._dropped.discard(key)
        self._futures.pop(key, None)
        with self._gang_lock:
            self._gangs.pop(key, None)

    def dashboard_link(self) -> str | None:
        """The client's dashboard link."""
        return dashboard_link(self.client)

    def address(self) -> str | None:
        """The scheduler's address (``None`` when ``record_address`` is off)."""
        scheduler = getattr(self.client, "scheduler", None) if self.record_address else None
        return str(scheduler.address) if scheduler is not None else None

    # --- multi-slot runs (gangs) -----------------------------------------------------------------

    def _ensure_gang_thread(self) -> None:
        with self._gang_lock:
            if self._gang_thread is None or not self._gang_thread.is_alive():
                self._gang_thread = threading.Thread(
                    target=self._gang_loop, name="det-jupyter-gangs", daemon=True
                )
                self._gang_thread.start()

    def _gang_loop(self) -> None:
        """Admit waiting gangs, watch running ones; ends when no gang is left (restarted by submit)."""
        last_check = 0.0
        while True:
            with self._gang_lock:
                gangs = [g for g in self._gangs.values() if not g.done]
                if not gangs:
                    self._gang_thread = None
                    return
            try:
                key, rank = self._gang_events.get(timeout=GANG_POLL)
                self._on_rank_done(key, rank)
                continue
            except queue.Empty:
                pass
            now = time.monotonic()
            for gang in gangs:
                try:
                    if not gang.workers and not gang.cancelled:
                        self._try_place(gang)
                    elif gang.workers and not gang.done:
                        self._supervise(gang, now, check_states=now - last_check >= 1.0)
                except Exception as exc:  # a closed client, a gone scheduler: retried next time
                    log.debug("gang %s: %s", gang.key, exc)
            if now - last_check >= 1.0:
                last_check = now

    def _try_place(self, gang: _Gang) -> None:
        answer = self.client.run_on_scheduler(
            by_value(reserve_on_scheduler),
            gang=gang.key,
            size=gang.size,
            resource=self.resource,
            keys=gang.rank_keys(),
            plan=by_value(plan_ranks),
            queue_ttl=QUEUE_TTL,
            reservation_ttl=RESERVATION_TTL,
        )
        placed = answer.get("placed")
        if not placed:
            return
        with self._gang_lock:
            if gang.cancelled or gang.key not in self._gangs:
                self._release_on_scheduler(gang)
                return
            workers = [str(w) for w, _ in placed]
            hosts = tuple(str(h) for _, h in placed)
            authkey = secrets.token_hex(32)
            for w in workers:
                self._recent_workers[w] = workers
            resources = {self.resource: 1} if self.resource else None
            futures = []
            for rank, (task_key, worker) in enumerate(zip(gang.rank_keys(), workers)):
                rank_info = GangRank(rank, gang.size, tuple(workers), hosts, authkey, _rendezvous_name(gang))
                futures.append(
                    self.client.submit(
                        run_trial,
                        gang.spec,
                        gang.blob,
                        gang.digest,
                        rank_info,
                        key=task_key,
                        workers=[worker],
                        allow_other_workers=False,
                        resources=resources,
                        pure=False,
                    )
                )
            gang.workers, gang.futures, gang.placed_at = workers, futures, time.monotonic()
        for rank, future in enumerate(futures):
            future.add_done_callback(lambda _f, k=gang.key, r=rank: self._gang_events.put((k, r)))

    def _on_rank_done(self, key: str, rank: int) -> None:
        gang = self._gangs.get(key)
        if gang is None or gang.done or rank in gang.ended:
            return
        gang.ended.add(rank)
        future = gang.futures[rank]
        if rank == 0 and gang.failure is None:
            gang.chief_first = True
        if future.status == "error" and gang.failure is None:
            exc = future.exception()
            where = f"rank {rank} of {gang.size} (worker {gang.workers[rank]})"
            if isinstance(exc, RankFailed):
                if exc.secondary:  # a peer went away first: remember it only if nothing better comes
                    gang.secondary = gang.secondary or str(exc)
                else:
                    gang.failure = str(exc)
            else:  # its worker died or left
                gang.failure = f"{where} failed: {type(exc).__name__}: {exc}"
        elif future.status == "cancelled" and gang.failure is None and not gang.cancelled:
            gang.failure = f"rank {rank} of {gang.size}: its task was cancelled outside det_jupyter"
        if len(gang.ended) == gang.size:
            self._finish_gang(gang)
        elif (gang.failure or gang.secondary or rank == 0) and gang.grace_until is None:
            # a failed rank, or a chief that is done: the others must end too
            gang.grace_until = time.monotonic() + GANG_GRACE
            self._stop_ranks(gang)

    def _supervise(self, gang: _Gang, now: float, *, check_states: bool) -> None:
        if gang.grace_until is not None and now > gang.grace_until:
            live = [gang.workers[r] for r in range(gang.size) if r not in gang.ended]
            log.warning(
                "multi-slot run %s: ranks on %s did not end; restarting their workers", gang.key, live
            )
            gang.grace_until = now + GANG_GRACE
            for r in range(gang.size):
                if r not in gang.ended:
                    gang.futures[r].cancel()
            try:
                self.client.restart_workers(live, raise_for_error=False)
            except Exception as exc:
                log.warning("could not restart worker(s) %s: %s", live, exc)
            return
        if not check_states:
            return

        def task_states(dask_scheduler: Any, keys: list[str]) -> list[str | None]:
            return [None if (ts := dask_scheduler.tasks.get(k)) is None else str(ts.state) for k in keys]

        states = self.client.run_on_scheduler(task_states, keys=gang.rank_keys())
        for rank, state in enumerate(states):
            if state == "no-worker" and rank not in gang.ended:  # its pinned worker is gone
                if gang.failure is None:
                    gang.failure = (
                        f"rank {rank} of {gang.size}: its worker {gang.workers[rank]} left the cluster "
                        "before the rank could start"
                    )
                gang.futures[rank].cancel()

    def _stop_ranks(self, gang: _Gang) -> None:
        try:
            self.client.run(request_stop, gang.key, workers=list(gang.workers), on_error="ignore")
        except OSError as exc:
            log.warning("could not ask run %s to stop: %s", gang.key, exc)

    def _cancel_gang(self, gang: _Gang) -> None:
        with self._gang_lock:
            gang.cancelled = True
            futures = list(gang.futures)
        if not futures:  # still waiting: it ends now
            self._release_on_scheduler(gang)
            gang.end, gang.done = (TaskEnd.CANCELLED, None), True
            gang.on_done(gang.key)
            return
        self._stop_ranks(gang)
        for future in futures:
            future.cancel()
        if gang.grace_until is None:
            gang.grace_until = time.monotonic() + GANG_GRACE

    def _finish_gang(self, gang: _Gang) -> None:
        chief = gang.futures[0]
        if gang.cancelled:
            end: tuple[TaskEnd, str | None] = (TaskEnd.CANCELLED, None)
        elif chief.status == "finished":
            # The first failure is the cause: a rank that failed before the chief ended fails the run
            # with its error (the chief's own error, if any, follows from it); a chief that ended
            # first tells how the run ended through its exited event.
            summary = _chief_summary(chief)
            if gang.failure is not None and not (gang.chief_first and summary.get("status") == "error"):
                end = (TaskEnd.FAILED, gang.failure)
            elif summary.get("status") == "error" or gang.secondary is None:
                end = (TaskEnd.FINISHED, None)  # the chief's exited event tells how
            else:
                end = (TaskEnd.FAILED, gang.secondary)
        elif chief.status == "cancelled" and gang.failure is None:
            end = (TaskEnd.CANCELLED, None)
        else:
            end = (TaskEnd.FAILED, gang.failure or "the chief rank's task failed")
        gang.end, gang.done = end, True
        self._release_on_scheduler(gang)
        try:
            Variable(_rendezvous_name(gang), client=self.client).delete()
        except Exception as exc:
            log.debug("rendezvous of %s: %s", gang.key, exc)
        gang.on_done(gang.key)

    def _release_on_scheduler(self, gang: _Gang) -> None:
        try:
            self.client.run_on_scheduler(by_value(release_on_scheduler), gang=gang.key)
        except Exception as exc:  # the reservation expires by itself
            log.debug("releasing gang %s: %s", gang.key, exc)


def _rendezvous_name(gang: _Gang) -> str:
    return f"det-jupyter-rdzv-{gang.key}"


def _chief_summary(future: Future) -> dict[str, Any]:
    try:
        result = future.result(timeout=10)
    except Exception:
        return {}
    return result if isinstance(result, dict) else {}
