"""Get a Dask client: the embedded local cluster (one worker per GPU slot, CPU slots otherwise) or an
external one (an address, a ``Client``, or a cluster object of dask-jobqueue / dask-kubernetes /
dask-gateway).

Slots are Dask *resources*: a GPU worker offers ``{"GPU": 1}`` and is pinned to its GPU with
``CUDA_VISIBLE_DEVICES``; where NVML finds no GPU, each worker offers ``{"CPU": 1}`` (one worker per
core, at least one). A trial asks for ``{"GPU": slots_per_trial}`` or ``{"CPU": slots_per_trial}`` so
trials queue in Dask when every slot is busy. An external cluster whose workers declare no resources
runs trials without them (its threads are the slots).

GPU packing, two ways (``docs/deploy.md``): a fractional ``slots_per_trial`` (``0.25`` asks for
``{GPU: 0.25}``: four such trials share a worker's GPU as threads of one process, on workers with as
many threads), or ``slots_per_gpu=K`` on the embedded cluster (``$DET_JUPYTER_SLOTS_PER_GPU``): K
worker *processes* per GPU, admitted by the GPU's free memory (NVML) and each capped at its share
(:func:`~det_jupyter.worker.gpu.pack_gpus`). Processes are the default for packing because PyTorch's
memory cap, environment variables and a CUDA error's damage are per process.

The embedded cluster lives as long as the kernel (or until :func:`shutdown_cluster`); every call of
:func:`cluster` with no address returns a client on it.

Example:
    >>> client = cluster()                          # doctest: +SKIP
    >>> client = cluster("tcp://10.0.0.5:8786")     # doctest: +SKIP
    >>> client = cluster(SLURMCluster(...))         # doctest: +SKIP
"""

from __future__ import annotations

import ast
import linecache
import logging
import multiprocessing
import os
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import dask
from distributed import Client, Nanny, Scheduler, SpecCluster

from det_jupyter.config.sections import SlotType
from det_jupyter.errors import ClusterError
from det_jupyter.store import default_home
from det_jupyter.worker.gpu import gpu_inventory, pack_gpus
from det_jupyter.worker.quiet import LOG_ENV

__all__ = [
    "SLOTS_PER_GPU_ENV",
    "PackingWarning",
    "SlotType",
    "cluster",
    "cluster_summary",
    "cluster_target",
    "dashboard_link",
    "disconnect",
    "gpu_worker_specs",
    "local_cluster",
    "probe_scheduler",
    "shutdown_cluster",
    "slot_resource",
    "slot_resource_of",
]


@dataclass
class _Embedded:
    """The kernel's embedded cluster and its client (created on first use), and external clients."""

    cluster: SpecCluster | None = None
    client: Client | None = None
    external: dict[str, Client] = field(default_factory=dict)  # clients of external clusters, by address


_embedded = _Embedded()
_embedded_lock = threading.Lock()


SLOTS_PER_GPU_ENV = "DET_JUPYTER_SLOTS_PER_GPU"
"""Default ``slots_per_gpu`` of the embedded cluster (and of preloaded external GPU workers)."""


class PackingWarning(UserWarning):
    """A fractional ``slots_per_trial`` that the cluster's workers cannot pack (too few threads)."""


