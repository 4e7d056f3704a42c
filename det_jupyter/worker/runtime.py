"""What runs on a Dask worker: unpickle the model definition, build the trial context, run user code.

:func:`run_trial` is the one task function the controller submits. It never touches the store: its
events (metrics, checkpoints, log lines) go to the controller as Dask events on the experiment's
topic, and it returns a small summary (status, traceback, number of events sent, so the controller
knows when it has them all).

:class:`TrialWorkerPlugin` (a *named* Dask ``WorkerPlugin``) keeps per-worker state: the cache of
unpickled model definitions (keyed by digest, so each worker unpickles one definition once) and the
stop flags that ``ctx.should_stop()`` reads and the controller sets with :func:`request_stop`.

Example (the controller does this for you):
    >>> from det_jupyter.worker.runtime import TrialWorkerPlugin
    >>> TrialWorkerPlugin.name
    'det-jupyter'
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import socket
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import cloudpickle
from distributed import WorkerPlugin, get_worker

from det_jupyter.checkpoints import CheckpointStorage
from det_jupyter.worker.context import StopFlag, TrialContext, TrialSpec, running
from det_jupyter.worker.events import Exited, Log, LogLine, RunStatus, Started
from det_jupyter.worker.ranks import (
    RENDEZVOUS_TIMEOUT,
    GangRank,
    LogRelay,
    RankContext,
    RankFailed,
    RelaySink,
    is_peer_gone,
    rank_environment,
    rendezvous,
)
from det_jupyter.worker.sinks import DaskSink

__all__ = ["TrialWorkerPlugin", "allow_run", "call_entrypoint", "request_stop", "run_rank", "run_trial"]

StopKey = str  # the run's Dask task key: unique across experiments, stores and controllers


class TrialWorkerPlugin(WorkerPlugin):
    """Per-worker state of det_jupyter: model-definition cache and stop flags.

    Registered by the controller with ``client.register_plugin`` (idempotent, by name); a worker that
    somehow lacks it gets one on first use.
    """

    name = "det-jupyter"
    max_cached_definitions = 8

    def __init__(self) -> None:
        self._definitions: OrderedDict[str, Any] = OrderedDict()
        self._stops: dict[StopKey, tuple[StopFlag, float]] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {}  # shipped to workers empty; the lock and caches are per process

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]

    def setup(self, worker: Any) -> None:
        _install_output_router()

    def definition(self, digest: str, blob: bytes) -> Any:
        """The unpickled model definition for ``digest`` (unpickled once per worker)."""
        with self._lock:
            if digest in self._definitions:
                self._definitions.move_to_end(digest)
                return self._definitions[digest]
        obj = cloudpickle.loads(blob)
        with self._lock:
            self._definitions[digest] = obj
            while len(self._definitions) > self.max_cached_definitions:
                self._definitions.popitem(last=False)
        return obj

    def stop_flag(self, key: StopKey) -> StopFlag:
        """The flag of one trial run, created on first use (a stop may arrive before the run starts).

        Flags of runs that never came to this worker (stops are broadcast for queued runs) are
        forgotten after an hour.
        """
        now = time.monotonic()
        with self._lock:
            stale = [k for k, (_, born) in self._stops.items() if now - born > 3600 and k != key]
            for k in stale:
                del self._stops[k]
            return self._stops.setdefault(key, (StopFlag(), now))[0]

    def request_stop(self, key: StopKey) -> None:
        """Ask a trial run to stop at its next ``should_stop()`` check."""
        self.stop_flag(key).set()

    def allow(self, key: StopKey, time: float) -> None:
        """The searcher let a trial run continue past its validation at trial length ``time``."""
        self.stop_flag(key).allow(time)

    def release(self, key: StopKey) -> None:
        """Forget a finished run's flag."""
        with self._lock:
            self._stops.pop(key, None)


def _plugin(worker: Any) -> TrialWorkerPlugin:
    plugin = worker.plugins.get(TrialWorkerPlugin.name)
    if plugin is None:
        plugin = TrialWorkerPlugin()
        plugin.setup(worker)
        worker.plugins[TrialWorkerPlugin.name] = plugin
    return plugin  # type: ignore[no-any-return]


def request_stop(key: StopKey, dask_worker: Any = None) -> bool:
    """Run on a worker via ``client.run``: set the stop flag of one trial run."""
    worker = dask_worker if dask_worker is not None else get_worker()
    _plugin(worker).request_stop(key)
    return True


