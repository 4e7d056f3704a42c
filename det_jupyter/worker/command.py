"""Entrypoints from a model directory: a shell command (Determined's Core API way, IBM's
``execution.command``), or ``module:Class`` imported from the directory.

Both are frozen into the experiment like a notebook function (they are picklable values holding the
:class:`~det_jupyter.worker.model_dir.ModelDirectory`), so the worker runtime calls them as
``entrypoint(ctx)``.

:class:`CommandEntrypoint` runs the command in the run's working copy of the directory:

- the command is a string run by ``/bin/sh -c`` (``${DATA_DIR}`` and friends expand) or a list run
  as is; ``{hparams.NAME}`` (dotted for nested hparams) is replaced by the trial's value;
- ``python``/``python3`` resolve to the worker's interpreter (its directory leads ``PATH``), the
  working copy leads ``PYTHONPATH``, ``PYTHONUNBUFFERED=1``;
- ``DET_TRIAL_ID``, ``DET_EXPERIMENT_ID``, ``DET_HPARAMS`` (JSON), ``DATA_DIR`` (``data.data_dir``: a
  local path as is, a remote fsspec URL downloaded once per worker) and ``RESULT_DIR``
  (``data.result_dir``: files written there end up under ``URL/<experiment>/<trial>/``) are set;
- inside, ``det.core.init()`` reaches this run through :mod:`~det_jupyter.worker.bridge`;
- stdout and stderr become the trial's log; exit status 0 is a completed run, anything else an error
  whose message ends with the last lines of stderr;
- a stop request (searcher, pause, kill) reaches the process through ``should_preempt()``; one that
  does not exit within :data:`STOP_GRACE` seconds gets SIGTERM, then SIGKILL.

Example:
    >>> from det_jupyter.worker.context import local_context
    >>> ctx = local_context({"lr": 0.5})
    >>> CommandEntrypoint("echo lr={hparams.lr}")(ctx)
    >>> [e["lines"][0][1] for e in ctx.sink.events if e["type"] == "log"]
    ['lr=0.5']
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from det_jupyter.worker.bridge import BridgeServer
from det_jupyter.worker.context import TrialContext
from det_jupyter.worker.data import local_data as _local_data
from det_jupyter.worker.model_dir import ModelDirectory, worker_scratch

__all__ = ["STOP_GRACE", "CommandEntrypoint", "CommandFailed", "DirectoryEntrypoint", "render_command"]

STOP_GRACE = 60.0
"""Seconds a command may take to exit after a stop request before it gets SIGTERM (SIGKILL 10 s later)."""
STDERR_TAIL = 30
"""Lines of stderr a failed command's error message ends with."""

_HPARAM = re.compile(r"\{hparams\.([A-Za-z_][\w.\-]*)\}")

# On Linux, the child asks the kernel for SIGKILL when the worker process dies (prctl
# PR_SET_PDEATHSIG), then execs the shell: no command outlives its worker. A tiny exec shim, not a
# preexec_fn, which is unsafe in a multi-threaded process such as a Dask worker.
_SHIM = (
    "import ctypes, os, signal, sys\n"
    "try:\n"
    "    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)\n"
    "except Exception:\n"
    "    pass\n"
    "os.execvp(sys.argv[1], sys.argv[1:])\n"
)


class CommandFailed(RuntimeError):
    """A command entrypoint exited with a non-zero status."""


def render_command(command: str | tuple[str, ...], hparams: Mapping[str, Any]) -> str | tuple[str, ...]:
    """Replace ``{hparams.NAME}`` with the trial's values (nested names dotted).

    Example:
        >>> render_command("train.py --lr {hparams.lr} --d {hparams.opt.decay}", {"lr": 0.1, "opt": {"decay": 0.9}})
        'train.py --lr 0.1 --d 0.9'
        >>> render_command(("train.py", "--n={hparams.n}"), {"n": 3})
        ('train.py', '--n=3')
    """

    def value(match: re.Match[str]) -> str:
        node: Any = hparams
        for part in match.group(1).split("."):
            if not isinstance(node, Mapping) or part not in node:
                known = ", ".join(sorted(hparams)) or "none"
                raise KeyError(
                    f"the command uses {match.group(0)} but this trial has no such hyperparameter "
                    f"(hyperparameters: {known})"
                )
            node = node[part]
        return str(node)

    if isinstance(command, str):
        return _HPARAM.sub(value, command)
    return tuple(_HPARAM.sub(value, part) for part in command)


@dataclass(frozen=True)
class CommandEntrypoint:
    """Run a command per trial, in a working copy of the model directory (if any).

    Attributes:
        command: a shell string or an argument list.
        model_dir: the packaged model directory; ``None`` runs in an empty directory.
    """

    command: str | tuple[str, ...]
    model_dir: ModelDirectory | None = None

    @property
    def __name__(self) -> str:  # entrypoint_name() and messages
        return self.command if isinstance(self.command, str) else " ".join(self.command)

    def __call__(self, ctx: TrialContext) -> None:
        label = f"e{ctx.experiment_id}-t{ctx.trial_id}-r{ctx.run_id}"
        with self._workdir(label) as workdir, _result_dir(ctx, workdir) as result_dir:
            env = self._env(ctx, workdir, result_dir)
            with BridgeServer(ctx) as bridge:
                env.update(bridge.env())
                _run(render_command(self.command, ctx.hparams), workdir, env, ctx)

    @contextlib.contextmanager
    def _workdir(self, label: str) -> Iterator[Path]:
        if self.model_dir is not None:
            with self.model_dir.working_copy(label) as path:
                yield path
            return
        path = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=worker_scratch("trials")))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def _env(self, ctx: TrialContext, workdir: Path, result_dir: Path | None) -> dict[str, str]:
        env = dict(os.environ)  # the runtime has applied environment_variables already
        bindir = os.path.dirname(sys.executable)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(workdir), env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        env["DET_TRIAL_ID"] = str(ctx.trial_id)
        env["DET_EXPERIMENT_ID"] = str(ctx.experiment_id)
        env["DET_HPARAMS"] = json.dumps(ctx.hparams, default=str)
        data_dir = ctx.data.get("data_dir")
        if data_dir:
            env["DATA_DIR"] = str(_local_data(str(data_dir), ctx.data.get("storage_options") or {}))
        if result_dir is not None:
            env["RESULT_DIR"] = str(result_dir)
        return env


