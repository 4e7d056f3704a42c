"""Search efficiency: det_jupyter's adaptive ASHA vs its random search vs Ray Tune's and Optuna's ASHA.

Side by side in one run, on the same tasks (``bench/_curves.py``: the same configuration gives the same
learning curve in every system), the same budget of trial-epochs, 2 trials at once, several seeds:

* det_jupyter ``random`` (the reference): ``N`` trials x ``max_time`` epochs; its budget ``B = N x
  max_time`` is everyone's budget.
* det_jupyter ``adaptive_asha`` (Determined's defaults: standard mode, divisor 4, max_rungs 5), and its
  ``aggressive`` mode (one bracket, as Ray Tune's default); ``max_trials`` sized so the ideal spend is
  about ``B``; killed if it reaches ``B``.
* Ray Tune ``ASHAScheduler`` (grace period 1, reduction factor 4, one bracket) and Optuna's
  ``HyperbandPruner`` / ``SuccessiveHalvingPruner`` (min resource 1, reduction factor 4), each with
  random sampling, run in the anchors' venv (``bench/_anchors.py``) until they have spent ``B``.

Every validation (one per epoch) is one trial-epoch, counted in report order; every trace is cut at
``B``. Figures per method and seed: trial-epochs and seconds until the first validation >= random
search's best, and the best validation after B/4, B/2 and B trial-epochs. Goal: ASHA needs <= 1/3 of
random search's trial-epochs (Li et al., "A System for Massively Parallel Hyperparameter Tuning"), and
its best at the budget is no worse than Ray Tune's and Optuna's.

Tasks: ``synthetic`` (a learning-curve model, 5 hyperparameters, instant epochs made ``--epoch-ms`` long
by a sleep) and ``digits`` (a real numpy MLP on a hard, label-noised subset of scikit-learn's digits).

Run:  .venv/bin/python bench/bench_search.py [--quick] [--tasks synthetic,digits] [--seeds 5]
      [--epoch-ms 25] [--no-anchors] [--write docs/benchmarks.md] [--json F]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import tempfile
import threading
import time
from typing import Any

import _curves
from _anchors import anchor_python
from _common import Goal, machine, machine_line, median, write_json, write_section

CONCURRENCY = 2
DIVISOR = 4
# task -> (random trials N, max_time epochs)
TASK_SIZES = {"synthetic": (16, 64), "digits": (16, 32)}
METHODS = {
    "random": "det_jupyter random (reference)",
    "asha": "det_jupyter adaptive_asha, standard (default)",
    "asha-aggr": "det_jupyter adaptive_asha, aggressive",
    "ray": "Ray Tune ASHAScheduler",
    "optuna-hb": "Optuna HyperbandPruner",
    "optuna-sha": "Optuna SuccessiveHalvingPruner",
}
ANCHORS = ("ray", "optuna-hb", "optuna-sha")


def train(ctx: Any) -> None:
    """The trial (Core API): one validation per epoch of the task's curve; stop when told."""
    hp = dict(ctx.hparams)
    it = _curves.curve(hp["task"], hp, int(hp["max_epochs"]), data_path=hp["data_path"],
                       epoch_seconds=float(hp["epoch_seconds"]))  # fmt: skip
    for epoch, acc in enumerate(it, 1):
        ctx.report_validation_metrics(epoch, {"val_accuracy": acc, "epochs": epoch})
        if ctx.should_stop():
            break


def asha_trials_for_budget(budget: int, max_time: int, mode: str) -> int:
    """The adaptive ASHA ``max_trials`` whose ideal spend (each rung keeps 1/divisor) is about ``budget``."""
    from det_jupyter.searcher.asha import adaptive_asha_brackets

    def spend(m: int) -> float:
        total = 0.0
        for b in adaptive_asha_brackets(max_trials=m, max_time=max_time, divisor=DIVISOR, mode=mode,
                                        max_rungs=5, max_concurrent_trials=CONCURRENCY):  # fmt: skip
            prev, alive = 0, float(b.max_trials)
            for length in b.rung_lengths:
                total += alive * (length - prev)
                prev, alive = length, alive / DIVISOR
        return total

    m = 1
    while spend(m) < budget:
        m += 1
    return m


