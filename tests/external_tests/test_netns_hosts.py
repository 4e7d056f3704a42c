"""Workers as separate hosts: each ``dask worker`` runs in its own network namespace (and UTS namespace,
so its own hostname), on a private subnet that exists only inside this test.

The test builds, with ``ip netns`` + veth pairs: a "lan" namespace holding a bridge; one namespace per
worker host plugged into it; and one veth into this (the root) namespace, where the scheduler and the
det-jupyter master live. The subnet is a free ``10.213.N.0/24`` (checked against this machine's
addresses and routes); no other non-loopback address is ever used. Everything is removed at the end,
processes first. Skipped, with the reason, where the machine does not allow ``ip netns add``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import det_jupyter
from det_jupyter import ExperimentState, TrialState
from external_tests.procs import DaskProcesses

pytestmark = pytest.mark.slow


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def _free_subnet() -> str:
    used = _ip("-o", "addr").stdout + _ip("route", "show", "table", "all").stdout
    for n in range(200, 255):
        prefix = f"10.213.{n}."
        if prefix not in used:
            return prefix
    pytest.skip("no free 10.213.N.0/24 subnet on this machine")


@dataclass
class Lan:
    """A private subnet: ``gateway`` is this namespace's address on it; ``hosts`` name -> (netns, ip)."""

    tag: str
    prefix: str
    gateway: str
    hosts: dict[str, tuple[str, str]] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)

    def wrap(self, host: str) -> list[str]:
        """Run a command on ``host``: in its network namespace, with its own hostname."""
        netns, _ = self.hosts[host]
        return [
            "ip",
            "netns",
            "exec",
            netns,
            "unshare",
            "--uts",
            "sh",
            "-c",
            'hostname "$0" && exec "$@"',
            host,
        ]


@pytest.fixture
def lan() -> Iterator[Lan]:
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        pytest.skip("needs the ip and unshare commands")
    tag = f"dj{os.getpid() % 10000}"
    probe = f"{tag}probe"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError) as exc:
        reason = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) else str(exc)
        pytest.skip(f"`ip netns add` is not allowed here: {reason}")
    _ip("netns", "del", probe)
    prefix = _free_subnet()
    net = Lan(tag, prefix, f"{prefix}1")
    try:
        switch = f"{tag}lan"
        _ip("netns", "add", switch)
        net.namespaces.append(switch)
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        # this namespace's leg: <tag>h (here, the gateway address) <-> <tag>hl (on the bridge)
        _ip("link", "add", f"{tag}h", "type", "veth", "peer", "name", f"{tag}hl")
        _ip("link", "set", f"{tag}hl", "netns", switch)
        _ip("-n", switch, "link", "set", f"{tag}hl", "master", "br0", "up")
        _ip("addr", "add", f"{net.gateway}/24", "dev", f"{tag}h")
        _ip("link", "set", f"{tag}h", "up")
        for i, host in enumerate(("host-a", "host-b")):
            netns, address, leg = f"{tag}{host[-1]}", f"{prefix}{11 + i}", f"{tag}{host[-1]}"
            _ip("netns", "add", netns)
            net.namespaces.append(netns)
            _ip("-n", netns, "link", "set", "lo", "up")
            _ip("link", "add", f"{leg}e", "type", "veth", "peer", "name", f"{leg}l")
            _ip("link", "set", f"{leg}e", "netns", netns)
            _ip("link", "set", f"{leg}l", "netns", switch)
            _ip("-n", switch, "link", "set", f"{leg}l", "master", "br0", "up")
            _ip("-n", netns, "addr", "add", f"{address}/24", "dev", f"{leg}e")
            _ip("-n", netns, "link", "set", f"{leg}e", "up")
            net.hosts[host] = (netns, address)
        yield net
    finally:
        for netns in reversed(net.namespaces):
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", f"{tag}h"], capture_output=True, timeout=30)  # gone already


def where_am_i(ctx: Any) -> None:
    import socket

    with ctx.checkpoint.restore() as path:
        start = int((path / "step").read_text()) if path is not None else 0
    print(f"on {socket.gethostname()} from step {start}")
    for step in range(start + 1, 31):
        time.sleep(0.05)
        ctx.report_training_metrics(step, {"loss": 1.0 / step})
        if step % 10 == 0:
            with ctx.checkpoint.save(step) as out:
                (out / "step").write_text(str(step))
    ctx.report_validation_metrics(30, {"val_loss": ctx.hparams["x"] ** 2})


def test_an_experiment_runs_across_worker_hosts_on_a_private_subnet(
    det_home: Path, tmp_path: Path, lan: Lan
) -> None:
    procs = DaskProcesses(tmp_path, host=lan.gateway)
    try:
        procs.start_scheduler()
        for host, (_, address) in lan.hosts.items():
            procs.start_worker(
                host, "--nthreads", "1", "--resources", "CPU=1", host=address, wrap=lan.wrap(host)
            )
        workers = procs.client.scheduler_info(n_workers=-1)["workers"]
        assert sorted(w["host"] for w in workers.values()) == sorted(a for _, a in lan.hosts.values())
        cfg = {
            "searcher": {"name": "random", "metric": "val_loss", "max_trials": 4, "max_concurrent_trials": 4},
            "hyperparameters": {"x": {"type": "double", "minval": -1, "maxval": 1}},
        }
        exp = det_jupyter.create_experiment(cfg, where_am_i, cluster=procs.address)  # the master joins it
        assert exp.wait(timeout=240) == ExperimentState.COMPLETED, exp.error
        assert [t.state for t in exp.trials()] == [TrialState.COMPLETED] * 4
        hosts = {line.split()[1] for t in exp.trials() for line in t.logs() if line.startswith("on ")}
        assert hosts == set(lan.hosts)  # both hosts ran trials
        assert {exp.store.get_trial(t.id).worker.split(":")[1].lstrip("/") for t in exp.trials()} == {
            a for _, a in lan.hosts.values()
        }
    finally:
        procs.close()