def allow_run(key: StopKey, time: float, dask_worker: Any = None) -> bool:
    """Run on a worker via ``client.run``: the searcher's "continue" for a run's validation at ``time``."""
    worker = dask_worker if dask_worker is not None else get_worker()
    _plugin(worker).allow(key, time)
    return True


def call_entrypoint(entrypoint: Any, ctx: TrialContext) -> None:
    """Run user code: ``Cls.run_trial(ctx)`` for trial classes (TorchTrial, KerasTrial), else ``fn(ctx)``."""
    run = getattr(entrypoint, "run_trial", None) if isinstance(entrypoint, type) else None
    if callable(run):
        run(ctx)
    elif callable(entrypoint):
        entrypoint(ctx)
    else:
        raise TypeError(
            f"entrypoint {entrypoint!r} is neither a function taking the trial context nor a trial class "
            "(subclass det_jupyter.torch.TorchTrial / det_jupyter.keras.KerasTrial)"
        )


def run_trial(spec: TrialSpec, blob: bytes, digest: str, gang: GangRank | None = None) -> dict[str, Any]:
    """The Dask task of one trial run. Returns ``{"status", "traceback", "events_sent", "stopped"}``.

    That dict is :meth:`Exited.summary() <det_jupyter.worker.events.Exited.summary>` of the run's
    last event. ``status`` is ``"completed"`` when user code returned and ``"error"`` when it raised
    (the traceback is also sent to the trial's log). A dying worker surfaces to the controller as a
    failed future.

    With ``gang`` (a multi-slot trial) this task is one rank of the run (:func:`run_rank`).
    """
    if gang is not None and gang.size > 1:
        return run_rank(spec, blob, digest, gang)
    worker = get_worker()
    plugin = _plugin(worker)
    key: StopKey = spec.run_key or f"{spec.experiment_id}-{spec.trial_id}-{spec.run_id}"
    spec = _newest_checkpoint(spec)
    ctx = TrialContext(spec, DaskSink(worker, spec.topic), plugin.stop_flag(key))
    ctx._emit(
        Started(
            worker=str(worker.address),
            host=socket.gethostname(),
            pid=os.getpid(),
            gpus=os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            restored_from=spec.latest_checkpoint,
        )
    )
    status, tb = RunStatus.COMPLETED, None
    try:
        entrypoint = plugin.definition(digest, blob)
        with _trial_environment(spec), _captured_output(ctx), running(ctx):
            _seed_everything(spec.seed)
            call_entrypoint(entrypoint, ctx)
    except BaseException as exc:  # user code may raise anything; report it, let the controller decide
        status, tb = RunStatus.ERROR, "".join(traceback.format_exception(exc))
        ctx._flush()
        now = time.time()
        ctx._emit(Log(tuple(LogLine(now, line) for line in tb.rstrip().splitlines())))
    finally:
        ctx._close()
        plugin.release(key)
    exited = Exited(status, tb, events_sent=ctx.events_sent, stopped=ctx._stop.is_set())
    # The summary also travels as the run's last event, so the controller need not fetch task results
    # (a round trip to the worker per trial); the return value is the fallback if that event is late.
    ctx._emit(exited)
    return exited.summary()


