"""Checkpoint cost: checkpoint every epoch vs none, det_jupyter save + load vs raw torch, best model load.

1. **Checkpoint every epoch ÷ none** (goal >= 0.97): TorchTrial with the context a worker builds (local
   checkpoint storage, reports buffered), the small CNN on CIFAR-shaped data, validation every epoch in
   both variants; one variant adds ``min_checkpoint_period: 1 epoch`` (model ``state_dict``, optimizer
   and RNG state, and the whole module by value, committed atomically). Throughput is timed over
   epochs 2..E, so it holds the checkpoints of epochs 1..E-1 and no setup. Also reported: how long each
   checkpoint blocks the training loop.
2. **Save + load through det_jupyter vs raw torch** (goal >= 0.9x), a ~100 MB MLP: ``ctx.checkpoint.save``
   + ``det_jupyter.torch.save_model`` (default format: ``state_dict.pt`` + ``module.pkl``, the weights
   written once), then ``Checkpoint.load()`` from the store, vs ``torch.save(model)``
   + ``torch.load`` of one file (the anchor with the same result: a module back without user code).
3. **Best model into the kernel** (goal <= 2 s for 100 MB): ``get_experiment(id).best_checkpoint().load()``.

Run:  .venv/bin/python bench/bench_checkpoint.py [--quick] [--write docs/benchmarks.md] [--json F]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from typing import Any

import _workloads as W
from _common import Goal, interleaved, machine, machine_line, median, write_json, write_section

from det_jupyter.store import CheckpointRow


def trial_context(params: dict[str, Any], storage: str, every_epoch: bool, epochs: int) -> Any:
    from det_jupyter.worker.context import TrialContext, TrialSpec

    class Sink:
        def emit(self, event: dict[str, Any]) -> None:
            pass

    spec = TrialSpec(
        experiment_id=1, trial_id=1, run_id=0, hparams=dict(params), metric="val_loss",
        smaller_is_better=True, time_metric="epochs", max_time=epochs, storage_url=storage,
        min_checkpoint_period=("epochs", 1) if every_epoch else None,
    )  # fmt: skip
    return TrialContext(spec, Sink())


class SaveTimer:
    """Wraps TorchLoop._save to record how long each checkpoint blocks the loop."""

    def __init__(self) -> None:
        from det_jupyter.frameworks import _torch_loop

        self.loop_cls = _torch_loop.TorchLoop
        self.original = self.loop_cls._save
        self.durations: list[float] = []

    def __enter__(self) -> SaveTimer:
        original, durations = self.original, self.durations

        def timed(loop: Any) -> None:
            t0 = time.perf_counter()
            original(loop)
            durations.append(time.perf_counter() - t0)

        self.loop_cls._save = timed
        return self

    def __exit__(self, *exc: Any) -> None:
        self.loop_cls._save = self.original


def epoch_runs(device: str, epochs: int, steps: int, repeats: int) -> dict[str, Any]:
    root = tempfile.mkdtemp(prefix="det-bench-ckpt-")
    batch = W.MODELS["cnn"][2 if device == "cuda" else 1]
    params = {"model": "cnn", "batch": batch, "steps": steps, "warmup": min(10, steps // 4), "threads": 1}
    blocking: dict[bool, list[float]] = {}
    files: dict[str, float] = {}  # a TorchTrial checkpoint's files (MB): the weights once?

    def run(every_epoch: bool, background: bool = True) -> float:
        storage = tempfile.mkdtemp(dir=root)
        cls = W.trial_class()
        cls.checkpoint_in_background = background  # ignored by a det_jupyter without background writes
        with SaveTimer() as timer:
            cls.run_trial(trial_context(params, storage, every_epoch, epochs))
        if every_epoch:  # the last one (end of training) is outside the window
            blocking.setdefault(background, []).extend(timer.durations[:-1])
        for checkpoint in (p for p in os.scandir(storage) if p.is_dir()):
            for f in os.scandir(checkpoint.path):
                files[f.name] = f.stat().st_size / 1e6
        shutil.rmtree(storage, ignore_errors=True)
        data = cls.last_data
        ends = data.epoch_ends
        return (len(ends) - 1) * steps * batch / (ends[-1] - ends[0])

    runs = interleaved(
        {
            "none": lambda: run(False),
            "every_epoch": lambda: run(True),
            "every_epoch_sync": lambda: run(True, background=False),
        },
        repeats,
    )
    shutil.rmtree(root, ignore_errors=True)
    return {"params": {**params, "epochs": epochs}, "runs": runs, "blocking_s": blocking, "files_mb": files}


def save_load_runs(device: str, repeats: int) -> dict[str, Any]:
    import torch

    import det_jupyter
    from det_jupyter.config import load_config
    from det_jupyter.engine.definition import freeze
    from det_jupyter.store import Store
    from det_jupyter.torch import FORMAT, save_model
    from det_jupyter.trial import Checkpoint

    home = tempfile.mkdtemp(prefix="det-bench-ckpt-home-")
    os.environ["DET_JUPYTER_HOME"] = home
    storage = os.path.join(home, "checkpoints")
    raw_dir = tempfile.mkdtemp(prefix="det-bench-raw-")
    torch.manual_seed(0)
    model = W.make_model("big").to(device)
    size_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6

    def core(ctx: Any) -> None:  # the experiment's entrypoint (never run here; load uses the format)
        pass

    store = Store(os.path.join(home, "det_jupyter.db"))
    cfg = load_config({"name": "bench-ckpt", "searcher": {"name": "single", "metric": "val_loss", "max_time": 1, "time_metric": "batches"},
                       "checkpoint_storage": {"type": "shared_fs", "host_path": storage}})  # fmt: skip
    exp_id = store.create_experiment(name="bench-ckpt", config=cfg.to_dict(), entrypoint=freeze(core), seed=0)
    trial_id = store.create_trial(exp_id, 1, {})
    ctx = trial_context({}, storage, False, 1)
    rows: dict[str, Any] = {}
    step = [0]
    timings: dict[str, list[float]] = {
        k: [] for k in ("det_save", "det_load", "det1_save", "det1_load", "raw_save", "raw_load")
    }

    def det(state_dict: bool = True) -> float:
        step[0] += 1
        key = "det" if state_dict else "det1"
        t0 = time.perf_counter()
        with ctx.checkpoint.save(step[0], metadata={"format": FORMAT}) as path:
            save_model(model, path, state_dict=state_dict)
        t1 = time.perf_counter()
        uuid = ctx.checkpoint.latest
        store.add_checkpoint(CheckpointRow.committed(uuid=uuid, trial_id=trial_id, experiment_id=exp_id, run_id=0,
                                                     steps=step[0], metadata={"format": FORMAT}, resources={},
                                                     metric=float(step[0])))  # fmt: skip
        row = store.checkpoints(trial_id=trial_id)[-1]
        t2 = time.perf_counter()
        loaded = Checkpoint(row, store).load()
        t3 = time.perf_counter()
        assert isinstance(loaded, torch.nn.Module)
        if state_dict:
            with ctx.checkpoint.restore() as committed:
                rows["files"] = {f.name: f.stat().st_size / 1e6 for f in committed.iterdir()}
        timings[f"{key}_save"].append(t1 - t0)
        timings[f"{key}_load"].append(t3 - t2)
        return (t1 - t0) + (t3 - t2)

    def raw() -> float:
        file = os.path.join(raw_dir, "model.pt")
        t0 = time.perf_counter()
        torch.save(model, file)
        t1 = time.perf_counter()
        loaded = torch.load(file, map_location="cpu", weights_only=False)
        t2 = time.perf_counter()
        assert isinstance(loaded, torch.nn.Module)
        os.unlink(file)
        timings["raw_save"].append(t1 - t0)
        timings["raw_load"].append(t2 - t1)
        return t2 - t0

    runs = interleaved({"raw": raw, "det": det, "det1": lambda: det(state_dict=False)}, repeats)
    for k in timings:  # drop the warm-up round
        timings[k] = timings[k][1:]
    best = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        loaded = det_jupyter.get_experiment(exp_id, store=store).best_checkpoint().load()
        best.append(time.perf_counter() - t0)
        assert isinstance(loaded, torch.nn.Module)
    files = rows["files"]
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(raw_dir, ignore_errors=True)
    return {"size_mb": size_mb, "runs": runs, "timings": timings, "best_load_s": best, "files_mb": files}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="batches per epoch")
    parser.add_argument("--section", default="checkpoint")
    parser.add_argument("--write", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(1)
    repeats = args.repeats or (2 if args.quick else 5)
    epochs = args.epochs or (3 if args.quick else 4 if device == "cpu" else 5)
    # an epoch of CIFAR-10 (50,000 images) on the GPU; a 1,024 / 2,048-image slice of it on 1 CPU thread
    steps = args.steps or (196 if device == "cuda" else (16 if args.quick else 32))
    print(f"[checkpoint] every epoch vs none: {epochs} epochs x {steps} batches on {device}", flush=True)
    ep = epoch_runs(device, epochs, steps, repeats)
    print("[checkpoint] save + load, ~100 MB", flush=True)
    sl = save_load_runs(device, repeats)

    ratios = [a / b for a, b in zip(ep["runs"]["every_epoch"], ep["runs"]["none"])]
    ratio = median(ratios)
    sync_ratios = [a / b for a, b in zip(ep["runs"]["every_epoch_sync"], ep["runs"]["none"])]
    sync_ratio = median(sync_ratios)
    block = median(ep["blocking_s"].get(True, []))
    block_sync = median(ep["blocking_s"].get(False, []))
    p = ep["params"]
    epoch_s = p["steps"] * p["batch"] / median(ep["runs"]["none"])
    t = sl["timings"]
    save_ratio = median(t["raw_save"]) / median(t["det_save"])
    load_ratio = median(t["raw_load"]) / median(t["det_load"])
    # file I/O on a shared machine has outliers (page-cache writeback): ratios of the medians shown
    both_ratio = median(sl["runs"]["raw"]) / median(sl["runs"]["det"])
    single_ratio = median(sl["runs"]["raw"]) / median(sl["runs"]["det1"])
    best = median(sl["best_load_s"])
    goals = [
        Goal("throughput, checkpoint every epoch ÷ none", ratio, ">= 0.97", ratio >= 0.97,
             f"rounds {min(ratios):.3f}-{max(ratios):.3f}; each checkpoint blocks the loop {block * 1000:.1f} ms "
             f"({block / epoch_s:.1%} of a {epoch_s:.2f} s epoch; {block_sync * 1000:.1f} ms written in the training "
             f"thread, ratio {sync_ratio:.3f}), so the rest is the machine's spread or the writer thread's "
             "CPU share"),
        Goal("save + load speed, det_jupyter ÷ raw torch", both_ratio, ">= 0.90", both_ratio >= 0.9,
             "the default format writes the weights once (state_dict.pt + module.pkl, the module's structure "
             f"without its tensors); the single-file model.pt (state_dict=False): {single_ratio:.2f}; writes of "
             "100 MB vary with the machine's page cache"),
        Goal(f"best checkpoint into the kernel ({sl['size_mb']:.0f} MB), seconds", best, "<= 2.0", best <= 2.0,
             "load time"),
    ]  # fmt: skip
    files = ", ".join(f"{k} {v:.1f} MB" for k, v in sorted(sl["files_mb"].items()))
    lines = [
        f"### Checkpoint cost on {device.upper()} (median of {repeats} interleaved rounds)",
        "",
        machine_line(machine()),
        "",
        f"Small CNN, batch {p['batch']}, {p['steps']} batches per epoch ({p['steps'] * p['batch']:,} images, "
        f"{epoch_s:.2f} s), {p['epochs']} epochs, validation every epoch in both variants:",
        "",
        "| variant | images/s | ratio |",
        "|---|---|---|",
        f"| no checkpoint until the end | {median(ep['runs']['none']):,.0f} | 1.000 |",
        f"| checkpoint every epoch, written in the background (default) | {median(ep['runs']['every_epoch']):,.0f} "
        f"| {ratio:.3f} (rounds {min(ratios):.3f}-{max(ratios):.3f}) |",
        f"| checkpoint every epoch, written in the training thread (`checkpoint_in_background = False`) | "
        f"{median(ep['runs']['every_epoch_sync']):,.0f} | {sync_ratio:.3f} "
        f"(rounds {min(sync_ratios):.3f}-{max(sync_ratios):.3f}) |",
        "",
        f"Each checkpoint blocked the training loop {block * 1000:.1f} ms in the background mode, "
        f"{block_sync * 1000:.1f} ms when written in the training thread (medians). A TorchTrial checkpoint "
        "(`save_whole_model = True`, the default) holds: "
        + ", ".join(f"{name} {mb:.3f} MB" for name, mb in sorted(ep.get("files_mb", {}).items()))
        + " (the weights once: `state_dict.pt`; `module.pkl` is the structure).",
        "",
        f"Save + load of a {sl['size_mb']:.0f} MB model ({device} weights; files written by save_model: {files}):",
        "",
        "| step | raw torch s | det_jupyter s | speed ratio raw/det |",
        "|---|---|---|---|",
        f"| save (`torch.save(model)` vs `ctx.checkpoint.save` + `save_model`) | {median(t['raw_save']):.3f} | "
        f"{median(t['det_save']):.3f} | {save_ratio:.2f} |",
        f"| load (`torch.load` vs `Checkpoint.load()`) | {median(t['raw_load']):.3f} | {median(t['det_load']):.3f} "
        f"| {load_ratio:.2f} |",
        f"| both | {median(sl['runs']['raw']):.3f} | {median(sl['runs']['det']):.3f} | {both_ratio:.2f} |",
        f"| save with `save_model(..., state_dict=False)` (older single file model.pt) | {median(t['raw_save']):.3f} | "
        f"{median(t['det1_save']):.3f} | {median(t['raw_save']) / median(t['det1_save']):.2f} |",
        f"| both, `state_dict=False` | {median(sl['runs']['raw']):.3f} | {median(sl['runs']['det1']):.3f} | "
        f"{single_ratio:.2f} |",
        "",
        f"Best model into the kernel (`get_experiment(id).best_checkpoint().load()`): {best:.3f} s.",
        "",
        *Goal.table(goals),
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, args.section, text)
    payload = {"name": args.section, "goals": [g.as_dict() for g in goals],
               "figures": {"epoch_ratio": ratio, "blocking_ms": block * 1000, "epoch_s": epoch_s,
                           "epoch_ratio_sync": sync_ratio, "blocking_sync_ms": block_sync * 1000,
                           "save_ratio": save_ratio, "load_ratio": load_ratio, "save_load_ratio": both_ratio,
                           "save_load_ratio_single_file": single_ratio,
                           "best_load_s": best}, "raw": {"epochs": ep, "save_load": sl}}  # fmt: skip
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
