"""GPU packing: two trials sharing one GPU (two Dask workers pinned to GPU 0) vs one trial alone.

The small CNN of ``bench_overhead`` (CIFAR-shaped batches of 256 already on the GPU) as a TorchTrial.
A SpecCluster of two worker processes, both ``CUDA_VISIBLE_DEVICES=0`` and ``{"GPU": 1}``: an experiment
of one trial, then one of two trials that run at once. Aggregate throughput = images trained by both
÷ the span from the first start to the last end of their timed windows (conservative: any
non-overlap counts against packing). The same with the bare loop as plain Dask tasks is the anchor.
Goal: two packed trials >= 1.7x one trial on an H100. Interleaved rounds, medians.

Run (needs a GPU):  python bench/bench_gpu_packing.py [--seconds 3] [--repeats 3] [--write F] [--json F]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any

import _workloads as W
from _common import Goal, interleaved, machine, machine_line, median, write_json, write_section

GOAL = 1.7


def aggregate(windows: list[tuple[float, float, float]]) -> float:
    """Images/s over the union span of ``(t_start, t_end, images)`` windows."""
    return sum(w[2] for w in windows) / (max(w[1] for w in windows) - min(w[0] for w in windows))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--section", default="packing-gpu")
    parser.add_argument("--write", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("[packing] no GPU here: skipped")
        return {"name": args.section, "goals": [], "figures": {}, "skipped": "no GPU"}
    import cloudpickle
    import dask
    from distributed import Client, Scheduler, SpecCluster

    import det_jupyter
    from det_jupyter.engine.cluster import _worker_spec

    cloudpickle.register_pickle_by_value(W)
    os.environ["DET_JUPYTER_HOME"] = tempfile.mkdtemp(prefix="det-bench-packing-")
    env = {"CUDA_VISIBLE_DEVICES": "0", "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    specs = {f"gpu-0-{c}": _worker_spec({"GPU": 1}, env, "auto") for c in "ab"}
    scheduler = {"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard_address": None}}
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = SpecCluster(workers=specs, scheduler=scheduler, name="bench-packing")
    client = Client(cluster, set_as_default=False)
    client.wait_for_workers(2)
    batch = W.MODELS["cnn"][2]
    probe = {"model": "cnn", "batch": batch, "steps": 200, "warmup": 50, "threads": 1}
    client.submit(W.bare_task, probe, resources={"GPU": 1}, pure=False).result()
    rate = client.submit(W.bare_task, probe, resources={"GPU": 1}, pure=False).result()["samples_per_s"]
    steps = max(200, int(rate / batch * args.seconds))
    params = {"model": "cnn", "batch": batch, "steps": steps, "warmup": 50, "threads": 1}

    def bare(n: int) -> float:
        futures = [client.submit(W.bare_task, params, resources={"GPU": 1}, pure=False) for _ in range(n)]
        out = client.gather(futures)
        if n == 2 and out[0]["pid"] == out[1]["pid"]:
            raise RuntimeError("both tasks ran in one worker process: not packed")
        return aggregate([(o["t_start"], o["t_end"], o["samples"]) for o in out])

    def trials(n: int) -> float:
        cfg = {
            "name": f"bench-packing-{n}",
            "hyperparameters": params,
            "searcher": {"name": "random", "metric": "val_loss", "max_trials": n, "max_concurrent_trials": n,
                         "time_metric": "epochs", "max_time": 1},
        }  # fmt: skip
        exp = det_jupyter.create_experiment(cfg, W.trial_class(), cluster=client)
        assert exp.wait(timeout=600).value == "COMPLETED", exp.error
        val = exp.metrics("validation")
        images = (steps - params["warmup"]) * batch
        return aggregate([(r.t_start, r.t_end, images) for r in val.itertuples()])

    t0 = time.perf_counter()
    runs = interleaved(
        {"bare_1": lambda: bare(1), "bare_2": lambda: bare(2), "trial_1": lambda: trials(1),
         "trial_2": lambda: trials(2)},
        args.repeats,
    )  # fmt: skip
    client.close()
    cluster.close()
    packed = [b / a for a, b in zip(runs["trial_1"], runs["trial_2"])]
    packed_bare = [b / a for a, b in zip(runs["bare_1"], runs["bare_2"])]
    ratio, ratio_bare = median(packed), median(packed_bare)
    goals = [Goal("two packed trials ÷ one trial, aggregate images/s", ratio, f">= {GOAL}", ratio >= GOAL,
                  "the two processes time-slice the GPU; see the bare-task anchor for the GPU's own limit")]  # fmt: skip
    lines = [
        f"### GPU packing: two trials on one GPU (median of {args.repeats} interleaved rounds)",
        "",
        machine_line(machine()),
        f"Small CNN, batch {batch}, {steps} steps per trial (~{args.seconds:.0f} s alone); two Dask worker "
        "processes pinned to GPU 0 (`CUDA_VISIBLE_DEVICES=0`, `{GPU: 1}` each).",
        "",
        "| path | one: images/s | two at once: aggregate images/s | ratio |",
        "|---|---|---|---|",
        f"| bare loop as plain Dask tasks (anchor) | {median(runs['bare_1']):,.0f} | {median(runs['bare_2']):,.0f} "
        f"| {ratio_bare:.2f} |",
        f"| det_jupyter TorchTrial experiments | {median(runs['trial_1']):,.0f} | {median(runs['trial_2']):,.0f} | "
        f"{ratio:.2f} |",
        "",
        f"(Wall time of the benchmark: {time.perf_counter() - t0:.0f} s.)",
        "",
        *Goal.table(goals, "{:.2f}"),
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, args.section, text)
    payload = {"name": args.section, "goals": [g.as_dict() for g in goals],
               "figures": {"ratio": ratio, "ratio_bare": ratio_bare}, "raw": runs}  # fmt: skip
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
