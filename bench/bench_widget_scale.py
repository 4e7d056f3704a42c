"""The experiment widget at scale: 1,000 trials x 1,000 points, watched while a few trials still report.

A store is written directly through :class:`~det_jupyter.store.Store` (fast, no cluster): one
experiment of ``--trials`` trials, each with ``--points`` training reports (``loss``) and a validation
(``val_loss``) every 10 steps; the last ``--running`` trials start empty and a *writer subprocess*
(so its CPU is not the kernel's) appends their reports for ``--watch`` seconds, ``--rate`` steps per
second each, in write-behind batches every 0.1 s as the controller does, with ``reported_at`` = the
moment of the write. An :class:`~det_jupyter.notebook.widget.widget.ExperimentWidget` is attached
headless (no browser; ipywidgets talks to a dummy comm, which this bench patches to JSON-encode
and count every message, as a kernel would have to).

Measured: attach time (until the widget is built, i.e. the cell returns: it reads the first chunk of
reports; then until its thread has read the rest and drawn every curve), the kernel's resident memory
after it (and the model's own count of the bytes its columns of reports hold); during the watch, with
the time of each stage (a report's write → the refresh that reads it → the draw): refreshes per
second (goal <= 2 Hz, the rate between the first and the last refresh start), comm messages per
second per figure (goal <= 10, peak over any 1 s), report → figure latency (goal p95 < 1 s: from a
report's write to the first draw whose trace for that trial reaches its step; traces are
downsampled, so "reaches" is the newest point, which is always kept), and the kernel's CPU share
while watching (``time.process_time`` over wall time; goal <= 10 % of a core).

Run:  .venv/bin/python bench/bench_widget_scale.py [--trials 1000] [--points 1000] [--watch 20]
                                                    [--write docs/benchmarks.md]
      (quick: --trials 200 --points 300 --watch 10; full: the defaults, about 1.5 minutes)
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from typing import Any

from _report import write_section

from det_jupyter.notebook.widget.model import READ_BATCH, READ_CHUNK
from det_jupyter.states import ExperimentState, TrialState
from det_jupyter.store import MetricRow, Store

VAL_EVERY = 10
BATCH_SECONDS = 0.1


def fill(store: Store, trials: int, points: int, running: int) -> tuple[int, list[int]]:
    """The experiment; returns its id and the ids of the trials still to report."""
    config = {
        "name": "scale",
        "searcher": {"name": "random", "metric": "val_loss", "smaller_is_better": True, "max_trials": trials,
                     "max_time": points, "time_metric": "batches"},
        "hyperparameters": {"lr": {"type": "log", "base": 10, "minval": -4, "maxval": -1}},
    }  # fmt: skip
    exp = store.create_experiment(name="scale", config=config, entrypoint=b"", seed=0)
    store.update_experiment(exp, state=ExperimentState.ACTIVE)
    live: list[int] = []
    t0 = time.time() - 3600
    for start in range(0, trials, 50):
        with store.transaction():
            rows: list[MetricRow] = []
            for i in range(start, min(start + 50, trials)):
                x = (i * 7919 % 1000) / 1000
                tid = store.create_trial(exp, i, {"lr": 10 ** (-4 + 3 * x)})
                if i >= trials - running:
                    store.update_trial(tid, state=TrialState.ACTIVE)
                    live.append(tid)
                    continue
                for step in range(1, points + 1):
                    rows.append(MetricRow(tid, 0, "training", step, {"loss": x + 1 / step}, t0 + step))
                    if step % VAL_EVERY == 0:
                        rows.append(
                            MetricRow(tid, 0, "validation", step, {"val_loss": x + 2 / step}, t0 + step)
                        )
                store.update_trial(tid, state=TrialState.COMPLETED, steps_completed=points,
                                   best_validation=x + 2 / points, latest_validation=x + 2 / points)  # fmt: skip
            store.add_metrics(rows)
    return exp, live


def writer(path: str, trial_ids: list[int], rate: float, seconds: float) -> None:
    """The writer subprocess: each trial gains ``rate`` steps per second, written every 0.1 s."""
    store = Store(path)
    start = time.monotonic()
    steps = dict.fromkeys(trial_ids, 0)
    while (elapsed := time.monotonic() - start) < seconds:
        target = int(elapsed * rate)
        now = time.time()
        with store.transaction():
            rows = []
            for tid in trial_ids:
                x = tid % 17 / 17
                for step in range(steps[tid] + 1, target + 1):
                    rows.append(MetricRow(tid, 0, "training", step, {"loss": x + 1 / step}, now))
                    if step % VAL_EVERY == 0:
                        rows.append(
                            MetricRow(tid, 0, "validation", step, {"val_loss": x / 2 + 2 / step}, now)
                        )
                if target > steps[tid]:
                    best = x / 2 + 2 / target if target >= VAL_EVERY else None
                    store.update_trial(
                        tid, steps_completed=target, best_validation=best, latest_validation=best
                    )
                steps[tid] = target
            store.add_metrics(rows)
        time.sleep(max(0.0, BATCH_SECONDS - (time.monotonic() - start - elapsed)))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def peak_per_second(times: list[float]) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import comm
    import plotly.graph_objects as go
    import psutil  # (distributed's dependency)

    import det_jupyter
    from det_jupyter.notebook.widget.widget import ExperimentWidget

    go.FigureWidget()  # the first FigureWidget of a process loads plotly's 5 MB bundle (~2 s): not measured
    home = os.environ["DET_JUPYTER_HOME"]
    path = os.path.join(home, "bench-scale.sqlite")
    store = Store(path)
    t = time.perf_counter()
    exp_id, live = fill(store, args.trials, args.points, args.running)
    fill_s = time.perf_counter() - t

    messages: dict[int, list[tuple[float, int]]] = defaultdict(list)  # id(comm) -> (time, bytes)

    def publish(self: Any, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None,
                **keys: Any) -> None:  # fmt: skip
        size = len(json.dumps(data, default=str)) + sum(len(memoryview(b)) for b in buffers or ())
        messages[id(self)].append((time.time(), size))

    comm.DummyComm.publish_msg = publish  # what a kernel would serialise and send
    drawn: dict[tuple[str, int], list[tuple[float, int]]] = defaultdict(
        list
    )  # (kind, trial) -> (time, max step)
    live_set = set(live)

    stages: dict[str, list[float]] = defaultdict(list)  # stage -> seconds, per refresh while watching
    read: dict[tuple[str, int], list[tuple[float, int]]] = defaultdict(
        list
    )  # (kind, trial) -> (read start, step)

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                stages[name].append(time.perf_counter() - t)

        return wrapper

    class TimedWidget(ExperimentWidget):
        """Notes, after each draw, how far each reporting trial's trace reaches, and each stage's time."""

        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            model_refresh = self.model.refresh

            def refresh_model() -> Any:
                start = time.time()
                t = time.perf_counter()
                changes = model_refresh()
                stages["read store + model"].append(time.perf_counter() - t)
                for kind, ids in changes.series.items():
                    for trial_id in ids & live_set:
                        steps, _ = self.model.trial_series(kind, trial_id)
                        if steps:
                            read[(kind, trial_id)].append((start, int(steps[-1])))
                return changes

            self.model.refresh = refresh_model  # type: ignore[method-assign]
            for name in ("_draw_header", "_redraw_table", "_draw_analysis", "_draw_pickers"):
                setattr(self, name, timed(name, getattr(self, name)))

        def refresh(self) -> Any:
            t = time.perf_counter()
            try:
                return super().refresh()
            finally:
                stages["refresh (all)"].append(time.perf_counter() - t)
                stages["refresh starts"].append(t)

        def _draw_figure(self, kind: str) -> None:
            t = time.perf_counter()
            super()._draw_figure(kind)
            stages[f"draw {kind}"].append(time.perf_counter() - t)
            now = time.time()
            for trial_id, trace in self.figures[kind].traces.items():
                if trial_id in live_set and trace.x is not None and len(trace.x):
                    last = int(trace.x[-1])
                    seen = drawn[(kind, trial_id)]
                    if not seen or seen[-1][1] < last:
                        seen.append((now, last))

    experiment = det_jupyter.get_experiment(exp_id, store=store)
    process = psutil.Process()
    rss0 = process.memory_info().rss
    cpu, wall = time.process_time(), time.perf_counter()
    widget = TimedWidget(experiment)  # what displaying it costs the cell: the first chunk of reports
    attach_cpu, attach_wall = time.process_time() - cpu, time.perf_counter() - wall
    widget.start()  # as displayed: its thread reads the rest and draws every curve, then keeps watching
    while widget.pending or widget.refreshes < 2:
        time.sleep(0.05)
    catch_up_cpu, catch_up_wall = time.process_time() - cpu, time.perf_counter() - wall
    widget_mib = (process.memory_info().rss - rss0) / 2**20  # what the widget keeps of every report
    model_mib = widget.model.nbytes() / 2**20  # of which its columns of reports (values, steps, times)
    reports_held = widget.model.reports_held()
    figure_comms = {kind: id(f.figure.comm) for kind, f in widget.figures.items()}
    points_drawn = {
        kind: sum(len(tr.x) if tr.x is not None else 0 for tr in f.figure.data[1:])
        for kind, f in widget.figures.items()
    }
    webgl = {kind: f.webgl for kind, f in widget.figures.items()}

    refreshes0 = widget.refreshes
    stages.clear()
    watch_start = time.time()
    proc = subprocess.Popen([sys.executable, __file__, "--writer", path, "--rate", str(args.rate),
                             "--watch", str(args.watch), "--ids", *map(str, live)])  # fmt: skip
    cpu, wall = time.process_time(), time.perf_counter()
    widget.start()
    proc.wait()
    threading.Event().wait(1.5)  # the last batch reaches the figures
    watch_cpu, watch_wall = time.process_time() - cpu, time.perf_counter() - wall
    refreshes = widget.refreshes - refreshes0
    widget.stop(timeout=5)
    watch_end = time.time()

    latencies, waits, draws = [], [], []
    missing = 0
    for kind in ("training", "validation"):
        for row in store.metrics(experiment_id=exp_id, kind=kind):
            if row.trial_id not in live_set:
                continue
            seen = drawn[(kind, row.trial_id)]
            i = bisect.bisect_left([s for _, s in seen], row.steps)
            if i == len(seen):
                missing += 1
            else:
                latencies.append(seen[i][0] - row.reported_at)
                got = read[(kind, row.trial_id)]
                j = bisect.bisect_left([s for _, s in got], row.steps)
                if j < len(got):  # report -> the refresh that read it -> the draw that showed it
                    waits.append(got[j][0] - row.reported_at)
                    draws.append(seen[i][0] - got[j][0])
    rates = {}
    for kind, cid in figure_comms.items():
        during = [(t, n) for t, n in messages[cid] if watch_start <= t <= watch_end]
        rates[kind] = (len(during), len(during) / (watch_end - watch_start),
                       peak_per_second([t for t, _ in during]), sum(n for _, n in during))  # fmt: skip
    all_during = [(t, n) for v in messages.values() for t, n in v if watch_start <= t <= watch_end]
    return {
        "fill_s": fill_s, "attach_cpu": attach_cpu, "attach_wall": attach_wall, "catch_up": catch_up_wall,
        "catch_up_cpu": catch_up_cpu, "widget_mib": widget_mib, "rows": (args.trials - args.running) * args.points * 11 // 10,
        "model_mib": model_mib, "reports_held": reports_held,
        "points_drawn": points_drawn, "webgl": webgl, "refreshes": refreshes, "watch_wall": watch_wall,
        "watch_cpu": watch_cpu, "latencies": latencies, "missing": missing, "rates": rates,
        "all_msgs": len(all_during), "all_bytes": sum(n for _, n in all_during),
        "live_rows": len(latencies) + missing, "waits": waits, "draws": draws, "stages": dict(stages),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--running", type=int, default=8, help="trials that report during the watch")
    parser.add_argument("--rate", type=float, default=50.0, help="steps per second per reporting trial")
    parser.add_argument("--watch", type=float, default=20.0, help="seconds of watching")
    parser.add_argument("--write", default=None, help="markdown file to write the section into")
    parser.add_argument("--writer", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--ids", type=int, nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        writer(args.writer, args.ids, args.rate, args.watch)
        return
    os.environ["DET_JUPYTER_HOME"] = tempfile.mkdtemp(prefix="det-bench-widget-scale-")
    res = run(args)
    lat = res["latencies"]
    p95 = percentile(lat, 0.95) if lat else float("inf")
    starts = res["stages"].get("refresh starts", [])  # the rate between refresh starts (N starts, N - 1 gaps)
    hz = (len(starts) - 1) / (starts[-1] - starts[0]) if len(starts) > 1 else 0.0
    cpu_share = res["watch_cpu"] / res["watch_wall"]
    worst_peak = max(peak for _, _, peak, _ in res["rates"].values())
    waits, draws = res["waits"], res["draws"]
    why_late = (f"**no**: the wait for the read that finds a report p95 {percentile(waits, 0.95):.2f} s, "
                f"the draw after it p95 {percentile(draws, 0.95):.2f} s (stage table); loaded 2-core machine"
                if waits and draws else "**no**: reports never drawn")  # fmt: skip
    goals = [
        ("refreshes while watching (Hz)", f"{hz:.2f}", "<= 2", hz <= 2.0,
         f"**no**: {res['refreshes']} refreshes in {res['watch_wall']:.1f} s"),
        ("comm messages per figure, peak in any 1 s", f"{worst_peak}", "<= 10", worst_peak <= 10,
         "**no**: see the figure table"),
        ("report → figure, p95 (s)", f"{p95:.3f}", "< 1", p95 < 1.0, why_late),
        ("kernel CPU while watching (% of a core)", f"{cpu_share * 100:.1f}", "<= 10", cpu_share <= 0.10,
         "**no**: per-refresh stage times in the stage table; loaded 2-core machine"),
    ]  # fmt: skip
    lines = [
        f"### Widget at scale: {args.trials:,} trials x {args.points:,} points, {args.running} still reporting",
        "",
        f"`bench/bench_widget_scale.py`. Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {time.strftime('%Y-%m-%d')}. Store written directly "
        f"({(args.trials - args.running) * args.points * 11 // 10:,} metric rows in {res['fill_s']:.0f} s); a writer subprocess "
        f"appends {args.rate:.0f} steps/s to each of {args.running} trials for {args.watch:.0f} s in 0.1 s batches; "
        "the widget is attached headless and every comm message is JSON-encoded and counted; other "
        "benchmarks shared the machine (the stage table's maxima are where a refresh lost the CPU).",
        "",
        "| goal | measured | target | met |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {value} | {target} | {'yes' if ok else cause} |"
        for name, value, target, ok, cause in goals
    ]
    lines += [
        "",
        "| figure | WebGL | points drawn after attach | messages while watching | peak messages in any 1 s | KiB sent |",
        "|---|---|---|---|---|---|",
    ]
    for kind, (count, _mean, peak, size) in res["rates"].items():
        lines.append(f"| {kind} | {'yes' if res['webgl'][kind] else 'no'} | {res['points_drawn'][kind]:,} | "
                     f"{count} | {peak} | {size / 1024:,.0f} |")  # fmt: skip
    lines += [
        "",
        f"Attach: the widget is built (the cell returns) after {res['attach_wall']:.1f} s wall "
        f"({res['attach_cpu']:.1f} s CPU; the first {min(READ_CHUNK, res['rows']):,} reports read); its thread then reads the "
        f"rest in chunks and every curve is drawn {res['catch_up']:.1f} s after the start "
        f"({res['catch_up_cpu']:.1f} s CPU); the kernel then holds {res['widget_mib']:,.0f} MiB more (resident "
        f"set), of which the model's columns of reports {res['model_mib']:,.1f} MiB ({res['reports_held']:,} reports: "
        "steps, times and every numeric metric in typed arrays, so the metric pickers switch without reading the "
        f"store again; read in store queries of {READ_BATCH:,} rows; a dict per report, with a chunk's rows read "
        "at once, held 508 MiB before). "
        f"While watching: {res['refreshes']} refreshes in {res['watch_wall']:.1f} s; report → figure over "
        f"{len(lat):,} reports: p50 {statistics.median(lat) if lat else float('nan'):.3f} s, p95 {p95:.3f} s, "
        f"max {max(lat, default=float('nan')):.3f} s; reports never drawn: {res['missing']}; all widgets together "
        f"sent {res['all_msgs']} messages ({res['all_bytes'] / 1024:,.0f} KiB).",
    ]
    lines += ["", *stage_table(res)]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, "widget-scale", text)


def stage_table(res: dict[str, Any]) -> list[str]:
    """Where report → figure time goes: the wait for a refresh to read the report, then the draw; and
    what each refresh spends per stage (ms)."""

    def row(name: str, values: list[float], scale: float, unit: str) -> str:
        if not values:
            return f"| {name} | 0 | | | |"
        v = [x * scale for x in values]
        return (f"| {name} | {len(v):,} | {statistics.median(v):.1f} {unit} | {percentile(v, 0.95):.1f} {unit} | "
                f"{max(v):.1f} {unit} |")  # fmt: skip

    stages = dict(res["stages"])
    starts = stages.pop("refresh starts", [])
    out = ["| stage (while watching) | count | p50 | p95 | max |", "|---|---|---|---|---|",
           row("report written → a refresh starts reading it", res["waits"], 1000, "ms"),
           row("refresh start → the figure drawn with it", res["draws"], 1000, "ms"),
           row("refresh start → next refresh start", [b - a for a, b in itertools.pairwise(starts)], 1000, "ms")]  # fmt: skip
    out += [row(f"per refresh: {name}", values, 1000, "ms") for name, values in sorted(stages.items())]
    return out


if __name__ == "__main__":
    main()