def local_cluster(
    n_workers: int | None = None,
    *,
    gpus: list[int] | None = None,
    dashboard: bool = True,
    memory_limit: str | float | None = "auto",
    slots_per_gpu: int | None = None,
) -> SpecCluster:
    """Start a local cluster of worker processes: one per GPU slot, or ``n_workers`` CPU slots.

    Args:
        n_workers: CPU workers when there is no GPU (default: one per core).
        gpus: GPU indices to use (default: all that NVML finds; ``[]`` forces CPU slots).
        dashboard: serve the Dask dashboard on a free loopback port.
        memory_limit: per-worker memory limit (Dask's notation).
        slots_per_gpu: worker processes (trial slots, ``{"GPU": 1}`` each) per GPU, as far as the
            GPU's free memory holds them, each with PyTorch's allocator capped at its share
            (default ``$DET_JUPYTER_SLOTS_PER_GPU``, else 1: one unpacked worker per GPU).

    Example:
        >>> c = local_cluster(n_workers=2, dashboard=False)   # doctest: +SKIP
        >>> c = local_cluster(slots_per_gpu=4)                # doctest: +SKIP
    """
    _refuse_unguarded_main()
    inventory = gpu_inventory()
    found = [g.index for g in inventory]
    if gpus is None:
        gpus = found
    elif found and set(gpus) - set(found):
        raise ClusterError(
            f"local_cluster(gpus={gpus}): GPU(s) {sorted(set(gpus) - set(found))} do not exist; NVML sees "
            f"{found}. Pass indices from that list, or gpus=[] for CPU slots"
        )
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    specs: dict[str, dict[str, Any]] = {}
    if gpus:
        specs = gpu_worker_specs(
            [g for g in inventory if g.index in gpus] or [_unknown_gpu(i) for i in gpus],
            _slots_per_gpu(slots_per_gpu),
            env,
            memory_limit,
        )
    else:
        count = max(1, n_workers if n_workers is not None else (os.cpu_count() or 1))
        for i in range(count):
            specs[f"cpu-{i}"] = _worker_spec({"CPU": 1}, {**env, "CUDA_VISIBLE_DEVICES": ""}, memory_limit)
    scheduler = {
        "cls": Scheduler,
        "options": {"host": "127.0.0.1", "dashboard": dashboard, "dashboard_address": "127.0.0.1:0"},
    }
    # A worker death fails the task at once (no silent Dask re-run), so the controller counts it
    # against max_restarts and resumes the trial from its latest checkpoint.
    logging.getLogger("distributed").setLevel(logging.WARNING)  # as LocalCluster(silence_logs=...) does
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        try:
            return SpecCluster(workers=specs, scheduler=scheduler, name="det-jupyter")
        except RuntimeError as exc:  # "Nanny failed to start": maybe workers that re-ran the script
            script = getattr(sys.modules.get("__main__"), "__file__", None)
            if not isinstance(script, str):
                raise
            raise ClusterError(
                f"the embedded cluster's worker processes did not start ({exc}). If the script {script} "
                f"starts it outside `{_GUARD}` (e.g. from a thread it starts at module level), wrap the "
                f"script's code in `{_GUARD}`"
            ) from exc


_GUARD = 'if __name__ == "__main__":'


def _refuse_unguarded_main() -> None:
    """Refuse to start worker processes from a script's unguarded module-level code, with the fix.

    Dask starts the workers with multiprocessing's ``spawn``, which imports the parent's ``__main__``
    script again in every worker (as ``__mp_main__``); code at its module level without the
    ``if __name__ == "__main__":`` guard would start a cluster in each worker, and multiprocessing
    answers each with a traceback ("...before the current process has finished its bootstrapping
    phase"). The parent raises one :class:`ClusterError` instead, before starting anything; a worker
    that gets here all the same exits quietly (the parent says why).
    """
    if dask.config.get("distributed.worker.multiprocessing-method", "spawn") == "fork":
        return  # no re-import of __main__
    if getattr(multiprocessing.current_process(), "_inheriting", False):  # multiprocessing's own test
        raise SystemExit(1)  # a spawned worker importing the parent's script: the parent reports it
    where = _module_level_main_call(sys._getframe(1))
    if where is not None and not _guarded(where[0], where[1]):
        raise ClusterError(_guard_advice(*where))