def run_rank(spec: TrialSpec, blob: bytes, digest: str, gang: GangRank) -> dict[str, Any]:
    """One rank of a multi-slot trial's run (the task the launcher submits per rank).

    All ranks meet first (:func:`~det_jupyter.worker.ranks.rendezvous`, then a barrier of
    ``ctx.distributed``), then run the entrypoint with the rank's environment (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``, ...). The chief (rank 0) is the run as the
    controller sees it: it sends the events and returns the summary; the other ranks' output reaches
    the trial's log through it, and a failing non-chief rank raises :class:`RankFailed` (so the
    launcher fails the whole run and stops the others). A command entrypoint keeps a one-process
    context on the worker: its own processes form the group (``det_jupyter.launch``).
    """
    from det_jupyter.worker.command import CommandEntrypoint
    from det_jupyter.worker.distributed import DistributedContext

    worker = get_worker()
    plugin = _plugin(worker)
    key: StopKey = spec.run_key or f"{spec.experiment_id}-{spec.trial_id}-{spec.run_id}"
    stop = plugin.stop_flag(key)
    spec = _newest_checkpoint(spec)
    authkey = bytes.fromhex(gang.authkey)
    host = str(worker.ip)
    relay_sink = None if gang.is_chief else RelaySink(gang.rank)
    sink: Any = DaskSink(worker, spec.topic) if relay_sink is None else relay_sink
    ctx = RankContext(spec, sink, stop)
    relay = LogRelay(ctx, host, authkey) if gang.is_chief else None
    if gang.is_chief:
        ctx._emit(
            Started(
                worker=str(worker.address),
                host=socket.gethostname(),
                pid=os.getpid(),
                gpus=os.environ.get("CUDA_VISIBLE_DEVICES", ""),
                restored_from=spec.latest_checkpoint,
            )
        )
    status, tb, secondary = RunStatus.COMPLETED, None, False
    dist: DistributedContext | None = None
    try:
        found = rendezvous(gang, host, relay.port if relay is not None else 0, stop)
        if relay_sink is not None:
            relay_sink.connect((found.chief_ip, found.log_port), authkey)
        entrypoint = plugin.definition(digest, blob)
        env = rank_environment(gang, found)
        with _trial_environment(spec, env):
            if not isinstance(entrypoint, CommandEntrypoint):  # a command's processes form the group
                dist = DistributedContext(
                    rank=gang.rank,
                    size=gang.size,
                    local_rank=0,
                    local_size=1,
                    cross_rank=gang.rank,
                    cross_size=gang.size,
                    chief_ip=found.chief_ip,
                    pub_port=found.dist_port,
                )
                dist.connect(RENDEZVOUS_TIMEOUT)  # a barrier: every rank is here
                ctx.distributed = dist
            with _captured_output(ctx), running(ctx):
                _seed_everything(spec.seed)
                call_entrypoint(entrypoint, ctx)
    except BaseException as exc:  # user code may raise anything; report it, let the controller decide
        status, tb = RunStatus.ERROR, "".join(traceback.format_exception(exc))
        secondary = is_peer_gone(exc)
        if gang.is_chief:
            ctx._flush()
        now = time.time()
        prefix = "" if gang.is_chief else f"[rank={gang.rank}] "
        lines = tuple(LogLine(now, prefix + line) for line in tb.rstrip().splitlines())
        if gang.is_chief:
            ctx._emit(Log(lines))
        else:
            sink.emit({"type": "log", "lines": [[ln.ts, ln.text] for ln in lines]})
    finally:
        _end_torch_distributed()
        if dist is not None:
            dist.close()
        if relay_sink is not None:
            relay_sink.close()
        if gang.is_chief:
            ctx._close()
        if relay is not None:
            relay.close()  # the other ranks' last lines first: they count in events_sent
        plugin.release(key)
    if not gang.is_chief:
        if status == RunStatus.ERROR:
            raise RankFailed(f"rank {gang.rank} of {gang.size} failed:\n{tb}", secondary)
        return {"status": status.value, "rank": gang.rank}
    exited = Exited(status, tb, events_sent=ctx.events_sent, stopped=stop.is_set())
    ctx._emit(exited)
    return exited.summary()


def _end_torch_distributed() -> None:
    """Destroy this process's ``torch.distributed`` group, if the trial made one (the next trial on
    this worker makes its own)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    with contextlib.suppress(Exception):
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _newest_checkpoint(spec: TrialSpec) -> TrialSpec:
    """Prefer the trial's newest committed checkpoint over the one in the task's arguments.

    They differ when Dask itself re-ran this task after its worker died: the arguments are then as
    old as the first submission, while the storage's pointer knows the latest commit.
    """
    storage = CheckpointStorage(spec.storage_url, spec.storage_options)
    latest = storage.read_latest(spec.experiment_id, spec.trial_id, experiment_key=spec.experiment_key)
    if latest is not None and (spec.latest_checkpoint is None or latest[1] > spec.latest_checkpoint_steps):
        return replace(spec, latest_checkpoint=latest[0], latest_checkpoint_steps=latest[1])
    return spec


@contextlib.contextmanager
def _trial_environment(spec: TrialSpec, extra: dict[str, str] | None = None) -> Iterator[None]:
    """Apply ``environment.env_vars`` (and ``extra``: a rank's variables) for the trial's duration
    (one trial per worker process)."""
    values = {**spec.env_vars, **(extra or {})}
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


# --- output capture ------------------------------------------------------------------------------


class _LineForwarder(io.TextIOBase):
    """Collects one trial thread's printed output and sends it as log events, in batches.

    A line waits at most ``interval`` seconds: a write flushes when the last flush is that old, and
    the worker process's flusher thread (:class:`_QuietOutputFlusher`) flushes what a quiet trial left
    buffered, so a print is sent even if no further print follows (and is not lost when the worker
    then dies).
    """

    def __init__(self, ctx: TrialContext, interval: float = 0.2) -> None:
        self._ctx = ctx
        self._partial = ""
        self._lines: list[LogLine] = []
        self._interval = interval
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._partial += text
            if "\n" not in self._partial:
                return len(text)
            *done, self._partial = self._partial.split("\n")
            now = time.time()
            self._lines += [LogLine(now, line) for line in done]
            due = time.monotonic() - self._last >= self._interval or len(self._lines) >= 500
        if due:
            self.flush()
        return len(text)

    def flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
            self._last = time.monotonic()
        if lines:
            self._ctx._emit(Log(tuple(lines)))

    def flush_pending(self) -> None:
        """Send buffered whole lines (the flusher thread calls it every half interval)."""
        if self._lines:
            self.flush()

    def close_out(self) -> None:
        with self._lock:
            if self._partial:
                self._lines.append(LogLine(time.time(), self._partial))
                self._partial = ""
        self.flush()


class _ThreadRouter(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr: writes from a trial's thread go to its forwarder too."""

    def __init__(self, original: Any) -> None:
        self.original = original
        self.routes: dict[int, _LineForwarder] = {}

    def write(self, text: str) -> int:
        forwarder = self.routes.get(threading.get_ident())
        if forwarder is not None:
            forwarder.write(text)
        return int(self.original.write(text))

    def flush(self) -> None:
        self.original.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.original, "encoding", "utf-8"))


