"""Gang scheduling of multi-slot trials on Dask: all ranks start or none, and gangs never deadlock.

A trial with ``resources.slots_per_trial: N`` (N > 1) runs as N *ranks*, one per worker process (a
rank is a process: ``torch.distributed`` has one default group per process), each rank a Dask task
asking for one slot (``{"GPU": 1}`` / ``{"CPU": 1}``) and pinned to its worker. Submitting the N tasks
as they are would let two gangs each grab part of the slots and wait forever for the rest, so a gang is
*admitted* first, on the scheduler, in one atomic step (:func:`reserve_on_scheduler`, run with
``client.run_on_scheduler``; the scheduler's event loop runs it without interleaving anything else):

1. **FIFO across gangs.** Each waiting gang has a place in one queue on the scheduler (shared by every
   controller and master using the cluster); only the oldest waiting gang may be placed, so a big gang
   is never starved by smaller ones. A waiting gang refreshes its place on every attempt; a place not
   refreshed for :data:`QUEUE_TTL` seconds (its controller died) is dropped.
2. **All or nothing.** The head gang is placed only when N workers each have a free slot and a free
   thread, counting slots already *reserved* for placed gangs whose tasks have not reached their workers
   yet; otherwise nothing is reserved and the gang asks again later.
3. **Hosts filled first.** Ranks go to the host with the most free workers first (then the next), so
   ranks share hosts where they can; rank 0 (the chief) is on the fullest host.

Once placed, the launcher submits the N tasks pinned to those workers. A reservation ends when its task
runs (Dask then counts the slot itself) or after :data:`RESERVATION_TTL` s. Single-slot trials do not
queue here: they are plain Dask tasks, so one that is submitted in the instant between a gang's
placement and its tasks' arrival can take a reserved slot; that rank then waits for it to finish (a
delay, never a deadlock: a single-slot trial waits on nothing).

The scheduler-side functions only use builtins and are shipped *by value*, so the scheduler needs no
det_jupyter installed.

Example:
    >>> plan_ranks([("tcp://a:1", "hostA", "w1"), ("tcp://b:1", "hostB", "w2"),
    ...             ("tcp://a:2", "hostA", "w3")], 2)
    ['tcp://a:1', 'tcp://a:2']
    >>> plan_ranks([("tcp://a:1", "hostA", "w1")], 2) is None
    True
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "GANG_LEDGER",
    "QUEUE_TTL",
    "RESERVATION_TTL",
    "by_value",
    "capacity_error",
    "plan_ranks",
    "release_on_scheduler",
    "reserve_on_scheduler",
]

GANG_LEDGER = "det-jupyter-gangs"
"""Key of the gang queue and reservations in ``Scheduler.extensions``."""
QUEUE_TTL = 15.0
"""Seconds a waiting gang keeps its place in the queue without asking again."""
RESERVATION_TTL = 60.0
"""Seconds a placed gang's slots stay reserved for tasks that have not reached their workers."""


def plan_ranks(free: Sequence[tuple[str, str, str]], size: int) -> list[str] | None:
    """Pick ``size`` workers from ``free`` ``(address, host, name)``, filling the fullest host first.

    Pure and self-contained (it runs on the scheduler, shipped by value). Returns the workers in rank
    order, or ``None`` when there are fewer than ``size``.

    Example:
        >>> plan_ranks([("a1", "A", "1"), ("b1", "B", "2"), ("b2", "B", "3")], 2)
        ['b1', 'b2']
    """
    if len(free) < size:
        return None
    by_host: dict[str, list[tuple[str, str]]] = {}
    for address, host, name in free:
        by_host.setdefault(host, []).append((name, address))
    order = sorted(by_host, key=lambda h: (-len(by_host[h]), h))
    chosen: list[str] = []
    for host in order:
        for _, address in sorted(by_host[host]):
            if len(chosen) < size:
                chosen.append(address)
    return chosen


