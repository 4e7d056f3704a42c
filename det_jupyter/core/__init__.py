"""Determined's Core API, here: ``import det_jupyter as det`` where a script said ``import determined as det``.

A Determined Core API script runs unchanged after that one edit: ``det.core.init()`` gives the trial's
context, whose parts have Determined's names (``core_context.train``, ``.checkpoint``, ``.preempt``,
``.distributed``, ``.searcher``), and ``det.get_cluster_info()`` tells the trial who it is. The context
is the very :class:`~det_jupyter.worker.context.TrialContext` a notebook ``train(ctx)`` receives, so
the short notebook names (``ctx.report_training_metrics(steps, metrics)``, ``ctx.should_stop()``,
``ctx.checkpoint.save(steps)``) and Determined's (``core_context.train.report_training_metrics(
steps_completed=, metrics=)``, ``core_context.preempt.should_preempt()``,
``core_context.checkpoint.store_path(metadata)``) are the same calls.

Where :func:`init` is called decides what it returns:

- inside a notebook entrypoint (``train(ctx)`` on a worker): that trial's context;
- inside a command entrypoint (``entrypoint: python3 train.py``): a context connected to the worker
  that started the process (:mod:`det_jupyter.worker.bridge`);
- anywhere else (a script run by hand): an off-cluster context, as Determined's; metrics are kept in
  ``core_context.sink`` and checkpoints go to ``checkpoint_storage`` (a directory; default a temp dir).

Example:
    >>> import det_jupyter as det
    >>> with det.core.init() as core_context:
    ...     core_context.train.report_training_metrics(steps_completed=1, metrics={"loss": 0.5})
    ...     stop = core_context.preempt.should_preempt()
    >>> core_context.sink.training, stop
    ([{'steps': 1, 'metrics': {'loss': 0.5}}], False)
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from det_jupyter.core.cluster_info import ClusterInfo, TrialInfo, get_cluster_info
from det_jupyter.worker.checkpoint_context import CheckpointContext
from det_jupyter.worker.context import TrialContext, current_context, local_context
from det_jupyter.worker.distributed import DistributedContext
from det_jupyter.worker.subcontexts import (
    EarlyExitReason,
    PreemptContext,
    PreemptMode,
    SearcherContext,
    SearcherOperation,
    TrainContext,
)

__all__ = [
    "CheckpointContext",
    "ClusterInfo",
    "Context",
    "DistributedContext",
    "EarlyExitReason",
    "PreemptContext",
    "PreemptMode",
    "SearcherContext",
    "SearcherOperation",
    "TrainContext",
    "TrialInfo",
    "get_cluster_info",
    "init",
]

Context = TrialContext
"""Determined's ``core.Context`` is our trial context."""

_process_context: TrialContext | None = None
_lock = threading.Lock()


def init(
    *,
    distributed: DistributedContext | None = None,
    checkpoint_storage: str | dict[str, Any] | None = None,
    preempt_mode: PreemptMode = PreemptMode.WorkersAskChief,
    tensorboard_mode: Any = None,
    async_checkpointing: bool = False,
    **_: Any,
) -> TrialContext:
    """The trial's context (Determined's ``det.core.init()``); use it as ``with det.core.init() as core_context:``.

    Args:
        distributed: this process's place among the trial's processes (e.g.
            ``det.core.DistributedContext.from_torch_distributed()``); default: one process.
        checkpoint_storage: off-cluster only: a directory for checkpoints (on a cluster the
            experiment's ``checkpoint_storage`` is used).
        preempt_mode, tensorboard_mode, async_checkpointing: accepted for Determined compatibility.

    Example:
        >>> import det_jupyter as det
        >>> det.core.init(distributed=det.core.DistributedContext()).distributed.size
        1
    """
    global _process_context
    ctx = current_context()
    if ctx is None:
        with _lock:
            if _process_context is None:
                _process_context = _command_or_offline_context(checkpoint_storage)
            ctx = _process_context
    if distributed is not None:
        ctx.distributed = distributed
    return ctx


def _command_or_offline_context(checkpoint_storage: str | dict[str, Any] | None) -> TrialContext:
    from det_jupyter.worker.bridge import BRIDGE_ENV, connect

    if os.environ.get(BRIDGE_ENV):
        return connect()
    directory = (
        checkpoint_storage.get("host_path") if isinstance(checkpoint_storage, dict) else checkpoint_storage
    )
    logging.getLogger("det_jupyter.core").warning(
        "det.core.init() outside a det_jupyter trial: running off-cluster (metrics kept in "
        "core_context.sink, checkpoints in a local directory)"
    )
    return local_context({}, checkpoint_dir=directory)
