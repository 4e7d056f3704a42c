"""``det.get_cluster_info()``: who this trial is (Determined's ``ClusterInfo``).

Example:
    >>> get_cluster_info() is None     # not inside a trial
    True
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

from det_jupyter.worker.context import TrialSpec, current_context

__all__ = ["ClusterInfo", "TrialInfo", "get_cluster_info"]


@dataclass(frozen=True)
class TrialInfo:
    """``info.trial``: the trial's ids, hyperparameters and seed."""

    trial_id: int
    experiment_id: int
    run_id: int
    hparams: dict[str, Any]
    trial_seed: int
    user_data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterInfo:
    """What Determined's ``det.get_cluster_info()`` returns, for a det_jupyter trial.

    Attributes:
        trial: ids, hparams and seed.
        latest_checkpoint: storage id to resume from (``core_context.checkpoint.restore_path(...)``),
            ``None`` on a fresh start.
        slot_ids: this trial's slots on this machine (GPU indices; ``[0]`` for one CPU slot).
        container_addrs: the address of each machine the trial runs on (one today).
        container_rank: this machine's index in ``container_addrs``.
        data: the config's ``data`` section.
    """

    trial: TrialInfo
    latest_checkpoint: str | None
    slot_ids: list[int]
    container_addrs: list[str]
    container_rank: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    cluster_id: str = "det-jupyter"
    task_type: str = "TRIAL"

    @property
    def task_id(self) -> str:
        return f"{self.trial.experiment_id}.{self.trial.trial_id}"

    @property
    def allocation_id(self) -> str:
        return f"{self.task_id}.{self.trial.run_id}"

    @property
    def user_data(self) -> dict[str, Any]:
        return self.trial.user_data


def get_cluster_info() -> ClusterInfo | None:
    """This trial's :class:`ClusterInfo`, or ``None`` outside a trial (as Determined off-cluster).

    Inside a notebook entrypoint it describes the running trial; inside a command entrypoint, the
    trial that started the process.
    """
    ctx = current_context()
    if ctx is not None:
        return _info(ctx.spec, ctx.checkpoint.latest)
    from det_jupyter.worker.bridge import read_spec

    spec = read_spec()
    return None if spec is None else _info(spec, spec.latest_checkpoint)


def _info(spec: TrialSpec, latest: str | None) -> ClusterInfo:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    gpus = [int(x) for x in visible.split(",") if x.strip().isdigit()]
    from det_jupyter.worker.ranks import CONTAINER_ADDRS_ENV, CONTAINER_RANK_ENV

    addrs = [a for a in os.environ.get(CONTAINER_ADDRS_ENV, "").split(",") if a]  # a multi-slot trial
    return ClusterInfo(
        trial=TrialInfo(spec.trial_id, spec.experiment_id, spec.run_id, dict(spec.hparams), spec.seed),
        latest_checkpoint=latest,
        slot_ids=gpus or [0],
        container_addrs=addrs or [_host_address()],
        container_rank=int(os.environ.get(CONTAINER_RANK_ENV, "0")) if addrs else 0,
        data=dict(spec.data),
    )


def _host_address() -> str:
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
