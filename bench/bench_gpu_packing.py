"""GPU packing: K trials sharing one GPU vs one trial alone, through det_jupyter's packing knobs.

The small CNN of ``bench_overhead`` (CIFAR-shaped batches, already on the GPU) as a TorchTrial.

- ``--mode processes`` (default): the embedded cluster's packing, ``slots_per_gpu=K``: K worker
  processes on GPU 0 (:func:`det_jupyter.engine.cluster.gpu_worker_specs`: admitted by free memory,
  each with its PyTorch memory cap), trials of ``slots_per_trial: 1``.
- ``--mode threads``: fractional slots, one worker of K threads with ``{"GPU": 1}``, trials of
  ``slots_per_trial: 1/K`` (``{GPU: 1/K}``).

An experiment of one trial, then one of K trials that run at once. Aggregate throughput = images
trained by all ÷ the span from the first start to the last end of their timed windows (conservative:
any non-overlap counts against packing). The same bare loop as K plain Dask tasks on the same workers is
the hand-packed anchor. Goal: packed trials >= 0.9 x the hand-packed ratio (issue #11: measured by hand
on an H100, 4 trials of batch 64 gave 3.5x, 2 of batch 256 gave 1.9x). Interleaved rounds, medians.

Run (needs a GPU):  python bench/bench_gpu_packing.py [--slots 2] [--batch 256] [--mode processes|threads]
                    [--seconds 3] [--repeats 3] [--write F] [--json F]
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

GOAL = 0.9
"""Packed trials' aggregate ratio ÷ the hand-packed (bare Dask tasks) ratio."""


def aggregate(windows: list[tuple[float, float, float]]) -> float:
    """Images/s over the union span of ``(t_start, t_end, images)`` windows."""
    return sum(w[2] for w in windows) / (max(w[1] for w in windows) - min(w[0] for w in windows))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slots", type=int, default=2, help="trials sharing GPU 0 (K)")
    parser.add_argument(
        "--batch", type=int, default=None, help="batch size (default: the workload's GPU batch)"
    )
    parser.add_argument("--mode", choices=("processes", "threads"), default="processes")
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
    from det_jupyter.engine.cluster import _worker_spec, gpu_worker_specs
    from det_jupyter.worker.gpu import gpu_inventory

    cloudpickle.register_pickle_by_value(W)
    os.environ["DET_JUPYTER_HOME"] = tempfile.mkdtemp(prefix="det-bench-packing-")
    k = args.slots
    env = {"PYTHONWARNINGS": "ignore::DeprecationWarning"}
    if args.mode == "processes":  # what local_cluster(slots_per_gpu=K) makes, on GPU 0 only
        specs = gpu_worker_specs(gpu_inventory()[:1], k, env)
        amount, trial_slots = 1.0, 1
    else:  # fractional slots: one worker, K threads, {GPU: 1}
        spec = _worker_spec({"GPU": 1}, {**env, "CUDA_VISIBLE_DEVICES": "0"}, "auto",
                            preload=["det_jupyter.worker.preload"])  # fmt: skip
        spec["options"]["nthreads"] = k
        specs = {"gpu-0": spec}
        amount = trial_slots = 1.0 / k
    if len(specs) < (k if args.mode == "processes" else 1):
        raise SystemExit(f"GPU 0 admits only {len(specs)} of {k} slots (its free memory): free it first")
    scheduler = {"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard_address": None}}
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = SpecCluster(workers=specs, scheduler=scheduler, name="bench-packing")
    client = Client(cluster, set_as_default=False)
    client.wait_for_workers(len(specs))
    batch = args.batch or W.MODELS["cnn"][2]
    probe = {"model": "cnn", "batch": batch, "steps": 200, "warmup": 50, "threads": 1}
    client.submit(W.bare_task, probe, resources={"GPU": amount}, pure=False).result()
    rate = client.submit(W.bare_task, probe, resources={"GPU": amount}, pure=False).result()["samples_per_s"]
    steps = max(200, int(rate / batch * args.seconds))
    params = {"model": "cnn", "batch": batch, "steps": steps, "warmup": 50, "threads": 1}

    def bare(n: int) -> float:
        futures = [
            client.submit(W.bare_task, params, resources={"GPU": amount}, pure=False) for _ in range(n)
        ]
        out = client.gather(futures)
        if args.mode == "processes" and n > 1 and len({o["pid"] for o in out}) < n:
            raise RuntimeError("tasks shared a worker process: not packed as asked")
        return aggregate([(o["t_start"], o["t_end"], o["samples"]) for o in out])

    def trials(n: int) -> float:
        cfg = {
            "name": f"bench-packing-{n}",
            "hyperparameters": params,
            "resources": {"slots_per_trial": trial_slots},
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
        {"bare_1": lambda: bare(1), "bare_k": lambda: bare(k), "trial_1": lambda: trials(1),
         "trial_k": lambda: trials(k)},
        args.repeats,
    )  # fmt: skip
    client.close()
    cluster.close()
    packed = [b / a for a, b in zip(runs["trial_1"], runs["trial_k"])]
    packed_bare = [b / a for a, b in zip(runs["bare_1"], runs["bare_k"])]
    ratio, ratio_bare = median(packed), median(packed_bare)
    relative = ratio / ratio_bare
    goals = [Goal(f"{k} packed trials' ratio ÷ hand-packed ratio", relative, f">= {GOAL}", relative >= GOAL,
                  "the hand-packed ratio is the GPU's own limit for this model and batch")]  # fmt: skip
    how = (
        f"`slots_per_gpu={k}`: {k} worker processes on GPU 0, each `{{GPU: 1}}` with its memory cap"
        if args.mode == "processes"
        else f"fractional `slots_per_trial: 1/{k}`: one worker of {k} threads, `{{GPU: 1}}`"
    )
    lines = [
        f"### GPU packing: {k} trials on one GPU, {args.mode} (median of {args.repeats} interleaved rounds)",
        "",
        machine_line(machine()),
        f"Small CNN, batch {batch}, {steps} steps per trial (~{args.seconds:.0f} s alone); {how}.",
        "",
        f"| path | one: images/s | {k} at once: aggregate images/s | ratio |",
        "|---|---|---|---|",
        f"| bare loop as plain Dask tasks (hand-packed anchor) | {median(runs['bare_1']):,.0f} | "
        f"{median(runs['bare_k']):,.0f} | {ratio_bare:.2f} |",
        f"| det_jupyter TorchTrial experiments | {median(runs['trial_1']):,.0f} | {median(runs['trial_k']):,.0f} | "
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
               "figures": {"ratio": ratio, "ratio_bare": ratio_bare, "relative": relative, "slots": k,
                           "mode": args.mode}, "raw": runs}  # fmt: skip
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
