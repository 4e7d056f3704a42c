"""Latency and streaming: submit → first metric in the kernel, and 1,000 metrics/s with none lost.

1. **Submit → first metric** on a warm cluster (2 worker processes, CPU slots): ``create_experiment``
   of a 1-trial experiment whose code reports one validation at once; the kernel polls the store
   (as the widget does) until the row is there. p50 and p95 over ~30 experiments, one after another.
   Goal p50 <= 100 ms. Anchor (Dask's floor): submit a raw task that calls ``log_event`` at once,
   until the client's ``subscribe_topic`` handler receives it. Each experiment row also splits the
   time: kernel-side ``create_experiment``, until the trial code reports (scheduling, worker), and
   until the row is committed and visible.
2. **Streaming**: two trials report training metrics at 500/s each (1,000 metrics/s in all) for ~10 s;
   every report must reach the store (rows counted), and the report → visible-in-store delay is
   measured by polling every 50 ms (p50/p95; training reports are buffered 0.2 s on the worker).

Run:  .venv/bin/python bench/bench_latency.py [--quick] [--write docs/benchmarks.md] [--json F]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from typing import Any

from _common import Goal, machine, machine_line, median, write_json, write_section


def first_metric(ctx: Any) -> None:
    ctx.report_validation_metrics(1, {"val_loss": 0.5})


def streaming(ctx: Any) -> None:
    rate, seconds = ctx.hparams["rate"], ctx.hparams["seconds"]
    n = int(rate * seconds)
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        ctx.report_training_metrics(i, {"loss": 1.0 / i, "step_time": 0.001})
    ctx.report_validation_metrics(n, {"val_loss": 0.0})


def raw_first_event(topic: str) -> float:
    from distributed import get_worker

    get_worker().log_event(topic, {"steps": 1, "metrics": {"val_loss": 0.5}})
    return 0.0


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def run_raw(client: Any, resource: str) -> float:
    got = threading.Event()
    stamp: list[float] = []
    topic = f"raw-latency-{time.monotonic_ns()}"

    def on_event(event: Any) -> None:
        stamp.append(time.perf_counter())
        got.set()

    client.subscribe_topic(topic, on_event)
    t0 = time.perf_counter()
    fut = client.submit(raw_first_event, topic, resources={resource: 1}, pure=False)
    got.wait(30)
    fut.result()
    client.unsubscribe_topic(topic)
    return stamp[0] - t0


def run_engine(client: Any, poll: float = 0.001) -> dict[str, float]:
    import det_jupyter

    cfg = {
        "name": "bench-latency",
        "searcher": {"name": "single", "metric": "val_loss", "max_time": 1, "time_metric": "batches"},
        "hyperparameters": {"x": 1},
    }
    t_wall, t0 = time.time(), time.perf_counter()
    exp = det_jupyter.create_experiment(cfg, first_metric, cluster=client)
    t_created = time.perf_counter()
    store = exp.store
    while True:
        rows = store.metrics(experiment_id=exp.id)
        if rows:
            break
        time.sleep(poll)
    t_seen = time.perf_counter()
    exp.wait(timeout=60)
    reported = rows[0].reported_at - t_wall  # worker clock, same host
    return {
        "total": t_seen - t0,
        "create": t_created - t0,
        "to_report": reported,
        "report_to_store": (t_seen - t0) - reported,
    }


def run_streaming(client: Any, rate: float, seconds: float) -> dict[str, Any]:
    import det_jupyter

    per_trial = rate / 2
    cfg = {
        "name": "bench-streaming",
        "searcher": {"name": "random", "metric": "val_loss", "max_trials": 2, "max_concurrent_trials": 2,
                     "max_time": 1, "time_metric": "batches"},
        "hyperparameters": {"rate": per_trial, "seconds": seconds},
    }  # fmt: skip
    exp = det_jupyter.create_experiment(cfg, streaming, cluster=client)
    store = exp.store
    last, delays = 0, []
    while not exp.state.is_terminal:
        last, rows = store.metrics_since(experiment_id=exp.id, after_id=last)
        now = time.time()
        delays += [now - r.reported_at for r in rows if r.kind == "training"]
        time.sleep(0.05)
    last, rows = store.metrics_since(experiment_id=exp.id, after_id=last)
    now = time.time()
    delays += [now - r.reported_at for r in rows if r.kind == "training"]
    training = len(store.metrics(experiment_id=exp.id, kind="training"))
    expected = 2 * int(per_trial * seconds)
    return {"state": exp.state.value, "rows": training, "expected": expected,
            "p50_delay": pct(delays, 0.5), "p95_delay": pct(delays, 0.95), "max_delay": max(delays)}  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--experiments", type=int, default=None)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--write", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    n = args.experiments or (15 if args.quick else 30)
    seconds = args.seconds or (5.0 if args.quick else 10.0)
    os.environ["DET_JUPYTER_HOME"] = tempfile.mkdtemp(prefix="det-bench-latency-")

    from distributed import Client

    from det_jupyter.engine.cluster import local_cluster, slot_resource

    cluster = local_cluster(n_workers=2, gpus=[], dashboard=False)
    client = Client(cluster, set_as_default=False)
    resource = slot_resource(client, 1, "auto") or "CPU"
    for _ in range(3):  # warm: imports, worker plugin, definition cache, store file
        run_raw(client, resource)
        run_engine(client)
    raw, engine = [], []
    for _ in range(n):  # alternate, so drift hits both
        raw.append(run_raw(client, resource))
        engine.append(run_engine(client))
    print(f"[latency] streaming {args.rate:.0f} metrics/s for {seconds:.0f} s", flush=True)
    stream = run_streaming(client, args.rate, seconds)
    client.close()
    cluster.close()

    totals = [e["total"] for e in engine]
    p50, p95 = median(totals) * 1000, pct(totals, 0.95) * 1000
    r50, r95 = median(raw) * 1000, pct(raw, 0.95) * 1000
    parts = {k: median([e[k] for e in engine]) * 1000 for k in ("create", "to_report", "report_to_store")}
    lost = stream["expected"] - stream["rows"]
    goals = [
        Goal("submit → first metric in the kernel, p50 (ms)", p50, "<= 100", p50 <= 100,
             "see the split: the part over the Dask floor is ours" if p50 > 100 else ""),
        Goal(f"metrics lost at {args.rate:.0f}/s for {seconds:.0f} s", float(lost), "0", lost == 0,
             "" if lost == 0 else "rows missing in the store"),
    ]  # fmt: skip
    info = machine(torch_needed=False)
    lines = [
        f"### Latency and streaming ({n} experiments, one after another, warm cluster)",
        "",
        machine_line(info)
        + " LocalCluster of 2 single-thread worker processes; the kernel polls the store every 1 ms.",
        "",
        "| path | p50 ms | p95 ms |",
        "|---|---|---|",
        f"| Dask floor: submit a raw task → its first `log_event` in the client | {r50:.1f} | {r95:.1f} |",
        f"| det_jupyter: `create_experiment` → first metric row visible in the store | {p50:.1f} | {p95:.1f} |",
        "",
        f"Split of the det_jupyter median: `create_experiment` returns after {parts['create']:.1f} ms "
        f"(config, freeze, store row, controller thread); the trial code reports at {parts['to_report']:.1f} ms "
        f"(controller setup, submission, worker); the row is committed and visible {parts['report_to_store']:.1f} ms "
        "after the report (Dask event, controller loop, SQLite commit).",
        "",
        f"Streaming: 2 trials x {args.rate / 2:.0f} training reports/s for {seconds:.0f} s: {stream['rows']:,} of "
        f"{stream['expected']:,} rows in the store ({lost} lost); report → visible in the store p50 "
        f"{stream['p50_delay'] * 1000:.0f} ms, p95 {stream['p95_delay'] * 1000:.0f} ms, max "
        f"{stream['max_delay'] * 1000:.0f} ms (training reports are buffered 0.2 s on the worker by design; "
        "validations are sent at once).",
        "",
        *Goal.table(goals, "{:.1f}"),
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, "latency", text)
    payload = {"name": "latency", "goals": [g.as_dict() for g in goals],
               "figures": {"p50_ms": p50, "p95_ms": p95, "raw_p50_ms": r50, **parts, **stream}}  # fmt: skip
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
