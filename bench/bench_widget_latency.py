"""Widget latency: from a worker's report to the point in the ExperimentWidget's figure data.

A real experiment on a LocalCluster (2 single-thread worker processes, CPU slots) whose trials report
a training loss every ``--period`` seconds and a validation metric every ``--val-every`` steps. An
:class:`~det_jupyter.notebook.widget.widget.ExperimentWidget` follows it with its own background thread at the
default refresh interval (0.5 s). For every point we take the worker's report time (``reported_at``
in the store, set by ``ctx.report_*`` on the worker; same host, same clock) and the moment the point
first appears in the figure's trace data (recorded right after each draw). The path measured: the
worker's report buffer (training reports are batched up to 0.2 s), Dask events, the controller's
write-behind batch into SQLite, the widget's incremental read and its batched figure update.

It also counts the comm messages each figure sends (what the browser has to digest). Goals: p95 < 1 s;
<= 10 messages/s per figure.

Run:  .venv/bin/python bench/bench_widget_latency.py [--trials 4] [--steps 150] [--write docs/benchmarks.md]
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

from _report import write_section


def paced_trial(ctx: Any) -> None:
    """A training report every ``period`` seconds, a validation every ``val_every`` steps."""
    period, val_every = ctx.hparams["period"], ctx.hparams["val_every"]
    start = time.perf_counter()
    for step in range(1, ctx.searcher.max_time + 1):
        time.sleep(max(0.0, start + step * period - time.perf_counter()))
        ctx.report_training_metrics(step, {"loss": ctx.hparams["x"] / step})
        if step % val_every == 0:
            ctx.report_validation_metrics(step, {"val_loss": ctx.hparams["x"] + 1 / step})


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    import plotly.graph_objects as go
    from distributed import Client

    import det_jupyter
    from det_jupyter.engine.cluster import local_cluster
    from det_jupyter.notebook.widget.widget import ExperimentWidget

    go.FigureWidget()  # the first FigureWidget of a process loads plotly's 5 MB bundle (~2 s): not measured
    cluster = local_cluster(n_workers=2, gpus=[], dashboard=False)
    client = Client(cluster, set_as_default=False)
    seen: dict[tuple[str, int, int], float] = {}  # (kind, trial, steps) -> first time in the figure data
    sends: dict[str, list[float]] = {"training": [], "validation": []}

    class TimedWidget(ExperimentWidget):
        """Notes when each point first appears in a figure's data, right after the draw."""

        def _draw_figure(self, kind: str) -> None:
            super()._draw_figure(kind)
            now = time.time()
            for trial_id, trace in self.figures[kind].traces.items():
                for steps in trace.x:
                    seen.setdefault((kind, trial_id, int(steps)), now)

    config = {
        "name": "bench-widget",
        "searcher": {"name": "random", "metric": "val_loss", "max_trials": args.trials, "max_time": args.steps,
                     "time_metric": "batches", "max_concurrent_trials": 2},
        "hyperparameters": {"x": {"type": "double", "minval": 0, "maxval": 1}, "period": args.period,
                            "val_every": args.val_every},
    }  # fmt: skip
    exp = det_jupyter.create_experiment(config, paced_trial, cluster=client)
    widget = TimedWidget(exp)
    for kind, fig in (("training", widget.training_figure), ("validation", widget.validation_figure)):
        send = fig._send

        def counting(*a: Any, _kind: str = kind, _send: Any = send, **k: Any) -> Any:
            sends[_kind].append(time.time())
            return _send(*a, **k)

        fig._send = counting
    started = time.time()
    widget.start()
    state = exp.wait(timeout=600)
    deadline = time.monotonic() + 10
    while widget.refreshing and time.monotonic() < deadline:  # it draws the final state, then stops
        threading.Event().wait(0.05)
    ended = time.time()
    assert state.value == "COMPLETED", exp.error
    latencies: dict[str, list[float]] = {"training": [], "validation": []}
    missing = 0
    for row in exp.store.metrics(experiment_id=exp.id):
        shown = seen.get((row.kind, row.trial_id, row.steps))
        if shown is None:
            missing += 1
        else:
            latencies[row.kind].append(shown - row.reported_at)
    client.close()
    cluster.close()
    duration = ended - started
    rates = {}
    for kind, times in sends.items():
        peak = max((sum(1 for u in times if t <= u < t + 1.0) for t in times), default=0)
        rates[kind] = (len(times), len(times) / duration, peak)
    return {"latencies": latencies, "missing": missing, "rates": rates, "duration": duration,
            "refreshes": widget.refreshes}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--period", type=float, default=0.02, help="seconds between training reports")
    parser.add_argument("--val-every", type=int, default=5)
    parser.add_argument("--write", default=None, help="markdown file to write the table into")
    args = parser.parse_args()
    os.environ["DET_JUPYTER_HOME"] = tempfile.mkdtemp(prefix="det-bench-widget-")
    res = run(args)
    lat, rates = res["latencies"], res["rates"]
    every = lat["training"] + lat["validation"]
    p95 = percentile(every, 0.95)
    worst_rate = max(peak for _, _, peak in rates.values())
    lines = [
        f"### Widget latency: worker report → point in the figure data ({args.trials} trials x {args.steps} steps)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; LocalCluster of "
        f"2 single-thread worker processes; a training report every {args.period * 1000:.0f} ms per trial, a "
        f"validation every {args.val_every} steps; the widget refreshes from the store every 0.5 s (its default). "
        f"{time.strftime('%Y-%m-%d')}; other benchmarks shared the machine.",
        "",
        "| goal | measured | target | met |",
        "|---|---|---|---|",
        f"| worker report → point in the figure data, p95 (s) | {p95:.3f} | < 1 | "
        f"{'yes' if p95 < 1.0 else f'**no**: p50 {statistics.median(every):.3f} s, max {max(every):.3f} s'} |",
        f"| comm messages per figure, peak in any 1 s | {worst_rate} | <= 10 | "
        f"{'yes' if worst_rate <= 10 else '**no**: see the figure table'} |",
        "",
        "| reports | count | p50 (s) | p95 (s) | max (s) |",
        "|---|---|---|---|---|",
    ]
    for kind in ("training", "validation"):
        values = lat[kind]
        lines.append(f"| {kind} | {len(values)} | {statistics.median(values):.3f} | "
                     f"{percentile(values, 0.95):.3f} | {max(values):.3f} |")  # fmt: skip
    lines.append(
        f"| **all** | {len(every)} | {statistics.median(every):.3f} | **{p95:.3f}** | {max(every):.3f} |"
    )
    lines += [
        "",
        "| figure | messages | mean messages/s | peak messages in any 1 s |",
        "|---|---|---|---|",
    ]
    for kind, (count, mean, peak) in rates.items():
        lines.append(f"| {kind} | {count} | {mean:.1f} | {peak} |")
    lines += [
        "",
        f"{res['refreshes']} refreshes in {res['duration']:.1f} s; points never drawn: {res['missing']}. "
        "Messages are counted at the figure's comm (`_send`): one per figure update (plotly sends four; "
        "`figures.py` merges them).",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, "widget", text)


if __name__ == "__main__":
    main()
