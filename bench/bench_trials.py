"""Bookkeeping overhead: N trivial trials x 10 reports through det_jupyter vs raw Dask, same cluster, one run.

Both sides do the same work on the same warm LocalCluster (2 single-thread worker processes with
CPU slots): N tasks, each sending 10 metric reports to the client over Dask events. det_jupyter adds
the searcher, the controller, the SQLite store and the trial context. Goal: ratio <= 2x.

Run:  .venv/bin/python bench/bench_trials.py [--trials 200] [--repeats 3] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import threading
import time
from typing import Any

REPORTS = 10


def trivial_trial(ctx: Any) -> None:
    for step in range(1, REPORTS + 1):
        ctx.report_validation_metrics(step, {"val_loss": ctx.hparams["x"] / step})


def raw_task(topic: str, x: float) -> float:
    from distributed import get_worker

    worker = get_worker()
    for step in range(1, REPORTS + 1):
        worker.log_event(topic, {"steps": step, "metrics": {"val_loss": x / step}})
    return x


def run_raw(client: Any, n: int) -> float:
    received = []
    done = threading.Event()
    topic = f"raw-{time.monotonic_ns()}"

    def on_event(event: Any) -> None:
        received.append(event)
        if len(received) == n * REPORTS:
            done.set()

    client.subscribe_topic(topic, on_event)
    t0 = time.perf_counter()
    futures = [client.submit(raw_task, topic, i / n, resources={"CPU": 1}, pure=False) for i in range(n)]
    client.gather(futures)
    done.wait(60)
    elapsed = time.perf_counter() - t0
    client.unsubscribe_topic(topic)
    assert len(received) == n * REPORTS, f"raw Dask lost events: {len(received)}"
    return elapsed


def run_engine(client: Any, n: int) -> float:
    import det_jupyter

    cfg = {
        "name": "bench-trivial",
        "searcher": {"name": "random", "metric": "val_loss", "max_trials": n, "max_time": REPORTS,
                     "time_metric": "batches", "max_concurrent_trials": 0},
        "hyperparameters": {"x": {"type": "double", "minval": 0, "maxval": 1}},
    }  # fmt: skip
    t0 = time.perf_counter()
    exp = det_jupyter.create_experiment(cfg, trivial_trial, cluster=client)
    state = exp.wait(timeout=600)
    elapsed = time.perf_counter() - t0
    assert state.value == "COMPLETED", exp.error
    rows = len(exp.metrics())
    assert rows == n * REPORTS, f"det_jupyter lost metrics: {rows}"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", default=None, help="markdown file to write the table into")
    args = parser.parse_args()
    os.environ["DET_JUPYTER_HOME"] = tempfile.mkdtemp(prefix="det-bench-")

    from distributed import Client

    from det_jupyter.cluster import local_cluster

    cluster = local_cluster(n_workers=2, gpus=[], dashboard=False)
    client = Client(cluster, set_as_default=False)
    run_raw(client, 20)  # warm both paths: imports, worker plugin, store file
    run_engine(client, 20)
    raw, engine = [], []
    for _ in range(args.repeats):  # interleaved, so drift hits both sides alike
        raw.append(run_raw(client, args.trials))
        engine.append(run_engine(client, args.trials))
    client.close()
    cluster.close()
    r, e = statistics.median(raw), statistics.median(engine)
    lines = [
        f"### Trial bookkeeping: {args.trials} trivial trials x {REPORTS} reports (median of {args.repeats})",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        "LocalCluster of 2 single-thread worker processes. Goal: det_jupyter <= 2x raw Dask.",
        "",
        "| path | seconds | trials/s | ratio to raw Dask |",
        "|---|---|---|---|",
        f"| raw Dask (submit + 10 log_event each) | {r:.3f} | {args.trials / r:.0f} | 1.00 |",
        f"| det_jupyter (searcher + controller + store) | {e:.3f} | {args.trials / e:.0f} | {e / r:.2f} |",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        _write_section(args.write, "trials", text)


def _write_section(path: str, name: str, text: str) -> None:
    """Replace (or append) the section between markers in the benchmarks markdown file."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    try:
        with open(path) as f:
            doc = f.read()
    except FileNotFoundError:
        doc = "# Benchmarks\n\nNumbers measured by `bench/`; each table states its machine and goal.\n"
    block = f"{begin}\n{text}\n{end}"
    if begin in doc and end in doc:
        doc = doc[: doc.index(begin)] + block + doc[doc.index(end) + len(end) :]
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(doc)


if __name__ == "__main__":
    main()