def reserve_on_scheduler(
    dask_scheduler: Any,
    gang: str,
    size: int,
    resource: str | None,
    keys: list[str],
    plan: Callable[[Sequence[tuple[str, str, str]], int], list[str] | None],
    queue_ttl: float,
    reservation_ttl: float,
) -> dict[str, Any]:
    """Run on the scheduler: place gang ``gang`` (``size`` ranks, task ``keys``) or keep it waiting.

    Returns ``{"placed": [(address, host), ...]}`` in rank order, or ``{"waiting": position,
    "free": n}``. Self-contained (builtins only): the launcher ships it by value (:func:`by_value`).
    """
    import time

    now = time.time()
    ledger = dask_scheduler.extensions.get("det-jupyter-gangs")
    if not isinstance(ledger, dict):
        ledger = {"queue": {}, "held": {}}
        dask_scheduler.extensions["det-jupyter-gangs"] = ledger
    queue, held = ledger["queue"], ledger["held"]
    if gang in held:  # asked twice (a retry after a lost answer): the same placement
        return {"placed": [(w, h) for _, w, h in held[gang]["ranks"]]}
    for other in [g for g, entry in queue.items() if now - entry[1] > queue_ttl and g != gang]:
        del queue[other]
    if gang in queue:
        queue[gang][1] = now
    else:
        queue[gang] = [size, now]
    # slots reserved for placed gangs whose tasks are not running yet
    reserved: dict[str, int] = {}
    for other, entry in list(held.items()):
        live = False
        for key, worker, _host in entry["ranks"]:
            ts = dask_scheduler.tasks.get(key)
            state = None if ts is None else str(ts.state)
            if state == "processing":
                entry["seen"].append(key)
                live = True
            elif key in entry["seen"] or state in ("memory", "erred", "forgotten"):
                continue  # ran or ended: no longer reserved
            elif now - entry["at"] <= reservation_ttl:
                reserved[worker] = reserved.get(worker, 0) + 1
                live = True
        if not live:
            del held[other]
    free = []
    for ws in dask_scheduler.workers.values():
        if getattr(ws.status, "name", str(ws.status)) != "running":
            continue
        taken = reserved.get(ws.address, 0)
        threads = ws.nthreads - len(ws.processing) - taken
        if resource is None:
            slots = threads
        else:
            slots = ws.resources.get(resource, 0) - ws.used_resources.get(resource, 0) - taken
        if slots >= 1 and threads >= 1:
            free.append((ws.address, ws.host, str(ws.name)))
    position = list(queue).index(gang)
    if position > 0:
        return {"waiting": position, "free": len(free)}
    chosen = plan(free, size)
    if chosen is None:
        return {"waiting": 0, "free": len(free)}
    hosts = {address: host for address, host, _ in free}
    del queue[gang]
    held[gang] = {"ranks": [[k, w, hosts[w]] for k, w in zip(keys, chosen)], "at": now, "seen": []}
    return {"placed": [(w, hosts[w]) for w in chosen]}


def release_on_scheduler(dask_scheduler: Any, gang: str) -> None:
    """Run on the scheduler: forget gang ``gang`` (its queue place and any reservation)."""
    ledger = dask_scheduler.extensions.get("det-jupyter-gangs")
    if isinstance(ledger, dict):
        ledger["queue"].pop(gang, None)
        ledger["held"].pop(gang, None)


def by_value(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A copy of a self-contained function that cloudpickle ships by value (the scheduler may not
    have det_jupyter installed); the copy is not the module attribute, so it is not pickled by name.

    Example:
        >>> by_value(plan_ranks)([("a", "h", "n")], 1)
        ['a']
    """
    copy = types.FunctionType(fn.__code__, {"__builtins__": __builtins__}, fn.__name__, fn.__defaults__)
    copy.__qualname__ = f"_by_value_{fn.__qualname__}"
    return copy


def capacity_error(
    size: int, resource: str | None, workers: Sequence[Mapping[str, Any]], names: Sequence[str] | None = None
) -> str | None:
    """Why a gang of ``size`` ranks can never run on these workers (``None`` when it can).

    ``workers`` are the workers' declared resources. A rank is a process, so each worker process
    runs at most one rank of a trial, whatever slots it offers.

    Example:
        >>> capacity_error(4, "CPU", [{"CPU": 1}, {"CPU": 1}, {"CPU": 1}], ["a", "b", "c"])  # doctest: +ELLIPSIS
        'resources.slots_per_trial=4 needs 4 CPU slots (one rank per slot...), but the cluster has 3: 1 on worker a, 1 on worker b, 1 on worker c; ...'
    """
    if resource is None or not workers:
        return None
    counts = [1 if float(w.get(resource, 0)) >= 1 else 0 for w in workers]
    have = sum(counts)
    if have >= size:
        return None
    labels = list(names) if names is not None else [str(i + 1) for i in range(len(workers))]
    parts = ", ".join(f"{c} on worker {label}" for c, label in zip(counts, labels) if c) or "none"
    bigger = any(float(w.get(resource, 0)) > 1 for w in workers)
    note = (
        " (a worker offering several slots still runs one rank: start one worker process per slot, "
        "e.g. `dask worker --nworkers N --resources GPU=1`)"
        if bigger
        else ""
    )
    return (
        f"resources.slots_per_trial={size} needs {size} {resource} slots (one rank per slot, one rank per "
        f"worker process), but the cluster has {have}: {parts}{note}; set resources.slots_per_trial "
        f"to at most {max(have, 1)} or add workers"
    )
