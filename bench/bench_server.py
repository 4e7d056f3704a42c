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
RUNNING = 100
"""Trials of the big experiment still running (the sidebar polls a live experiment)."""


def fill(store: Store, n_trials: int) -> tuple[int, int]:
    """The big experiment (returns its id and its last trial's id) and 49 small ones."""
    cfg = {"name": "big", "searcher": {"name": "random", "metric": "val_loss", "smaller_is_better": True,
                                       "max_trials": n_trials + 100, "max_time": POINTS, "time_metric": "batches"}}  # fmt: skip
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
                running = request_id >= n_trials - RUNNING  # the newest still train: a live experiment
                store.update_trial(
                    tid,
                    state=TrialState.ACTIVE if running else TrialState.COMPLETED,
                    steps_completed=POINTS // 2 if running else POINTS,
                    best_validation=x,
                    latest_validation=x,
                    started_at=time.time(),
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
    store.update_experiment(big, state=ExperimentState.ACTIVE, progress=0.9)
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


def before_after(store: Store, big: int, n_trials: int, rounds: int) -> list[tuple[str, float, float]]:
    """In process, alternating round by round: the per-experiment path the service took before the
    aggregate query (every trial row read per experiment listed, and per trial-table page) and the
    service now. Returns ``(call, before median ms, now median ms)``."""
    from det_jupyter.server.serializers import (
        best_trial_id,
        serialize_experiment_summary,
        serialize_trial_detail,
        serialize_trial_summary,
    )
    from det_jupyter.server.service import ExperimentService

    service = ExperimentService(store_path=str(store.path), revive_master=False)

    def list_before() -> object:
        rows = store.list_experiments(limit=50, offset=0)
        ids = [r.id for r in rows]
        stats, bests = store.trial_stats(ids), store.best_validations(ids)
        return [
            serialize_experiment_summary(r, stats[r.id], bests[r.id], store.list_trials(r.id)) for r in rows
        ]

    def table_before() -> object:
        trials = store.list_trials(big)
        best = best_trial_id(trials, smaller_is_better=True)
        return [serialize_trial_summary(t, max_time=POINTS, best_id=best) for t in trials[n_trials - 100 :]]

    last = store.list_trials(big, limit=1, offset=n_trials - 1)[0].id

    def detail_before() -> object:
        row = store.get_trial(last)
        best = best_trial_id(store.list_trials(big), smaller_is_better=True)
        _, _, logs = store.logs_since(last, tail=100)
        return serialize_trial_detail(row, store.metrics(trial_id=last), store.checkpoints(trial_id=last), logs,
                                      max_points=500, logs_cursor=0, max_time=POINTS, best_id=best)  # fmt: skip

    pairs = [
        ("experiment list (50 per page)", list_before, lambda: service.list_experiments(limit=50, offset=0)),
        ("trial detail (series, ckpts, 100 log lines)", detail_before,
         lambda: service.trial(last, max_points=500, logs_tail=100)),
        ("trial table, last page of 100", table_before,
         lambda: service.trials(big, limit=100, offset=n_trials - 100)),
    ]  # fmt: skip
    out = []
    try:
        for label, before, now in pairs:
            times: dict[str, list[float]] = {"before": [], "now": []}
            for i in range(rounds):
                for name, fn in (
                    (("before", before), ("now", now)) if i % 2 == 0 else (("now", now), ("before", before))
                ):
                    t = time.perf_counter()
                    fn()
                    times[name].append((time.perf_counter() - t) * 1000)
            out.append((label, statistics.median(times["before"]), statistics.median(times["now"])))
            print(f"{label:<45} before {out[-1][1]:7.1f} ms  now {out[-1][2]:7.1f} ms (median, in process)")
    finally:
        service.close()
    return out


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
        "--ExperimentService.revive_master=False",  # the ACTIVE experiments here have no code to run
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

    compared = before_after(store, big, args.trials, max(4, args.repeats // 2))
    tmp.cleanup()
    lines = [
        f"## Server extension API on a {args.trials:,}-trial store",
        "",
        f"`bench/bench_server.py`: one live experiment of {args.trials:,} trials ({RUNNING} still running) x "
        f"{POINTS} metric points ({args.trials * POINTS:,} metric rows, {size_mb:.0f} MiB SQLite) plus 49 small "
        "experiments, read by a real `jupyter server` over HTTP with token auth; warm, "
        f"{args.repeats} requests each. Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; {time.strftime('%Y-%m-%d')}; other benchmarks shared the machine.",
        "",
        "| goal | measured | target | met |",
        "|---|---|---|---|",
        *[
            f"| {label}, p95 (ms) | {p95:.1f} | < {GOAL_MS:.0f} | "
            f"{'yes' if p95 < GOAL_MS else f'**no**: median {med:.1f} ms on a loaded 2-core machine'} |"
            for label, _path, med, p95, _size in rows
        ],
        "",
        "| call | path | median ms | p95 ms | response KiB |",
        "| --- | --- | ---: | ---: | ---: |",
        *[
            f"| {label} | `{path}` | {med:.1f} | {p95:.1f} | {size / 1024:.1f} |"
            for label, path, med, p95, size in rows
        ],
        "",
        "The list, the experiment detail, the trial table and the trial detail read no trial rows beyond the "
        "page they show: "
        "`Store.experiment_aggregates` gives trials per state, the metric range, the work done "
        "(`store/progress.py`'s rule summed in SQL) and the first start (one GROUP BY per page), "
        "`Store.best_trial_ids` the best trial (one window query); metric series are downsampled on request "
        "(`?max_points=`). Before, the service read every trial row of each experiment listed, and of the "
        "experiment whose trial page or trial it served; the same calls in process, alternating round by "
        "round (medians):",
        "",
        "| call (in process) | per-experiment trial rows (before), ms | aggregate query (now), ms | before ÷ now |",
        "| --- | ---: | ---: | ---: |",
        *[f"| {label} | {b:.1f} | {n:.1f} | {b / n:.1f}x |" for label, b, n in compared],
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, "server", text)


if __name__ == "__main__":
    main()