def _module_level_main_call(frame: FrameType | None) -> tuple[str, int] | None:
    """(file, line) of the ``__main__`` script's module-level statement under way in this call stack.

    ``None`` when ``__main__`` is no script file (a Jupyter kernel, ``python -c``) or the call does not
    come from its module-level code (a function called later, another thread).
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not isinstance(path, str):
        return None
    outer = None
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals is vars(main):
            outer = frame
        frame = frame.f_back
    if outer is None or os.path.realpath(outer.f_code.co_filename) != os.path.realpath(path):
        return None
    return path, outer.f_lineno


def _guarded(path: str, line: int) -> bool:
    """Whether ``line`` of the script ``path`` is in the body of an ``if __name__ == "__main__":``.

    Unreadable or unparsable source counts as guarded (never refuse on a guess).
    """
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"), path)
    except (OSError, SyntaxError, ValueError):
        return True
    return any(
        isinstance(node, ast.If)
        and _is_main_test(node.test)
        and node.body[0].lineno <= line <= (node.body[-1].end_lineno or node.body[-1].lineno)
        for node in ast.walk(tree)
    )


def _is_main_test(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    values = [s.value for s in sides if isinstance(s, ast.Constant)]
    return names == ["__name__"] and values == ["__main__"]


def _guard_advice(path: str, line: int) -> str:
    """The message: where the script starts the cluster unguarded, why that fails, and the two fixes."""
    code = linecache.getline(path, line).strip()
    return (
        f"the embedded Dask cluster was started by module-level code of the script {path} (line {line}: "
        f"`{code}`) outside `{_GUARD}`. Its worker processes are started with multiprocessing's 'spawn', "
        f"which runs the script's module-level code again in every worker. Fix: wrap the script's code "
        f"in `{_GUARD}` (define functions above it); or submit with det_jupyter.create_experiment(config, "
        "train) in master mode (the default: no master='inprocess', no cluster= Client), which needs no "
        "guard since the det-jupyter master owns the cluster"
    )


def _slots_per_gpu(value: int | None) -> int:
    """``slots_per_gpu`` given, else ``$DET_JUPYTER_SLOTS_PER_GPU``, else 1 (checked: a whole number >= 1)."""
    if value is None:
        text = os.environ.get(SLOTS_PER_GPU_ENV, "").strip() or "1"
        if not text.isdigit() or int(text) < 1:
            raise ClusterError(
                f"{SLOTS_PER_GPU_ENV}={text!r}: set it to a whole number of slots per GPU, e.g. 4"
            )
        return int(text)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ClusterError(f"local_cluster(slots_per_gpu={value!r}): pass a whole number >= 1, e.g. 4")
    return value


def _unknown_gpu(index: int) -> Any:
    """A GPU named by index that NVML cannot describe (no NVML): one unpacked slot."""
    from det_jupyter.worker.gpu import GpuInfo

    return GpuInfo(index, "", "", memory_total_mb=0.0, memory_used_mb=0.0, utilization_percent=float("nan"))


def gpu_worker_specs(
    gpus: list[Any], slots_per_gpu: int, env: dict[str, str], memory_limit: Any = "auto"
) -> dict[str, dict[str, Any]]:
    """The embedded cluster's GPU workers: ``slots_per_gpu`` processes per GPU as its free memory allows.

    One process per slot, each ``{"GPU": 1}``, pinned with ``CUDA_VISIBLE_DEVICES`` and, when packed,
    given ``DET_JUPYTER_GPU_MEMORY_FRACTION`` (applied by the worker preload
    :mod:`det_jupyter.worker.preload`). A GPU without room for any slot gets no worker (a
    :class:`PackingWarning` says why); no room anywhere is a :class:`ClusterError`.

    Example:
        >>> from det_jupyter.worker.gpu import GpuInfo
        >>> gpu = GpuInfo(0, "GPU-0", "H100", 81920.0, 1024.0, 0.0)
        >>> sorted(gpu_worker_specs([gpu], 2, {}))
        ['gpu-0-0', 'gpu-0-1']
    """
    specs: dict[str, dict[str, Any]] = {}
    known = [g for g in gpus if g.memory_total_mb > 0]
    plan = pack_gpus(known, slots_per_gpu)
    by_index = {p.index: p for p in plan}
    for gpu in gpus:
        packed = by_index.get(gpu.index)  # None: NVML cannot describe it (all slots, no cap)
        slots = packed.slots if packed is not None else slots_per_gpu
        if packed is not None and packed.reason:
            warnings.warn(f"GPU {gpu.index}: {packed.reason}", PackingWarning, stacklevel=3)
        for k in range(slots):
            worker_env = {**env, "CUDA_VISIBLE_DEVICES": str(gpu.index)}
            if packed is not None and packed.memory_fraction is not None:
                worker_env["DET_JUPYTER_GPU_MEMORY_FRACTION"] = f"{packed.memory_fraction:.4f}"
            name = f"gpu-{gpu.index}" if slots_per_gpu == 1 else f"gpu-{gpu.index}-{k}"
            specs[name] = _worker_spec(
                {"GPU": 1}, worker_env, memory_limit, preload=["det_jupyter.worker.preload"]
            )
    if not specs:
        raise ClusterError(
            f"no GPU has free memory for a slot of 1/{slots_per_gpu} of it ("
            + "; ".join(f"GPU {p.index}: {p.reason}" for p in plan)
            + "); free GPU memory, use fewer slots_per_gpu, or gpus=[] for CPU slots"
        )
    return specs


def _worker_spec(
    resources: dict[str, float], env: dict[str, str], memory_limit: Any, *, preload: list[str] | None = None
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "nthreads": 1,
        "resources": resources,
        "env": env,
        "memory_limit": memory_limit,
        "host": "127.0.0.1",
        "silence_logs": logging.WARNING,
    }
    # the workers' own output (native libraries, Dask) goes to <home>/logs/workers.log, not into the
    # fds they inherit from the kernel, which ipykernel shows in the running cell (worker/quiet.py)
    options["env"] = {**env, LOG_ENV: str(default_home() / "logs" / "workers.log")}
    options["preload"] = ["det_jupyter.worker.quiet", *(preload or [])]
    return {"cls": Nanny, "options": options}


def cluster_target(cluster: object) -> str | Client | None:
    """What ``cluster=`` names, as det_jupyter uses it: ``None``, a scheduler address, or a ``Client``.

    A cluster *object* (dask-jobqueue's ``SLURMCluster``, dask-kubernetes' ``KubeCluster``,
    dask-gateway's ``GatewayCluster``, a ``LocalCluster``, ...) becomes its ``tcp://`` scheduler
    address, which the det-jupyter master can join by itself (so the experiment outlives the kernel);
    one reachable only through its own client (``tls://`` with the object's certificates, dask-gateway's
    proxy) becomes ``cluster.get_client()``, which makes the submission in-process.

    Raises:
        TypeError: neither an address, a ``Client`` nor an object with ``scheduler_address`` or
            ``get_client()``.

    Example:
        >>> cluster_target("tcp://10.0.0.5:8786")
        'tcp://10.0.0.5:8786'
        >>> class Jobqueue:  # what dask-jobqueue / dask-kubernetes cluster objects offer
        ...     scheduler_address = "tcp://10.0.0.5:8786"
        >>> cluster_target(Jobqueue())
        'tcp://10.0.0.5:8786'
    """
    if cluster is None or isinstance(cluster, str | Client):
        return cluster
    address = getattr(cluster, "scheduler_address", None)
    if isinstance(address, str) and address.startswith("tcp://"):
        return address
    get_client = getattr(cluster, "get_client", None)
    if callable(get_client):
        client = get_client()
        if isinstance(client, Client):
            return client
    if isinstance(address, str) and address:
        return address  # e.g. tls:// with the TLS settings in Dask's config
    raise TypeError(
        f"cluster={cluster!r}: pass a scheduler address ('tcp://host:8786'), a distributed.Client, or a "
        "cluster object with a scheduler_address or get_client() (dask-jobqueue, dask-kubernetes, "
        "dask-gateway), or None for the embedded local cluster"
    )


def cluster(address: str | Client | object | None = None, **local_options: Any) -> Client:
    """A Dask client for experiments.

    Args:
        address: ``None`` for the embedded local cluster (started on first use) or, when the
            ``DET_JUPYTER_CLUSTER`` environment variable names a scheduler, that cluster; a scheduler
            address (``tcp://host:8786``) for an external cluster; an existing :class:`distributed.Client`;
            or a cluster object (dask-jobqueue, dask-kubernetes, dask-gateway: see :func:`cluster_target`).
        **local_options: passed to :func:`local_cluster` when the embedded cluster starts
            (``n_workers``, ``gpus``, ``slots_per_gpu``, ...).

    Workers need nothing installed beyond det_jupyter's dependencies: the per-worker state
    (:class:`~det_jupyter.worker.runtime.TrialWorkerPlugin`) attaches itself on a worker's first trial.
    GPU workers of an external cluster are best started with ``--preload det_jupyter.worker.preload``
    (:mod:`det_jupyter.worker.preload`: GPU pinning, memory caps).

    Example:
        >>> client = cluster()          # doctest: +SKIP
        >>> client.dashboard_link       # doctest: +SKIP
    """
    address = cluster_target(address)
    if address is None and os.environ.get("DET_JUPYTER_CLUSTER"):
        address = os.environ[
            "DET_JUPYTER_CLUSTER"
        ]  # a deployment's default cluster, like DASK_SCHEDULER_ADDRESS
    if isinstance(address, Client):
        client = address
    elif address is not None:
        with _embedded_lock:
            cached = _embedded.external.get(address)
        if cached is not None and cached.status not in ("closed", "closing"):
            return cached
        probe_scheduler(address, CONNECT_TIMEOUT)
        try:
            client = Client(address, timeout=f"{CONNECT_TIMEOUT}s", set_as_default=False)
            with _embedded_lock:
                _embedded.external[address] = client
        except OSError as exc:
            raise ClusterError(
                f"cannot reach a Dask scheduler at {address!r} ({exc}); check the address, or pass "
                "cluster=None to use the embedded local cluster"
            ) from exc
    else:
        with _embedded_lock:
            if _embedded.client is None or _embedded.client.status in ("closed", "closing"):
                _embedded.cluster = local_cluster(**local_options)
                _embedded.client = Client(_embedded.cluster, set_as_default=False)
            client = _embedded.client
    return client


CONNECT_TIMEOUT = 10.0
"""Seconds :func:`cluster` waits for a scheduler address to answer like a Dask scheduler."""


def probe_scheduler(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Check, within ``timeout`` seconds, that a ``tcp://`` address answers like a Dask scheduler.

    A Dask scheduler greets a new connection with its handshake at once. ``distributed.Client``
    trusts whatever answers: a peer that accepts and stays silent makes it wait forever, and an HTTP
    server (the dashboard port, 8787, given by mistake) makes it read ``HTTP/1.1`` as a frame length
    and try to allocate exabytes. This probe reads the peer's first bytes itself and raises a
    :class:`ClusterError` naming the address and the fix. Other protocols (``tls://``, ``ucx://``)
    are left to Dask.

    Raises:
        ClusterError: refused, silent, an HTTP server, or not speaking Dask's protocol.

    Example:
        >>> probe_scheduler("tcp://127.0.0.1:1", timeout=1)   # doctest: +ELLIPSIS
        Traceback (most recent call last):
        det_jupyter.errors.ClusterError: cannot reach a Dask scheduler at 'tcp://127.0.0.1:1' (...
    """
    from distributed.comm.addressing import parse_address, parse_host_port

    scheme, location = parse_address(address, strict=False)
    if scheme != "tcp":
        return
    fix = (
        "pass the scheduler's address (`dask scheduler` prints it: tcp://HOST:8786; 8787 is the "
        "dashboard), or cluster=None for the embedded local cluster"
    )
    try:
        host, port = parse_host_port(location)
        sock = socket.create_connection((host, port), timeout=timeout)
    except (OSError, ValueError) as exc:
        raise ClusterError(f"cannot reach a Dask scheduler at {address!r} ({exc}); {fix}") from None
    deadline = time.monotonic() + timeout
    try:
        first = _first_bytes(sock, deadline, min(1.0, timeout / 2))
        if not first:  # silent so far: an HTTP server waits for a request, so ask it
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            first = _first_bytes(sock, deadline, deadline - time.monotonic())
    finally:
        sock.close()
    if first.startswith(b"HTTP/"):
        raise ClusterError(f"{address!r} is an HTTP server (a Dask dashboard?), not a Dask scheduler; {fix}")
    if not first:
        raise ClusterError(
            f"{address!r} accepted the connection but did not answer like a Dask scheduler within "
            f"{timeout:g}s; {fix}"
        )
    if len(first) >= 8 and int.from_bytes(first[:8], "little") > 10_000:  # Dask's frame count
        raise ClusterError(f"{address!r} does not speak Dask's protocol (it sent {first[:16]!r}); {fix}")


def _first_bytes(sock: socket.socket, deadline: float, wait: float) -> bytes:
    """Up to 16 bytes the peer sends within ``wait`` s (never past ``deadline``); b"" if none."""
    data = b""
    end = min(deadline, time.monotonic() + max(wait, 0.0))
    while len(data) < 16 and (left := end - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(16 - len(data))
        except TimeoutError:
            break
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


def disconnect(address: str) -> None:
    """Close this process's client of the external cluster at ``address`` (a later :func:`cluster`
    reconnects); the cluster itself keeps running.

    Example:
        >>> disconnect("tcp://10.0.0.5:8786")   # no client of it: nothing to do
    """
    with _embedded_lock:
        client = _embedded.external.pop(address, None)
    if client is not None:
        client.close()


def shutdown_cluster() -> None:
    """Close the embedded cluster and clients of external ones (a later :func:`cluster` reconnects)."""
    with _embedded_lock:
        if _embedded.client is not None:
            _embedded.client.close()
        if _embedded.cluster is not None:
            _embedded.cluster.close()
        _embedded.client = _embedded.cluster = None
        for client in _embedded.external.values():
            client.close()
        _embedded.external.clear()


def slot_resource(client: Client, slots_per_trial: float, slot_type: SlotType = "auto") -> str | None:
    """The Dask resource a trial asks for (``"GPU"``, ``"CPU"``, or ``None`` if workers declare none).

    Raises :class:`ClusterError` when workers exist but none offers ``slots_per_trial`` such slots.
    Warns (:class:`PackingWarning`) when a fractional ``slots_per_trial`` cannot pack on any worker:
    Dask runs at most ``nthreads`` tasks at once on a worker, so ``{GPU: 0.25}`` trials share a
    ``GPU=1`` worker only if it has several threads.
    """
    workers = list(client.scheduler_info(n_workers=-1)["workers"].values())
    names = [str(w.get("name", w.get("id", ""))) for w in workers]
    name = slot_resource_of([w.get("resources") or {} for w in workers], slots_per_trial, slot_type, names)
    if name is not None and 0 < slots_per_trial < 1 and workers:
        packs = max(
            min(
                int(w.get("nthreads") or 1),
                int(float((w.get("resources") or {}).get(name, 0)) / slots_per_trial),
            )
            for w in workers
        )
        if packs <= 1:
            warnings.warn(
                f"resources.slots_per_trial={slots_per_trial} asks for a share of a {name} slot, but no worker "
                f"can run two such trials at once (one thread, or too small a {name} resource): trials run "
                "one at a time per worker. Start workers with several threads (dask worker --nthreads 4 "
                f"--resources {name}=1), or on the embedded cluster use slots_per_gpu "
                f"(${SLOTS_PER_GPU_ENV}=4) and slots_per_trial: 1",
                PackingWarning,
                stacklevel=2,
            )
    return name


def slot_resource_of(
    workers: list[dict[str, float]],
    slots_per_trial: float,
    slot_type: SlotType = "auto",
    names: list[str] | None = None,
) -> str | None:
    """:func:`slot_resource` over the workers' declared resources (e.g. a master's published summary).

    Example:
        >>> slot_resource_of([{"CPU": 1}, {"CPU": 1}], 1)
        'CPU'
        >>> slot_resource_of([{"GPU": 1}], 0.25)
        'GPU'
    """
    capacity: dict[str, float] = {}
    for resources in workers:
        for resource, amount in resources.items():
            capacity[resource] = max(capacity.get(resource, 0.0), float(amount))
    if slot_type == "gpu":
        name: str | None = "GPU"
    elif slot_type == "cpu":
        name = "CPU" if "CPU" in capacity or not workers else None
    else:
        name = "GPU" if "GPU" in capacity else "CPU" if "CPU" in capacity else None
    if name is None or not workers:
        return name
    if slots_per_trial > 1:  # a gang of ranks, one per worker process (engine/gang.py)
        from det_jupyter.engine.gang import capacity_error

        why = capacity_error(int(slots_per_trial), name, workers, names)
        if why is not None:
            raise ClusterError(why)
        return name
    if capacity.get(name, 0.0) < slots_per_trial:
        have = capacity.get(name, 0.0)
        raise ClusterError(
            f"resources.slots_per_trial={slots_per_trial} needs a worker with {slots_per_trial} {name} "
            f"slot(s), but the largest worker offers {have:g}; set resources.slots_per_trial to "
            f"{max(int(have), 1) if have >= 1 else f'{have:g} or less'}"
            " or add bigger workers"
        )
    return name


def cluster_summary(client: Client) -> dict[str, Any]:
    """Workers, their slots and GPUs (NVML, per worker), and the dashboard link."""
    from det_jupyter.worker.runtime import describe_worker

    try:
        workers = list(client.run(describe_worker, on_error="return").values())
    except OSError:
        workers = []
    workers = [w for w in workers if isinstance(w, dict)]
    return {
        "scheduler": client.scheduler.address if client.scheduler else None,
        "dashboard_link": dashboard_link(client),
        "workers": workers,
        "slots": {name: sum(float(w["resources"].get(name, 0)) for w in workers) for name in ("GPU", "CPU")},
    }


def dashboard_link(client: Client) -> str | None:
    """The Dask dashboard URL of a client's cluster, or ``None`` when it serves none."""
    try:
        return str(client.dashboard_link)
    except (KeyError, AttributeError, ValueError):
        return None
