"""Training-loop overhead: the same loop bare vs through det_jupyter, throughput ratio (goal >= 0.98).

The loop: Adam on an MLP (784-256-256-10) and on a small CNN (CIFAR-shaped 3x32x32 synthetic data),
cross-entropy, batches already on the device. Throughput is timed by the training data itself
(``bench/_workloads.py``: the window holds only trained batches and their reports), so every side is
timed the same way. Variants, side by side, interleaved, medians of per-round ratios:

- (a) bare torch, in this process;
- (b) ``TorchTrial.run_trial(local_context(...))`` in this process: the adapter's own overhead;
- (b') the same TorchTrial with the context a worker builds (``runtime.run_trial``'s, minus Dask);
- (c) Core API: the bare loop plus ``ctx.report_training_metrics`` every step (local and worker context);
- (d) Keras: bare ``model.fit`` vs ``KerasTrial`` (DetCallback), same timing callback on both sides
  (one that keeps Keras's asynchronous batch-end dispatch; KerasTrial calls DetCallback's batch hook
  only at batches where something is due);
- (e) a real trial on a 1-worker LocalCluster (controller, store, Dask events) vs the bare loop as a
  plain Dask task on the same worker.

On a GPU it also counts synchronising CUDA calls inside the timed window
(``torch.cuda.set_sync_debug_mode``): reporting must not sync the GPU every step.

Run:  .venv/bin/python bench/bench_overhead.py [--quick] [--write docs/benchmarks.md] [--json F]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
import warnings
from typing import Any

import _workloads as W
from _common import Goal, interleaved, machine, machine_line, median, write_json, write_section

GOAL = 0.98


class NullSink:
    """An EventSink that counts events (what a worker's Dask sink costs, minus the network)."""

    def __init__(self) -> None:
        self.events = 0

    def emit(self, event: dict[str, Any]) -> None:
        self.events += 1


def worker_context(params: dict[str, Any]) -> Any:
    """A TrialContext as ``runtime.run_trial`` builds it: default 0.2 s report buffering."""
    from det_jupyter.worker.context import TrialContext, TrialSpec

    spec = TrialSpec(
        experiment_id=1, trial_id=1, run_id=0, hparams=dict(params), metric="val_loss",
        smaller_is_better=True, time_metric="epochs", max_time=1,
        storage_url=tempfile.mkdtemp(prefix="det-bench-ckpt-"),
    )  # fmt: skip
    return TrialContext(spec, NullSink())


def local_ctx(params: dict[str, Any]) -> Any:
    from det_jupyter.worker.context import local_context

    return local_context(params, time_metric="epochs", max_time=1)


# --- the variants ------------------------------------------------------------------------------


def run_bare(params: dict[str, Any]) -> float:
    return W.bare_loop(params)["samples_per_s"]


def run_trial_local(params: dict[str, Any]) -> float:
    cls = W.trial_class()
    cls.run_trial(local_ctx(params))
    return float(cls.last_data.samples_per_s)


def run_trial_worker(params: dict[str, Any]) -> float:
    cls = W.trial_class()
    cls.run_trial(worker_context(params))
    return float(cls.last_data.samples_per_s)


def run_core_local(params: dict[str, Any]) -> float:
    W.core_train(local_ctx(params))
    return float(W.core_train.last_data.samples_per_s)  # type: ignore[attr-defined]


def run_core_worker(params: dict[str, Any]) -> float:
    W.core_train(worker_context(params))
    return float(W.core_train.last_data.samples_per_s)  # type: ignore[attr-defined]


VARIANTS = {
    "bare": ("(a) bare torch loop", run_bare),
    "trial_local": ("(b) TorchTrial, local_context", run_trial_local),
    "trial_worker": ("(b') TorchTrial, worker context", run_trial_worker),
    "core_local": ("(c) Core API report every step, local_context", run_core_local),
    "core_worker": ("(c') Core API report every step, worker context", run_core_worker),
}


def calibrate(model: str, batch: int, device: str, seconds: float) -> int:
    """Steps that make the timed window last about ``seconds``."""
    probe = {"model": model, "batch": batch, "steps": 60, "warmup": 20, "device": device, "threads": 1}
    W.bare_loop(probe)  # warm kernels / allocator
    rate = W.bare_loop(probe)["samples_per_s"] / batch  # steps per second
    return max(60, int(rate * seconds))


def in_process(model: str, device: str, seconds: float, repeats: int, variants: list[str]) -> dict[str, Any]:
    batch = W.MODELS[model][2 if device == "cuda" else 1]
    steps = calibrate(model, batch, device, seconds)
    params = {"model": model, "batch": batch, "steps": steps, "warmup": max(10, steps // 20),
              "device": device, "threads": 1}  # fmt: skip
    cpu: dict[str, list[float]] = {name: [] for name in variants}

    def runner(name: str) -> float:
        rate = VARIANTS[name][1](params)
        timed = W.TimedBatches.last
        assert timed is not None
        cpu[name].append(timed.samples_per_cpu_s)
        return rate

    runs = interleaved({name: (lambda n=name: runner(n)) for name in variants}, repeats)
    for name in variants:  # the warm-up round's figure first: drop it, as interleaved() does
        cpu[name] = cpu[name][-repeats:]
    return {"params": params, "runs": runs, "cpu": cpu}


def paired_ratios(runs: dict[str, list[float]], name: str, base: str = "bare") -> list[float]:
    return [v / b for v, b in zip(runs[name], runs[base])]


# --- per-step cost of the loop machinery ---------------------------------------------------------


def machinery_cost(steps: int = 20000, repeats: int = 7) -> dict[str, float]:
    """CPU microseconds per step that det_jupyter adds around a no-op ``train_batch`` (thread CPU time).

    On a GPU the training loop is usually bound by the CPU that launches kernels, so this cost is
    what a fast loop loses: ratio ~ step / (step + cost).
    """
    import torch

    from det_jupyter.frameworks._torch_loop import TorchLoop
    from det_jupyter.torch import TorchTrial

    loss = torch.tensor(0.5)
    batch = (torch.zeros(8, 4), torch.zeros(8, dtype=torch.long))

    class NullTrial(TorchTrial):
        checkpoint_in_background = False
        save_whole_model = False

        def build_model(self) -> Any:
            return torch.nn.Linear(1, 1)

        def build_optimizer(self, model: Any) -> Any:
            return torch.optim.SGD(model.parameters(), lr=0.1)

        def build_training_data(self) -> Any:
            return [batch] * steps

        def build_validation_data(self) -> Any:
            return [batch]

        def train_batch(self, model: Any, b: Any, optimizer: Any) -> Any:
            return loss

        def evaluate_batch(self, model: Any, b: Any) -> dict[str, Any]:
            return {"val_loss": 0.0}

    def bare() -> float:
        t0 = time.thread_time()
        for _ in [batch] * steps:
            loss.detach()
        return (time.thread_time() - t0) / steps

    def trial() -> float:
        loop = TorchLoop(NullTrial(worker_context({})))
        t0 = time.thread_time()
        loop.run()
        return (time.thread_time() - t0) / steps

    core_ctx = worker_context({})

    def core() -> float:
        t0 = time.thread_time()
        for i in range(1, steps + 1):
            core_ctx.report_training_metrics(i, {"loss": loss.detach()})
            core_ctx.should_stop()
        return (time.thread_time() - t0) / steps

    runs = interleaved({"bare": bare, "trial": trial, "core": core}, repeats)
    b = min(runs["bare"])
    return {"trial_us": (min(runs["trial"]) - b) * 1e6, "core_us": (min(runs["core"]) - b) * 1e6}


# --- GPU sync check ------------------------------------------------------------------------------


def count_syncs(fn: Any, params: dict[str, Any]) -> tuple[int, int]:
    """Synchronising CUDA calls inside the timed window of one run: ``(syncs, steps)``."""
    import torch

    stamps: list[float] = []

    def hook(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        if "synchroniz" in str(message):
            stamps.append(time.perf_counter())

    saved = warnings.showwarning
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = hook
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn(params)
        finally:
            torch.cuda.set_sync_debug_mode(0)
            warnings.showwarning = saved
    data = W.TimedBatches.last
    assert data is not None and data.t_start is not None and data.t_end is not None
    inside = [t for t in stamps if data.t_start < t < data.t_end]
    return len(inside), params["steps"] - params["warmup"]


# --- Keras ---------------------------------------------------------------------------------------


def keras_runs(seconds: float, repeats: int) -> dict[str, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from det_jupyter.keras import KerasTrial
    from det_jupyter.worker.context import local_context

    batch = W.MODELS["mlp"][1]

    class Timer(keras.callbacks.Callback):  # type: ignore[misc]
        """Overrides no *_batch_end hook, so it leaves Keras's async callback dispatch as it is."""

        def __init__(self, warmup: int) -> None:
            super().__init__()
            self.warmup, self.t_start, self.t_end = warmup, 0.0, 0.0
            self.cpu_start, self.cpu_end = 0.0, 0.0

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            if batch == self.warmup:
                self.t_start, self.cpu_start = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.t_end, self.cpu_end = time.perf_counter(), time.process_time()

    def build() -> Any:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(256, activation="relu"),
                                  keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10)])  # fmt: skip
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
        return model

    rng = np.random.default_rng(0)
    state: dict[str, Any] = {}

    def data(steps: int) -> tuple[Any, Any]:
        if state.get("steps") != steps:
            x = rng.standard_normal((steps * batch, 784), dtype=np.float32)
            state.update(steps=steps, x=x, y=rng.integers(0, 10, steps * batch))
        return state["x"], state["y"]

    cpu: dict[str, list[float]] = {"bare": [], "trial": []}

    def rates(key: str, timer: Any, steps: int, warmup: int) -> float:
        cpu[key].append((steps - warmup) * batch / max(timer.cpu_end - timer.cpu_start, 1e-9))
        return (steps - warmup) * batch / (timer.t_end - timer.t_start)

    def bare(steps: int, warmup: int) -> float:
        x, y = data(steps)
        timer = Timer(warmup)
        build().fit(x, y, batch_size=batch, epochs=1, verbose=0, callbacks=[timer])
        return rates("bare", timer, steps, warmup)

    class BenchKerasTrial(KerasTrial):
        def build_model(self) -> Any:
            return build()

        def build_training_data(self) -> Any:
            return data(self.hparams["steps"])

        def build_validation_data(self) -> Any:
            x, y = data(self.hparams["steps"])
            return x[:batch], y[:batch]

        def keras_callbacks(self) -> list[Any]:
            self.timer = Timer(self.hparams["warmup"])
            type(self).last_timer = self.timer
            return [self.timer]

    from det_jupyter.frameworks import keras as det_keras

    hook = {"s": 0.0, "calls": 0}
    original_hook = det_keras._ActWhenDue.on_train_batch_end

    def timed_hook(self: Any, batch: int, logs: Any = None) -> None:
        t0 = time.perf_counter()
        original_hook(self, batch, logs)
        hook["s"] += time.perf_counter() - t0
        hook["calls"] += 1

    def trial(steps: int, warmup: int) -> float:
        BenchKerasTrial.run_trial(
            local_context({"global_batch_size": batch, "steps": steps, "warmup": warmup},
                          time_metric="epochs", max_time=1)
        )  # fmt: skip
        return rates("trial", BenchKerasTrial.last_timer, steps, warmup)

    probe = bare(60, 20) and bare(60, 20) / batch  # steps/s after tracing
    steps = max(60, int(probe * seconds))
    warmup = max(10, steps // 20)
    cpu["bare"].clear()  # the probes
    runs = interleaved({"bare": lambda: bare(steps, warmup), "trial": lambda: trial(steps, warmup)}, repeats)
    for values in cpu.values():  # without the warm-up round
        del values[:-repeats]
    timed_cpu = {key: list(values) for key, values in cpu.items()}
    # DetCallback's own cost per batch in the training thread (its container's batch-end call, where
    # everything det_jupyter does per batch happens), over a few trials run apart from the timed ones
    det_keras._ActWhenDue.on_train_batch_end = timed_hook
    try:
        for _ in range(3):
            trial(steps, warmup)
    finally:
        det_keras._ActWhenDue.on_train_batch_end = original_hook
    hook_us = hook["s"] / max(1, hook["calls"]) * 1e6
    return {"params": {"batch": batch, "steps": steps, "warmup": warmup, "keras": keras.__version__},
            "runs": runs, "cpu": timed_cpu, "hook_us": hook_us}  # fmt: skip


# --- real trial on a 1-worker cluster -----------------------------------------------------------


def cluster_runs(model: str, device: str, seconds: float, repeats: int) -> dict[str, Any]:
    import cloudpickle
    from distributed import Client

    import det_jupyter
    from det_jupyter.engine.cluster import local_cluster, slot_resource

    cloudpickle.register_pickle_by_value(W)
    os.environ["DET_JUPYTER_HOME"] = tempfile.mkdtemp(prefix="det-bench-overhead-")
    batch = W.MODELS[model][2 if device == "cuda" else 1]
    steps = calibrate(model, batch, device, seconds)
    params = {"model": model, "batch": batch, "steps": steps, "warmup": max(10, steps // 20), "threads": 1}
    cluster = local_cluster(n_workers=1, gpus=[0] if device == "cuda" else [], dashboard=False)
    client = Client(cluster, set_as_default=False)
    resource = slot_resource(client, 1, "auto")
    ends: dict[str, list[float]] = {"bare_task": [], "trial": [], "core": []}

    def bare_task() -> float:
        t0 = time.perf_counter()
        out = client.submit(W.bare_task, params, resources={resource: 1}, pure=False).result()
        ends["bare_task"].append(time.perf_counter() - t0)
        return float(out["samples_per_s"])

    def experiment(entrypoint: Any, key: str) -> float:
        cfg = {
            "name": f"bench-overhead-{key}",
            "hyperparameters": params,
            "searcher": {"name": "single", "metric": "val_loss", "time_metric": "epochs", "max_time": 1},
        }
        t0 = time.perf_counter()
        exp = det_jupyter.create_experiment(cfg, entrypoint, cluster=client)
        state = exp.wait(timeout=600)
        ends[key].append(time.perf_counter() - t0)
        assert state.value == "COMPLETED", (exp.error, [t.error for t in exp.trials()])
        val = exp.metrics("validation")
        return float(val["samples_per_s"].iloc[-1])

    runs = interleaved(
        {
            "bare_task": bare_task,
            "trial": lambda: experiment(W.trial_class(), "trial"),
            "core": lambda: experiment(W.core_train, "core"),
        },
        repeats,
    )
    client.close()
    cluster.close()
    return {"params": params, "runs": runs, "end_to_end_s": {k: median(v[1:]) for k, v in ends.items()}}


# --- main ----------------------------------------------------------------------------------------


def profile_trial(params: dict[str, Any], path: str) -> None:
    """cProfile of one worker-context TorchTrial run (where the non-training time goes)."""
    prof = cProfile.Profile()
    prof.enable()
    run_trial_worker(params)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(30)
    with open(path, "w") as f:
        f.write(out.getvalue())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter windows, fewer repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None, help="timed window per run")
    parser.add_argument(
        "--pin",
        default=None,
        help="comma-separated CPU cores for this process (e.g. 2,3 on a GPU machine: the training thread "
        "and det_jupyter's threads keep their cores while other processes use the rest)",
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--no-keras", action="store_true")
    parser.add_argument("--no-cluster", action="store_true")
    parser.add_argument("--profile", default=None, help="write a cProfile of a TorchTrial run here")
    parser.add_argument("--section", default="overhead", help="section name in the markdown file")
    parser.add_argument("--write", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(1)  # as a Dask worker process runs it (OMP_NUM_THREADS=1): stabler, and the same
    repeats = args.repeats or (3 if args.quick else 7)
    seconds = args.seconds or (1.0 if args.quick else 3.0)
    if args.pin:
        os.sched_setaffinity(0, {int(core) for core in args.pin.split(",")})
    results: dict[str, Any] = {"device": device, "in_process": {}}
    print("[overhead] per-step machinery cost", flush=True)
    results["machinery"] = machinery_cost()
    for model in ("mlp", "cnn"):
        names = (
            list(VARIANTS) if model == "mlp" or not args.quick else ["bare", "trial_worker", "core_worker"]
        )
        print(f"[overhead] {model} in-process: {', '.join(names)}", flush=True)
        results["in_process"][model] = in_process(model, device, seconds, repeats, names)
    if device == "cuda":
        params = results["in_process"]["mlp"]["params"]
        names = ["bare", "trial_worker", "core_worker", "trial_local", "core_local"]
        syncs = {name: count_syncs(VARIANTS[name][1], params) for name in names}
        results["syncs"] = syncs
    if args.profile:
        profile_trial(results["in_process"]["mlp"]["params"], args.profile)
    if not args.no_keras and device == "cpu":
        try:
            print("[overhead] keras", flush=True)
            results["keras"] = keras_runs(seconds, repeats)
        except ImportError as exc:
            results["keras_error"] = str(exc)
    if not args.no_cluster:
        print("[overhead] 1-worker cluster", flush=True)
        results["cluster"] = cluster_runs("mlp", device, seconds, repeats)
    return report(results, repeats, args)


def report(results: dict[str, Any], repeats: int, args: Any) -> dict[str, Any]:
    info = machine()
    device = results["device"]
    goals: list[Goal] = []
    lines = [
        f"### Training-loop overhead on {device.upper()} (median of {repeats} interleaved rounds)",
        "",
        machine_line(info)
        + (" torch uses 1 thread (as in a Dask worker)." if device == "cpu" else "")
        + (f" Pinned to CPU cores {args.pin}." if args.pin else ""),
        f"Goal: throughput ratio det_jupyter / bare >= {GOAL}. Anchors: Ray Train's release test allows 1.15x "
        "vanilla time; Determined measured at +21% in a published study; Lightning's parity CI holds ~1%.",
        "",
        "| model | variant | samples/s | ratio to bare (median of paired rounds) | spread (min-max) "
        "| CPU-time ratio (median) | its spread |",
        "|---|---|---|---|---|---|---|",
    ]
    cpu_goals: list[Goal] = []

    def cpu_cells(cpu: dict[str, list[float]] | None, name: str, base: str = "bare") -> str:
        """The CPU-time ratio columns; adds the variant's CPU-time goal row."""
        if not cpu or not cpu.get(name) or not cpu.get(base):
            return " | |"
        ratios = paired_ratios(cpu, name, base)
        r = median(ratios)
        cpu_goals.append(_cpu_goal(current_label, ratios))
        return f" {r:.3f} | {min(ratios):.3f}-{max(ratios):.3f} |"

    current_label = ""
    figures: dict[str, float] = {}
    keras_note = ""
    m = results.get("machinery")
    step_ms = {
        model: res["params"]["batch"] / median(res["runs"]["bare"]) * 1000
        for model, res in results["in_process"].items()
    }

    def bound(model: str, name: str) -> float | None:
        if m is None:
            return None
        cost_ms = (m["trial_us"] if "trial" in name else m["core_us"]) / 1000
        return step_ms[model] / (step_ms[model] + cost_ms)

    for model, res in results["in_process"].items():
        runs, p = res["runs"], res["params"]
        for name in runs:
            label = VARIANTS[name][0]
            rate = median(runs[name])
            if name == "bare":
                lines.append(
                    f"| {model} (batch {p['batch']}, {p['steps']} steps) | {label} | {rate:,.0f} | 1.000 | | | |"
                )
                continue
            ratios = paired_ratios(runs, name)
            r = median(ratios)
            figures[f"{model}_{name}"] = r
            current_label = f"{model} {label}"
            lines.append(
                f"| {model} | {label} | {rate:,.0f} | {r:.3f} | {min(ratios):.3f}-{max(ratios):.3f} |"
                + cpu_cells(res.get("cpu") if device == "cpu" else None, name)
            )
            goals.append(_goal(f"{model} {label}", ratios, bound(model, name)))
    if "keras" in results:
        runs, p = results["keras"]["runs"], results["keras"]["params"]
        ratios = paired_ratios(runs, "trial")
        r = median(ratios)
        figures["keras_trial"] = r
        lines.append(f"| mlp, Keras {p['keras']} (batch {p['batch']}, {p['steps']} steps) | (d) bare `model.fit` | "
                     f"{median(runs['bare']):,.0f} | 1.000 | | | |")  # fmt: skip
        current_label = "Keras KerasTrial"
        lines.append(f"| mlp, Keras | (d) KerasTrial (DetCallback), local_context | {median(runs['trial']):,.0f} | "
                     f"{r:.3f} | {min(ratios):.3f}-{max(ratios):.3f} |"
                     + cpu_cells(results["keras"].get("cpu"), "trial"))  # fmt: skip
        hook_us = results["keras"].get("hook_us")
        keras_bound: float | None = None
        if hook_us is not None:
            step_us = 1e6 * p["batch"] / median(runs["bare"])
            keras_bound = step_us / (step_us + hook_us)
            keras_note = (f"KerasTrial's own work per batch in the training thread (its container's batch-end "
                          f"call: DetCallback counts the batch, asks the schedule, reads the stop flag and buffers "
                          f"the report unconverted; it acts synchronously only at validations, checkpoints, epoch "
                          f"ends and the end): {hook_us:.1f} µs mean over all batches, against a {step_us:,.0f} µs "
                          f"bare step: it bounds the loss at {keras_bound:.3f}.")  # fmt: skip
        goals.append(_goal("Keras KerasTrial", ratios, keras_bound, keras=True))
    if "cluster" in results:
        res = results["cluster"]
        runs, p = res["runs"], res["params"]
        e2e = res["end_to_end_s"]
        lines.append(f"| mlp on a 1-worker LocalCluster ({p['steps']} steps) | (e) bare loop as a plain Dask task | "
                     f"{median(runs['bare_task']):,.0f} | 1.000 | | | |")  # fmt: skip
        for key, label in (
            ("trial", "(e) TorchTrial as a real trial"),
            ("core", "(e) Core API as a real trial"),
        ):
            ratios = paired_ratios(runs, key, "bare_task")
            r = median(ratios)
            figures[f"cluster_{key}"] = r
            lines.append(f"| mlp, cluster | {label} | {median(runs[key]):,.0f} | {r:.3f} | "
                         f"{min(ratios):.3f}-{max(ratios):.3f} | | |")  # fmt: skip
            goals.append(_goal(f"cluster {label}", ratios, bound("mlp", key)))
        lines += [
            "",
            f"End to end on the warm 1-worker cluster (median): plain Dask task submit → result "
            f"{e2e['bare_task']:.2f} s; TorchTrial experiment create → COMPLETED {e2e['trial']:.2f} s; Core API "
            f"{e2e['core']:.2f} s. The difference is the per-trial fixed cost (experiment row, controller "
            "start, model build, final validation and checkpoint), outside the throughput window.",
        ]
    if keras_note:
        lines += ["", keras_note]
    if m is not None:
        lines += [
            "",
            f"Per-step CPU cost of det_jupyter around a no-op `train_batch` (thread CPU time, min of 7): "
            f"TorchTrial loop {m['trial_us']:.1f} µs, Core API `report_training_metrics` + `should_stop` "
            f"{m['core_us']:.1f} µs. Against the bare steps above ("
            + ", ".join(f"{k} {v:.2f} ms" for k, v in step_ms.items())
            + ") that bounds the TorchTrial ratio at "
            + ", ".join(f"{k} {v / (v + m['trial_us'] / 1000):.3f}" for k, v in step_ms.items())
            + " where the loop is bound by the CPU thread (as small models on a GPU are).",
        ]
        figures["machinery_trial_us"] = m["trial_us"]
        figures["machinery_core_us"] = m["core_us"]
    if "syncs" in results:
        lines += ["", "GPU synchronisations inside the timed window (`torch.cuda.set_sync_debug_mode`):", "",
                  "| variant | synchronising calls | steps | per step |", "|---|---|---|---|"]  # fmt: skip
        for name, (n, steps) in results["syncs"].items():
            lines.append(f"| {VARIANTS[name][0]} | {n} | {steps} | {n / steps:.3f} |")
            figures[f"syncs_per_step_{name}"] = n / steps
    if cpu_goals:
        lines += [
            "",
            "CPU-time ratio: samples per second of the process's CPU time (every thread, so det_jupyter's "
            "report buffering, flushes and checkpoint writers count), det_jupyter ÷ bare, paired rounds. Other "
            "processes' load stretches wall time more than CPU time (a loaded quick run: (c') rounds 0.46-1.03 "
            "in throughput, 0.84-1.02 in CPU time), but on a quiet VM both spread alike (2026-11-29 12:30: "
            "+-15 %), the VM's own variation, so neither establishes a 2 % goal on this machine; it misses what "
            'costs no CPU (waits). Its goal rows end in "(CPU time)"; the throughput rows stay the goal\'s '
            "own measure.",
        ]
    lines += ["", *Goal.table(goals + cpu_goals)]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, args.section, text)
    payload = {"name": args.section, "goals": [g.as_dict() for g in goals], "figures": figures,
               "raw": results}  # fmt: skip
    write_json(args.json, payload)
    return payload


def _cpu_goal(name: str, ratios: list[float]) -> Goal:
    ratio = median(ratios)
    cause = "" if ratio >= GOAL else f"rounds ranged {min(ratios):.3f}-{max(ratios):.3f}"
    return Goal(f"{name} (CPU time)", ratio, f">= {GOAL}", ratio >= GOAL, cause)


def _goal(name: str, ratios: list[float], bound: float | None = None, keras: bool = False) -> Goal:
    ratio = median(ratios)
    met = ratio >= GOAL
    cause = ""
    if not met:
        within = max(ratios) >= GOAL
        cause = f"rounds ranged {min(ratios):.3f}-{max(ratios):.3f}" + (
            " (the goal lies within this run's spread)" if within else ""
        )
        if bound is not None:
            cause += f"; det_jupyter's measured per-step CPU cost bounds the loss at {bound:.3f}"
        if keras:
            cause += (
                "; KerasTrial makes no synchronous Python call per batch: DetCallback counts the batch and "
                "buffers its logs unconverted, and acts (synchronously) only at validations, checkpoints, "
                "epoch ends and the end"
            )
    return Goal(name, ratio, f">= {GOAL}", met, cause)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