@dataclass(frozen=True)
class DirectoryEntrypoint:
    """``module:Attr`` imported from the model directory (a TorchTrial / KerasTrial subclass, a
    ``train(ctx)`` function), then run as a notebook entrypoint would be.

    Example:
        >>> import io, zipfile
        >>> buf = io.BytesIO()
        >>> with zipfile.ZipFile(buf, "w") as zf:
        ...     zf.writestr("model_def_doc.py", "def train(ctx):\\n    ctx.log('from the directory')\\n")
        >>> ep = DirectoryEntrypoint("model_def_doc:train", ModelDirectory.from_zip_bytes(buf.getvalue(), "m"))
        >>> ep.resolve().__name__
        'train'
    """

    target: str
    model_dir: ModelDirectory

    @property
    def __name__(self) -> str:
        return self.target

    def resolve(self) -> Any:
        """Import the target from this worker's unpacked copy of the directory."""
        import importlib

        root = str(self.model_dir.unpacked())
        if root not in sys.path:
            sys.path.insert(0, root)
        module_name, _, attr = self.target.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj

    def __call__(self, ctx: TrialContext) -> None:
        from det_jupyter.worker.runtime import call_entrypoint

        call_entrypoint(self.resolve(), ctx)

    def load_checkpoint(self, path: Path, hparams: Mapping[str, Any], **kwargs: Any) -> Any:
        """``Checkpoint.load()`` of an experiment run from a directory: the target's own loader."""
        target = self.resolve()
        loader = getattr(target, "load_checkpoint", None)
        if not callable(loader):
            raise AttributeError(f"{self.target} has no load_checkpoint(path, hparams)")
        return loader(path, hparams, **kwargs)


# --- running the process ---------------------------------------------------------------------------


def _run(command: str | tuple[str, ...], workdir: Path, env: dict[str, str], ctx: TrialContext) -> None:
    from det_jupyter.worker.runtime import _LineForwarder

    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    if sys.platform.startswith("linux"):
        argv = [sys.executable, "-c", _SHIM, *argv]
    proc = subprocess.Popen(
        argv,
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: a stop escalation reaches its children
    )
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
    out, err = _LineForwarder(ctx), _LineForwarder(ctx)
    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        threading.Thread(target=_pump, args=(proc.stdout, out, None), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, err, tail), daemon=True),
    ]
    for reader in readers:
        reader.start()
    _wait(proc, ctx)
    for reader in readers:
        reader.join()
    out.close_out()
    err.close_out()
    if proc.returncode != 0:
        shown = " ".join(argv[-1:] if isinstance(command, str) else command)
        why = f"signal {-proc.returncode}" if proc.returncode < 0 else f"status {proc.returncode}"
        last = "\n".join(tail) or "(stderr was empty)"
        raise CommandFailed(f"command `{shown}` exited with {why}; last lines of stderr:\n{last}")


def _pump(stream: IO[bytes], forwarder: Any, tail: collections.deque[str] | None) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        forwarder.write(line)
        if tail is not None:
            tail.append(line.rstrip("\n"))
    stream.close()


def _wait(proc: subprocess.Popen[bytes], ctx: TrialContext) -> None:
    """Wait for the process; after a stop request, give it :data:`STOP_GRACE` s, then SIGTERM, SIGKILL."""
    while proc.poll() is None:
        if not ctx._stop.wait(0.5):
            continue
        try:
            proc.wait(STOP_GRACE)
            return
        except subprocess.TimeoutExpired:
            ctx.log(f"[det_jupyter] the command did not exit {STOP_GRACE:g}s after a stop request: SIGTERM")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        return


# --- data and results --------------------------------------------------------------------------------


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


@contextlib.contextmanager
def _result_dir(ctx: TrialContext, workdir: Path) -> Iterator[Path | None]:
    """``$RESULT_DIR`` for the run: ``URL/<experiment>/<trial>`` itself when local, else a local
    directory uploaded there when the command ends (whatever its status)."""
    url = ctx.data.get("result_dir")
    if not url:
        yield None
        return
    suffix = f"{ctx.experiment_id}/{ctx.trial_id}"
    url = str(url).rstrip("/")
    if _is_local(url):
        path = Path(os.path.expanduser(url.removeprefix("file://"))) / suffix
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    local = workdir / ".det-results"
    local.mkdir()
    try:
        yield local
    finally:
        import fsspec

        fs, path = fsspec.core.url_to_fs(url, **(ctx.data.get("storage_options") or {}))
        if any(local.iterdir()):
            fs.put(str(local) + "/", f"{path}/{suffix}/", recursive=True)