def _install_output_router() -> None:
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, _ThreadRouter):
            setattr(sys, name, _ThreadRouter(stream))


class _QuietOutputFlusher:
    """One thread per worker process that sends what quiet trials left buffered, every ``period`` s.

    It replaced a flusher thread per run (started and joined by every trial: a measurable share of a
    trivial trial's cost, ``docs/benchmarks.md``). :meth:`remove` returns only once no flush of that
    forwarder is under way, so nothing of a run is sent after its ``exited`` event counted its events.
    The thread sleeps on a condition once no trial has run for ``linger`` s; while trials come and go it
    ticks every ``period`` s, so starting a trial wakes nobody.
    """

    def __init__(self, period: float = 0.1, linger: float = 2.0) -> None:
        self.period, self.linger = period, linger
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._forwarders: list[_LineForwarder] = []
        self._thread: threading.Thread | None = None
        self._sleeping = False

    def add(self, forwarder: _LineForwarder) -> None:
        with self._lock:
            self._forwarders.append(forwarder)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="det-jupyter-log-flush", daemon=True)
                self._thread.start()
            elif self._sleeping:
                self._wake.notify()

    def remove(self, forwarder: _LineForwarder) -> None:
        with self._lock:  # held by the flusher while it flushes
            self._forwarders = [f for f in self._forwarders if f is not forwarder]

    def _run(self) -> None:
        last_busy = time.monotonic()
        with self._lock:
            while True:
                if self._forwarders:
                    last_busy = time.monotonic()
                elif time.monotonic() - last_busy >= self.linger:
                    self._sleeping = True  # no trial for a while: sleep until one starts
                    self._wake.wait()
                    self._sleeping = False
                    last_busy = time.monotonic()
                    continue
                self._wake.wait(self.period)
                for forwarder in self._forwarders:
                    forwarder.flush_pending()


_flusher = _QuietOutputFlusher()


@contextlib.contextmanager
def _captured_output(ctx: TrialContext) -> Iterator[None]:
    _install_output_router()
    forwarder = _LineForwarder(ctx)
    ident = threading.get_ident()
    routers: list[_ThreadRouter] = [s for s in (sys.stdout, sys.stderr) if isinstance(s, _ThreadRouter)]
    for router in routers:
        router.routes[ident] = forwarder
    _flusher.add(forwarder)
    try:
        yield
    finally:
        _flusher.remove(forwarder)
        for router in routers:
            router.routes.pop(ident, None)
        forwarder.close_out()


def describe_worker(dask_worker: Any) -> dict[str, Any]:
    """Run on a worker via ``client.run``: its address, resources, pinned GPUs and their NVML state."""
    from det_jupyter.worker.gpu import gpu_inventory, visible_gpu_indices

    visible = visible_gpu_indices()
    gpus = [g.to_dict() for g in gpu_inventory() if visible is None or g.index in visible]
    return {
        "address": str(dask_worker.address),
        "name": str(dask_worker.name),
        "host": socket.gethostname(),
        "nthreads": int(dask_worker.state.nthreads),
        "resources": dict(dask_worker.state.total_resources),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "gpus": gpus,
    }