def config(task: str, searcher: str, seed: int, max_trials: int, max_time: int, extra: dict[str, Any],
           hp_consts: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    return {
        "name": f"bench-search-{task}-{searcher}-{seed}",
        "hyperparameters": {**_curves.det_hyperparameters(task), **hp_consts},
        "searcher": {"name": searcher, "metric": "val_accuracy", "smaller_is_better": False,
                     "max_trials": max_trials, "time_metric": "epochs", "max_time": max_time,
                     "max_concurrent_trials": CONCURRENCY, **extra},
        "reproducibility": {"experiment_seed": seed},
    }  # fmt: skip


def run_det(client: Any, cfg: dict[str, Any], budget: int) -> dict[str, Any]:
    """Run one det_jupyter search; kill it once it has spent ``budget``. Trace: (t, trial, epoch, acc)."""
    import det_jupyter

    t0 = time.time()
    exp = det_jupyter.create_experiment(cfg, train, cluster=client)
    killed = threading.Event()

    def watch() -> None:
        while not exp.state.is_terminal:
            if len(exp.store.metrics(experiment_id=exp.id, kind="validation")) >= budget:
                exp.kill()
                killed.set()
                return
            time.sleep(0.25)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    state = exp.wait(timeout=3600)
    wall = time.time() - t0
    watcher.join(5)
    assert state.value == "COMPLETED" or killed.is_set(), (state, exp.error)
    rows = sorted(exp.store.metrics(experiment_id=exp.id, kind="validation"), key=lambda r: r.reported_at)
    trace = [(r.reported_at - t0, r.trial_id, int(r.steps), float(r.metrics["val_accuracy"])) for r in rows]
    return {"trace": trace, "wall": wall, "killed": killed.is_set()}


def run_anchor(python: str, method: str, task: str, seed: int, budget: int, max_time: int,
               epoch_seconds: float, data_path: str) -> dict[str, Any]:  # fmt: skip
    here = os.path.dirname(os.path.abspath(__file__))
    script = "_anchor_raytune.py" if method == "ray" else "_anchor_optuna.py"
    args = [python, os.path.join(here, script), "--search", task, "--seed", str(seed), "--budget", str(budget),
            "--max-time", str(max_time), "--epoch-seconds", str(epoch_seconds), "--data-path", data_path,
            "--concurrency", str(CONCURRENCY), "--reduction-factor", str(DIVISOR)]  # fmt: skip
    if method.startswith("optuna"):
        args += ["--pruner", "hyperband" if method == "optuna-hb" else "sha"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=3600, cwd=here)
    if out.returncode != 0:
        raise RuntimeError(f"{script} failed:\n{out.stderr[-3000:]}")
    res = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    res["trace"] = [tuple(r) for r in res["trace"]]
    return res


def analyse(trace: list[tuple[float, Any, int, float]], budget: int, target: float, max_time: int,
            anchor: bool = False) -> dict[str, Any]:  # fmt: skip
    """Figures of one search, its trace cut at ``budget`` trial-epochs."""
    cut = sorted(trace)[:budget]
    reach = next((i for i, r in enumerate(cut, 1) if r[3] >= target - 1e-12), None)
    last: dict[Any, int] = {}
    for _, trial, epoch, _ in cut:
        last[trial] = max(last.get(trial, 0), epoch)
    # rung lengths: det_jupyter's count down from max_time (Determined's), the anchors' up from 1 epoch
    rungs = (
        [DIVISOR**k for k in range(8)] if anchor else [max(int(max_time / DIVISOR**k), 1) for k in range(8)]
    )
    # epochs a stopped trial trained past the highest rung it reached (the asynchronous stop's overrun)
    overrun = sum(e - max(r for r in rungs if r <= e) for e in last.values() if e < max_time)
    return {
        "epochs_to_reach": float(reach) if reach else math.inf,
        "seconds_to_reach": cut[reach - 1][0] if reach else math.inf,
        "best": {str(f): max((r[3] for r in cut[: budget * f // 4]), default=math.nan) for f in (1, 2, 4)},
        "spent": len(cut),
        "trials": len(last),
        "stopped_early": sum(e < max_time for e in last.values()),
        "overrun": overrun,
        "seconds": cut[-1][0] if cut else math.nan,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer seeds (3 synthetic, 2 digits)")
    parser.add_argument("--tasks", default="synthetic,digits")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per task")
    parser.add_argument("--epoch-ms", type=float, default=25.0, help="minimum epoch length (a sleep)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"subset of {','.join(METHODS)}")
    parser.add_argument("--no-anchors", action="store_true", help="skip Ray Tune and Optuna")
    parser.add_argument("--section", default="search")
    parser.add_argument("--write", default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--from-json", default=None, help="re-render the tables of a saved --json run")
    args = parser.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            saved = json.load(f)
        return report(saved["raw"], saved["methods"], args, saved["epoch_seconds"], saved["wall"])
    tasks = [t for t in args.tasks.split(",") if t]
    methods = [m for m in args.methods.split(",") if m and not (args.no_anchors and m in ANCHORS)]
    assert methods and methods[0] == "random", "random search is the reference: list it first"
    epoch_s = args.epoch_ms / 1000.0
    os.environ["DET_JUPYTER_HOME"] = tempfile.mkdtemp(prefix="det-bench-search-")
    data_path = _curves.write_digits(os.path.join(os.environ["DET_JUPYTER_HOME"], "digits-hard.npz"))

    import cloudpickle
    from distributed import Client

    from det_jupyter.engine.cluster import local_cluster

    cloudpickle.register_pickle_by_value(_curves)
    if __name__ != "__main__":  # imported (bench/run.py): ship this module's trial by value too
        cloudpickle.register_pickle_by_value(__import__(__name__))
    anchors = None
    if any(m in ANCHORS for m in methods):
        anchors = anchor_python(["optuna", "ray[tune]"])
        if anchors is None:
            methods = [m for m in methods if m not in ANCHORS]
    cluster = local_cluster(n_workers=2, gpus=[], dashboard=False)
    client = Client(cluster, set_as_default=False)
    t_start = time.perf_counter()
    results: dict[str, Any] = {}
    for task in tasks:
        n, max_time = TASK_SIZES[task]
        budget = n * max_time
        seeds = args.seeds or (
            (3 if task == "synthetic" else 2) if args.quick else (5 if task == "synthetic" else 3)
        )
        consts = {"task": task, "max_epochs": max_time, "data_path": data_path, "epoch_seconds": epoch_s}
        sizes = {"asha": asha_trials_for_budget(budget, max_time, "standard"),
                 "asha-aggr": asha_trials_for_budget(budget, max_time, "aggressive")}  # fmt: skip
        runs: list[dict[str, Any]] = []
        for seed in range(1, seeds + 1):
            raw: dict[str, Any] = {}
            order = methods if seed % 2 else [methods[0], *reversed(methods[1:])]
            for m in order:
                print(f"[search] {task} seed {seed}: {m}", flush=True)
                if m == "random":
                    raw[m] = run_det(
                        client, config(task, "random", seed, n, max_time, {}, consts), budget + 1
                    )
                elif m.startswith("asha"):
                    extra = {"mode": "standard" if m == "asha" else "aggressive", "divisor": DIVISOR}
                    cfg = config(task, "adaptive_asha", seed, sizes[m], max_time, extra, consts)
                    raw[m] = run_det(client, cfg, budget)
                else:
                    assert anchors is not None
                    raw[m] = run_anchor(anchors, m, task, seed, budget, max_time, epoch_s, data_path)
            target = max(r[3] for r in raw["random"]["trace"])
            figures = {m: analyse(raw[m]["trace"], budget, target, max_time, m in ANCHORS) for m in methods}
            runs.append({"seed": seed, "target": target, "figures": figures,
                         "versions": {m: raw[m].get("version") for m in methods}})  # fmt: skip
        results[task] = {"runs": runs, "budget": budget, "n": n, "max_time": max_time, "sizes": sizes}
    client.close()
    cluster.close()
    wall = time.perf_counter() - t_start
    return report(results, methods, args, epoch_s, wall)


def _ratio(run: dict[str, Any], m: str) -> float:
    f = run["figures"]
    return f[m]["epochs_to_reach"] / f["random"]["epochs_to_reach"]


def report(
    results: dict[str, Any], methods: list[str], args: Any, epoch_s: float, wall: float
) -> dict[str, Any]:
    versions: dict[str, str] = {}
    for res in results.values():
        for run in res["runs"]:
            versions.update({m: v for m, v in run["versions"].items() if v})
    goals: list[Goal] = []
    summary: dict[str, Any] = {}
    lines = [
        "### Search efficiency: det_jupyter ASHA vs random search vs Ray Tune and Optuna (same tasks, same budget)",
        "",
        machine_line(machine(torch_needed=False))
        + f" LocalCluster of 2 single-thread workers; every method runs "
        f"{CONCURRENCY} trials at once; each epoch lasts at least {epoch_s * 1000:.0f} ms (a sleep: a workload of "
        "small real epochs, so asynchronous stop decisions arrive as in real training). Anchors: "
        + _anchor_line(methods, versions),
        "",
        'Budget B = random search\'s trial-epochs (N trials x max_time); every trace is cut at B. "to reach": '
        "trial-epochs (and seconds) until a method's first validation >= random search's best. Goal: det_jupyter "
        "ASHA reaches it in <= 1/3 of random's trial-epochs (median over seeds) and its best at B is no worse than "
        "the anchors' (median of per-seed differences >= -0.005, about one validation's noise).",
    ]
    for task, res in results.items():
        runs, budget = res["runs"], res["budget"]
        lines += [
            "",
            f"**{task}** ({len(runs)} seeds; random: {res['n']} trials x {res['max_time']} epochs, B = {budget}; "
            f"adaptive_asha max_trials {res['sizes']['asha']} standard / {res['sizes']['asha-aggr']} aggressive). "
            + _task_note(task),
            "",
            "| method | epochs to reach ÷ random's (median) | epochs to reach ÷ B (median) | reached in | epochs to reach (median) | seconds to "
            "reach (median) | best at B/4 | best at B/2 | best at B | trials | stopped early | epochs past a "
            "rung before stopping |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for m in methods:
            fs = [r["figures"][m] for r in runs]
            reached = [f for f in fs if math.isfinite(f["epochs_to_reach"])]
            ratio = median([_ratio(r, m) for r in runs])  # inf (not reached) sorts last: a true median
            lines.append(
                f"| {METHODS[m]} | {_fmt(ratio, 3)} | {_fmt(median([f['epochs_to_reach'] / budget for f in fs]), 3)} | "
                f"{len(reached)}/{len(fs)} | "
                f"{_fmt(median([f['epochs_to_reach'] for f in fs]))} | "
                f"{_fmt(median([f['seconds_to_reach'] for f in fs]), 1)} | "
                + " | ".join(f"{median([f['best'][str(q)] for f in fs]):.4f}" for q in (1, 2, 4))
                + f" | {median([f['trials'] for f in fs]):.0f} | {median([f['stopped_early'] for f in fs]):.0f} | "
                f"{median([f['overrun'] for f in fs]):.0f} |"
            )
            summary[f"{task}_{m}_ratio"] = ratio
            summary[f"{task}_{m}_best"] = median([f["best"]["4"] for f in fs])
        lines += ["", "| seed | random's best | " + " | ".join(f"{METHODS[m]}: epochs to reach / best at B" for m in methods)
                  + " |", "|---" * (len(methods) + 2) + "|"]  # fmt: skip
        for r in runs:
            f = r["figures"]
            lines.append(f"| {r['seed']} | {r['target']:.4f} | " + " | ".join(
                f"{_fmt(f[m]['epochs_to_reach'])} / {f[m]['best']['4']:.4f}" for m in methods) + " |")  # fmt: skip
        if "asha" in methods:
            ratio = median([_ratio(r, "asha") for r in runs])
            goals.append(Goal(f"{task}: det_jupyter ASHA trial-epochs to reach random's best ÷ random's (median)",
                              ratio, "<= 0.333", ratio <= 1 / 3,
                              "" if ratio <= 1 / 3 else _cause(task, runs, budget, methods)))  # fmt: skip
            for a in (m for m in methods if m in ANCHORS):
                diff = median(
                    [r["figures"]["asha"]["best"]["4"] - r["figures"][a]["best"]["4"] for r in runs]
                )
                goals.append(Goal(f"{task}: ASHA best at B − {METHODS[a]}'s (median over seeds)", diff,
                                  ">= -0.005", diff >= -0.005 - 1e-9,
                                  "" if diff >= -0.005 - 1e-9 else _cause_anchor(res, a)))  # fmt: skip
    lines += ["", f"(Wall time of the benchmark: {wall / 60:.1f} min.)", "", *Goal.table(goals, "{:.3f}")]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(args.write, args.section, text)
    payload = {"name": "search", "goals": [g.as_dict() for g in goals], "figures": summary, "raw": results,
               "methods": methods, "epoch_seconds": epoch_s, "wall": wall}  # fmt: skip
    write_json(args.json, payload)
    return payload


def _anchor_line(methods: list[str], versions: dict[str, str]) -> str:
    names = [f"{METHODS[m]} ({'Ray' if m == 'ray' else 'Optuna'} {versions.get(m, '?')})" for m in methods
             if m in ANCHORS]  # fmt: skip
    if not names:
        return "not run."
    return ", ".join(names) + " (random sampling, reduction factor 4, min resource 1 epoch)."


def _task_note(task: str) -> str:
    if task == "synthetic":
        import random
        import statistics

        rng = random.Random(0)
        best = [max(_curves.synthetic_accuracy(hp, e) for e in range(1, 65))
                for hp in (_curves.sample("synthetic", rng) for _ in range(1600))]  # fmt: skip
        q = statistics.quantiles(best, n=10)
        of16 = statistics.median(max(best[i : i + 16]) for i in range(0, 1600, 16))
        of128 = statistics.median(max(best[i : i + 128]) for i in range(0, 1536, 128))
        return (f"Best validation over 64 epochs of a random configuration (1,600 samples): median {q[4]:.2f}, "
                f"90th percentile {q[8]:.3f}; best of 16 (median) {of16:.3f}, best of 128 {of128:.3f}, highest "
                f"{max(best):.3f}.")  # fmt: skip
    return ("7 confusable classes, 240 training images with 25 % of their labels randomised, 600 clean validation "
            "images. Best validation of a random configuration over 32 epochs (60 samples): median ~0.77, top "
            "~0.90, so its top saturates: 10 % of configurations come within 2.5 points of the best, and one "
            "validation's noise is ~1.5 points.")  # fmt: skip


def _fmt(x: float, digits: int = 0) -> str:
    return "not reached" if math.isinf(x) else f"{x:.{digits}f}"


def _cause(task: str, runs: list[dict[str, Any]], budget: int, methods: list[str]) -> str:
    missed = sum(math.isinf(r["figures"]["asha"]["epochs_to_reach"]) for r in runs)
    found = median([r["figures"]["random"]["epochs_to_reach"] / budget for r in runs])
    over = median([r["figures"]["asha"]["overrun"] / r["figures"]["asha"]["spent"] for r in runs])
    others = [f"{METHODS[m]} {_fmt(median([_ratio(r, m) for r in runs]), 2)}" for m in methods
              if m not in ("random", "asha")]  # fmt: skip
    text = (f"random search found its best after {found:.0%} of its budget (median): 16 random configurations "
            "place their best early by luck as often as late, so the ratio swings per seed")  # fmt: skip
    if missed:
        text += f"; ASHA never reached random's best within B in {missed} of {len(runs)} seeds"
    if others:
        text += "; the same ratio for the others: " + ", ".join(others)
    return text + (f"; det_jupyter's stopped trials spent {over:.0%} of ASHA's trial-epochs past the rung they "
                   "were stopped at (the asynchronous stop, issue 12 item 1)")  # fmt: skip


def _cause_anchor(res: dict[str, Any], anchor: str) -> str:
    from det_jupyter.searcher.asha import adaptive_asha_brackets

    runs = res["runs"]
    brackets = adaptive_asha_brackets(max_trials=res["sizes"]["asha"], max_time=res["max_time"], divisor=DIVISOR,
                                      mode="standard", max_rungs=5, max_concurrent_trials=CONCURRENCY)  # fmt: skip
    starts = " and ".join(str(b.rung_lengths[0]) for b in brackets[1:])

    def med(m: str, key: str) -> float:
        return median([r["figures"][m][key] if key != "best" else r["figures"][m]["best"]["4"] for r in runs])

    text = (f"median best {med('asha', 'best'):.4f} vs {med(anchor, 'best'):.4f}; det_jupyter tried "
            f"{med('asha', 'trials'):.0f} configurations in the budget, the anchor {med(anchor, 'trials'):.0f}: the "
            f"default standard mode gives part of B to brackets that start at {starts} epochs, and stopped trials "
            f"ran {med('asha', 'overrun'):.0f} trial-epochs past their rung (issue 12 item 1)")  # fmt: skip
    if "asha-aggr" in runs[0]["figures"]:
        text += (f"; aggressive mode (one bracket, as the anchor's): {med('asha-aggr', 'best'):.4f} with "
                 f"{med('asha-aggr', 'trials'):.0f} configurations")  # fmt: skip
    return text


if __name__ == "__main__":
    main()
