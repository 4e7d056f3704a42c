"""Server-extension latency on a big store: 10,000 trials x 100 metric points, through the REST API.

A real ``jupyter server`` subprocess (the extension as installed) reads a store written through the
Store API: one experiment of N trials (the sidebar's worst case: aggregates over all of them), each
with 90 training and 10 validation reports, a checkpoint and 50 log lines; plus 49 small experiments
so the list page is full. Each request is timed end to end over HTTP (urllib, token auth), warm.
Goal: every call < 200 ms.

Run:  .venv/bin/python bench/bench_server.py [--trials 10000] [--repeats 20] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _report import write_section

from det_jupyter.states import ExperimentState, TrialState
from det_jupyter.store import CheckpointRow, LogRow, MetricRow, Store

GOAL_MS = 200.0
POINTS = 100


def fill(store: Store, n_trials: int) -> tuple[int, int]:
    """The big experiment (returns its id and its last trial's id) and 49 small ones."""
    cfg = {"name": "big", "searcher": {"name": "random", "metric": "val_loss", "smaller_is_better": True}}
    big = store.create_experiment(name="big", config=cfg, entrypoint=b"", seed=0)
    last = 0
    batch = 500
    for start in range(0, n_trials, batch):
        with store.transaction():
            metrics, logs = [], []
            for request_id in range(start, min(start + batch, n_trials)):
                x = (request_id % 997) / 997
                tid = store.create_trial(
                    big, request_id, {"lr": 10 ** (-4 + 3 * x), "layers": request_id % 5}
                )
                last = tid
                store.update_trial(
                    tid,
                    state=TrialState.COMPLETED,
                    steps_completed=POINTS,
                    best_validation=x,
                    latest_validation=x,
                )
                for step in range(1, POINTS + 1):
                    if step % 10 == 0:
                        metrics.append(
                            MetricRow(tid, 0, "validation", step, {"val_loss": x + 1 / step}, float(step))
                        )
                    else:
                        metrics.append(
                            MetricRow(tid, 0, "training", step, {"loss": 1 / step, "lr": 0.1}, float(step))
                        )
                logs += [LogRow(tid, 0, float(i), f"epoch {i}: loss {1 / (i + 1):.4f}") for i in range(50)]
                store.add_checkpoint(
                    CheckpointRow.committed(
                        uuid=f"ckpt-{tid}",
                        trial_id=tid,
                        experiment_id=big,
                        run_id=0,
                        steps=POINTS,
                        metadata={"format": "torch-module"},
                        resources={"model.pt": 1000},
                        metric=x,
                    )
                )
            store.add_metrics(metrics)
            store.add_logs(logs)
    store.update_experiment(big, state=ExperimentState.COMPLETED, progress=1.0, ended_at=time.time())
    for i in range(49):
        small = store.create_experiment(name=f"small-{i}", config=cfg, entrypoint=b"", seed=i)
        tid = store.create_trial(small, 0, {"lr": 0.01})
        store.update_trial(tid, state=TrialState.ACTIVE, best_validation=0.5)
    return big, last


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        body: bytes = r.read()
        if r.status != 200:
            raise RuntimeError(f"{url}: HTTP {r.status}")
        return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--write", default=None, help="markdown file to write the result table into")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="bench_server_")
    home = Path(tmp.name)
    store = Store(home / "det_jupyter.db")
    t0 = time.perf_counter()
    big, last_trial = fill(store, args.trials)
    fill_s = time.perf_counter() - t0
    size_mb = (home / "det_jupyter.db").stat().st_size / 2**20
    print(f"store: {args.trials} trials x {POINTS} points written in {fill_s:.1f}s ({size_mb:.0f} MiB)")

    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "DET_JUPYTER_HOME": str(home), "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
    jupyter = str(Path(sys.executable).parent / "jupyter")
    argv = [
        jupyter,
        "server",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
    ]
    server = subprocess.Popen(
        [*argv, f"--IdentityProvider.token={token}", "--allow-root", f"--ServerApp.root_dir={home}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/det-jupyter/api"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(f"{base}/?token={token}")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        calls = [
            ("experiment list (50 per page)", "experiments?limit=50"),
            ("experiment detail + 50 trials", f"experiments/{big}?limit=50"),
            (
                "trial table, last page of 100",
                f"experiments/{big}/trials?limit=100&offset={args.trials - 100}",
            ),
            ("trial detail (series, ckpts, 100 log lines)", f"trials/{last_trial}"),
            ("metric series, max_points=50", f"trials/{last_trial}/metrics?max_points=50"),
        ]
        rows = []
        for label, path in calls:
            url = f"{base}/{path}{'&' if '?' in path else '?'}token={token}"
            size = len(_get(url))  # warm-up
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                _get(url)
                times.append((time.perf_counter() - t) * 1000)
            times.sort()
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            rows.append((label, path, statistics.median(times), p95, size))
            print(
                f"{label:<45} median {statistics.median(times):7.1f} ms  p95 {p95:7.1f} ms  {size / 1024:6.1f} KiB"
            )
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()

    tmp.cleanup()
    worst = max(r[3] for r in rows)
    verdict = "met" if worst < GOAL_MS else "NOT met"
    lines = [
        "## Server extension API on a 10,000-trial store",
        "",
        f"`bench/bench_server.py`: one experiment of {args.trials:,} trials x {POINTS} metric points "
        f"({args.trials * POINTS:,} metric rows, {size_mb:.0f} MiB SQLite) plus 49 small experiments, read "
        "by a real `jupyter server` over HTTP with token auth; warm, "
        f"{args.repeats} requests each. Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}. Goal: < {GOAL_MS:.0f} ms per call — **{verdict}** "
        f"(worst p95 {worst:.1f} ms).",
        "",
        "| call | path | median ms | p95 ms | response KiB |",
        "| --- | --- | ---: | ---: | ---: |",
        *[
            f"| {label} | `{path}` | {med:.1f} | {p95:.1f} | {size / 1024:.1f} |"
            for label, path, med, p95, size in rows
        ],
        "",
        "List and detail aggregate trials in SQL (`Store.trial_stats`: one GROUP BY per page) and page the "
        "trial table; metric series are downsampled on request (`?max_points=`).",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, "server", text)


if __name__ == "__main__":
    main()
