"""``python3 -m det_jupyter.launch.torch_distributed [--nproc N] -- CMD ...``: one process per slot.

Determined's ``determined.launch.torch_distributed``, for det_jupyter's command trials: it reads
``det.get_cluster_info()`` (``slot_ids`` of this container, ``container_addrs``, ``container_rank``)
and the chief's address and port that the trial's rendezvous published (``MASTER_ADDR``,
``MASTER_PORT``), then starts ``len(slot_ids)`` processes, each wrapped by
:mod:`~det_jupyter.launch.wrap_rank` (output lines tagged ``[rank=R]``) with torchrun's variables:
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``GROUP_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``. So the script may call ``torch.distributed.init_process_group("gloo"|"nccl")`` and
``det.core.init(distributed=det.core.DistributedContext.from_torch_distributed())``.

When one process fails, the others get SIGTERM; the exit status is the first failure's.

Example (outside a trial: one process, as ``torchrun --nproc-per-node 1``):
    >>> import subprocess, sys
    >>> out = subprocess.run([sys.executable, "-m", "det_jupyter.launch.torch_distributed", "--",
    ...                       sys.executable, "-c", "import os; print(os.environ['RANK'], os.environ['WORLD_SIZE'])"],
    ...                      capture_output=True, text=True)
    >>> out.stdout
    '[rank=0] 0 1\\n'
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

__all__ = ["DEFAULT_PORT", "main", "rank_envs"]

DEFAULT_PORT = 29400
"""``MASTER_PORT`` when no rendezvous published one (a script run by hand)."""


def rank_envs(
    *, nproc: int, container_rank: int, containers: int, master_addr: str, master_port: int
) -> list[dict[str, str]]:
    """The variables of each local process (torchrun's names).

    Example:
        >>> [e["RANK"] for e in rank_envs(nproc=2, container_rank=1, containers=2,
        ...                                 master_addr="10.0.0.1", master_port=1234)]
        ['2', '3']
    """
    return [
        {
            "RANK": str(container_rank * nproc + local),
            "WORLD_SIZE": str(containers * nproc),
            "LOCAL_RANK": str(local),
            "LOCAL_WORLD_SIZE": str(nproc),
            "GROUP_RANK": str(container_rank),
            "NODE_RANK": str(container_rank),
            "MASTER_ADDR": master_addr,
            "MASTER_PORT": str(master_port),
        }
        for local in range(nproc)
    ]


def main(argv: list[str] | None = None) -> int:
    """Start one wrapped process per slot, wait for them all; the first failure's exit status (or 0)."""
    import det_jupyter as det

    parser = argparse.ArgumentParser(prog="python3 -m det_jupyter.launch.torch_distributed")
    parser.add_argument(
        "--nproc", type=int, default=None, help="processes here (default: this container's slots)"
    )
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- the script and its arguments")
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("give the command to run after --")
    info = det.get_cluster_info()
    slots = len(info.slot_ids) if info is not None else 1
    nproc = args.nproc or slots
    containers = len(info.container_addrs) if info is not None else 1
    container_rank = info.container_rank if info is not None else 0
    master_addr = os.environ.get("MASTER_ADDR") or (info.container_addrs[0] if info else "127.0.0.1")
    master_port = int(os.environ.get("MASTER_PORT") or DEFAULT_PORT)
    envs = rank_envs(
        nproc=nproc,
        container_rank=container_rank,
        containers=containers,
        master_addr=master_addr,
        master_port=master_port,
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "det_jupyter.launch.wrap_rank", env["RANK"], "--", *cmd],
            env={**os.environ, **env},
        )
        for env in envs
    ]

    def forward(signum: int, _frame: object) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    status = 0
    while any(proc.poll() is None for proc in procs):
        failed = [p.returncode for p in procs if p.returncode not in (None, 0)]
        if failed and status == 0:
            status = failed[0]
            forward(signal.SIGTERM, None)  # one rank failed: the others would wait for it forever
        time.sleep(0.1)
    if status == 0:
        status = next((p.returncode for p in procs if p.returncode != 0), 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
