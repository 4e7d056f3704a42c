"""Bookkeeping overhead: N trivial trials x 10 reports through det_jupyter vs raw Dask, Optuna, Ray Tune.

det_jupyter and raw Dask do the same work on the same warm LocalCluster (2 single-thread worker
processes with CPU slots): N tasks, each sending 10 metric reports to the client over Dask events.
det_jupyter adds the searcher, the controller, the SQLite store and the trial context. Goal: <= 2x raw
Dask at every size, <= 1.5x at 10,000 trials (issue 12), with the seconds per 1,000 trials at each size
to show how the cost scales. Anchors run in the benchmark's own venv (``bench/_anchors.py``; never det_jupyter dependencies):
Optuna (same objective, in-memory storage and SQLite storage, sequential as its default) and Ray Tune
(default ``Tuner``; minutes per run, so only with ``--ray``).

Submit → first metric in the kernel is measured by ``bench/bench_latency.py`` (its own section).

Run:  .venv/bin/python bench/bench_trials.py [--trials 200,1000,10000] [--repeats 3] [--ray] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
from typing import Any

from _anchors import anchor_python
from _common import Goal, interleaved, machine, machine_line, median, write_json, write_section

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
    done.wait(60 + n / 100)
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
    state = exp.wait(timeout=600 + n / 10)
    elapsed = time.perf_counter() - t0
    assert state.value == "COMPLETED", exp.error
    rows = len(exp.metrics())
    assert rows == n * REPORTS, f"det_jupyter lost metrics: {rows}"
    return elapsed


def run_anchor(python: str, script: str, *args: str, timeout: float = 900) -> dict[str, Any]:
    """Run an anchor script in its own venv; returns its JSON line."""
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run(
        [python, os.path.join(here, script), *args], capture_output=True, text=True, timeout=timeout
    )
    if out.returncode != 0:
        raise RuntimeError(f"{script} failed:\n{out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _cause(results: dict[int, dict[str, list[float]]], n: int) -> str:
    """Per-1,000-trial cost at this size vs the smallest: says whether the bookkeeping grows with N."""
    first = min(results)
    per = {k: {p: median(v) / k * 1000 for p, v in res.items()} for k, res in results.items()}
    text = (f"det_jupyter {per[n]['engine']:.2f} s per 1,000 trials at {n:,} vs raw Dask {per[n]['raw']:.2f} s; "
            f"at {first:,}: {per[first]['engine']:.2f} vs {per[first]['raw']:.2f} s")  # fmt: skip
    if n != first and per[n]["engine"] > 1.5 * per[first]["engine"]:
        text += (": det_jupyter's cost per trial grows with the number of trials in the experiment (the "
                 "per-pass searcher save is gone since 2026-11-29: profile the controller again, see the note "
                 "in docs/benchmarks.md)")  # fmt: skip
    return text


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", default="200,1000,10000", help="comma-separated trial counts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 repeat")
    parser.add_argument("--ray", action="store_true", help="also run Ray Tune (minutes per run)")
    parser.add_argument("--no-anchors", action="store_true", help="skip Optuna and Ray Tune")
    parser.add_argument("--write", default=None, help="markdown file to write the table into")
    parser.add_argument("--json", default=None, help="write a summary for bench/run.py")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    sizes = [int(n) for n in args.trials.split(",")]
    os.environ["DET_JUPYTER_HOME"] = tempfile.mkdtemp(prefix="det-bench-")

    from distributed import Client

    from det_jupyter.engine.cluster import local_cluster

    anchors = None if args.no_anchors else anchor_python(["optuna"] + (["ray[tune]"] if args.ray else []))
    cluster = local_cluster(n_workers=2, gpus=[], dashboard=False)
    client = Client(cluster, set_as_default=False)
    run_raw(client, 20)  # warm both paths: imports, worker plugin, store file
    run_engine(client, 20)
    results: dict[int, dict[str, list[float]]] = {}
    versions: dict[str, str] = {}
    for n in sizes:
        runners: dict[str, Any] = {
            "raw": lambda n=n: run_raw(client, n),
            "engine": lambda n=n: run_engine(client, n),
        }
        if anchors:
            # Optuna's SQLite storage commits every report: ~0.1-0.2 s a trial here, minutes at 1,000
            for storage in ("memory", "sqlite") if n <= 200 else ("memory",):

                def optuna(n: int = n, storage: str = storage) -> float:
                    res = run_anchor(anchors, "_anchor_optuna.py", "--trials", str(n), "--storage", storage)
                    versions["optuna"] = res["version"]
                    return float(res["seconds"])

                runners[f"optuna-{storage}"] = optuna
        results[n] = {
            k: [float(v) for v in vs] for k, vs in interleaved(runners, repeats, warmup=False).items()
        }
    client.close()
    cluster.close()
    ray: dict[str, Any] | None = None
    if anchors and args.ray:
        ray = run_anchor(anchors, "_anchor_raytune.py", "--trials", str(sizes[0]), timeout=1800)
        versions["ray"] = ray["version"]

    info = machine()
    goals: list[Goal] = []
    lines = [
        f"### Trial bookkeeping: N trivial trials x {REPORTS} reports (median of {repeats}, interleaved)",
        "",
        machine_line(info) + " LocalCluster of 2 single-thread worker processes (CPU slots). "
        "Goal: det_jupyter <= 2x raw Dask, <= 1.5x at 10,000 trials. Anchors: raw Dask (floor), Optuna "
        f"{versions.get('optuna', '(not run)')} sequential in one process (in-memory / SQLite storage), "
        "Ray Tune default `Tuner`.",
        "",
        "| N | path | seconds | seconds per 1,000 trials | trials/s | ratio to raw Dask (spread) |",
        "|---|---|---|---|---|---|",
    ]
    labels = {
        "raw": "raw Dask (submit + 10 log_event each)",
        "engine": "det_jupyter (searcher + controller + SQLite store)",
        "optuna-memory": "Optuna, in-memory storage",
        "optuna-sqlite": "Optuna, SQLite storage",
    }
    summary: dict[str, Any] = {}
    for n, res in results.items():
        r = median(res["raw"])
        for key, label in labels.items():
            if key not in res:
                continue
            t = median(res[key])
            pairs = [a / b for a, b in zip(res[key], res["raw"])]
            spread = f" ({min(pairs):.2f}-{max(pairs):.2f})" if len(pairs) > 1 and key != "raw" else ""
            lines.append(
                f"| {n} | {label} | {t:.3f} | {t / n * 1000:.2f} | {n / t:.0f} | {t / r:.2f}{spread} |"
            )
            summary[f"{key}_{n}_s"] = t
        ratio = median(res["engine"]) / r
        target = 1.5 if n >= 10_000 else 2.0
        goals.append(
            Goal(
                f"det_jupyter / raw Dask, {n} trials",
                ratio,
                f"<= {target}",
                ratio <= target,
                "" if ratio <= target else _cause(results, n),
            )
        )
    big = [n for n in results if n > 200]
    if big and anchors:
        lines.append(f"| {','.join(map(str, big))} | Optuna, SQLite storage: not run (it commits every report: "
                     "~0.1-0.2 s a trial here, minutes per run) | | | | |")  # fmt: skip
    if ray is not None:
        n = sizes[0]
        t = float(ray["seconds"])
        lines.append(
            f"| {n} | Ray Tune {ray['version']} default Tuner (1 run; `ray.init` not timed) | "
            f"{t:.1f} | {t / n * 1000:.1f} | {n / t:.1f} | {t / median(results[n]['raw']):.0f} |"
        )
        summary[f"ray_{n}_s"] = t
    else:
        lines.append(
            "| 200 | Ray Tune default Tuner: **not re-measured in this run**. Figure from issue 5 (measured "
            "earlier on this machine). Ray 2.60.0 installs here (`--ray` measures it), but one 200-trial run "
            "took 758 s on 2026-11-23 while other work shared the machine, too long for the suite | 250.6 | "
            "1253 | 0.8 | ~500 |"
        )
    lines += ["", *Goal.table(goals, "{:.2f}")]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, "trials", text)
    payload = {"name": "trials", "goals": [g.as_dict() for g in goals], "figures": summary}
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
