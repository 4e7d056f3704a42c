"""Optuna anchor: trial throughput (bench_trials.py) and pruner search efficiency (bench_search.py).

Runs in the benchmark's own venv (Optuna is not a det_jupyter dependency); prints one JSON line.

* ``--trials N``: N trivial objectives x 10 reports, timed inside this process.
* ``--search TASK``: ``RandomSampler`` + ``HyperbandPruner`` or ``SuccessiveHalvingPruner`` (min resource
  1, reduction factor 4) on a ``bench/_curves.py`` task, ``--concurrency`` threads (``n_jobs``), until
  ``--budget`` trial-epochs are spent. The JSON line carries the trace: one ``[seconds since optimize()
  started, trial, epoch, accuracy]`` per report.

Run:  /tmp/det-bench-anchors/bin/python bench/_anchor_optuna.py --trials 200 --storage memory|sqlite
      /tmp/det-bench-anchors/bin/python bench/_anchor_optuna.py --search synthetic --pruner hyperband
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

REPORTS = 10


def search(args: argparse.Namespace) -> None:
    import threading

    import _curves
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.pruner == "hyperband":
        pruner: optuna.pruners.BasePruner = optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=args.max_time, reduction_factor=args.reduction_factor
        )
    else:
        pruner = optuna.pruners.SuccessiveHalvingPruner(
            min_resource=1, reduction_factor=args.reduction_factor
        )
    trace: list[list[float]] = []
    lock = threading.Lock()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=args.seed),
                                pruner=pruner)  # fmt: skip
    t0 = time.time()

    def objective(trial: optuna.Trial) -> float:
        hp: dict = {}
        for name, (kind, *a) in _curves.SPACES[args.search].items():
            if kind == "log":
                hp[name] = trial.suggest_float(name, 10 ** a[0], 10 ** a[1], log=True)
            elif kind == "int":
                hp[name] = trial.suggest_int(name, a[0], a[1])
            elif kind == "float":
                hp[name] = trial.suggest_float(name, a[0], a[1])
            else:
                hp[name] = trial.suggest_categorical(name, a[0])
        acc = 0.0
        curve = _curves.curve(args.search, hp, args.max_time, data_path=args.data_path,
                              epoch_seconds=args.epoch_seconds)  # fmt: skip
        for epoch, acc in enumerate(curve, 1):
            with lock:
                if len(trace) >= args.budget:  # the budget is spent: end this trial, start no other
                    study.stop()
                    raise optuna.TrialPruned()
                trace.append([time.time() - t0, trial.number, epoch, acc])
            trial.report(acc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return acc

    study.optimize(objective, n_trials=args.budget, n_jobs=args.concurrency)
    elapsed = time.time() - t0
    trace.sort()
    print(json.dumps({"seconds": elapsed, "version": optuna.__version__, "trials": len(study.trials),
                      "trace": trace}))  # fmt: skip


def main() -> None:
    import _curves  # beside this script (sys.path[0]), in the anchors' venv too

    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--storage", choices=["memory", "sqlite"], default="memory")
    parser.add_argument("--pruner", choices=["hyperband", "sha"], default="hyperband")
    _curves.add_search_arguments(parser, "pruned search")
    parser.add_argument("--reduction-factor", type=int, default=4)
    args = parser.parse_args()
    if args.search:
        search(args)
        return
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        for step in range(1, REPORTS + 1):
            trial.report(x / step, step)
        return x / REPORTS

    storage = None
    if args.storage == "sqlite":
        storage = f"sqlite:///{os.path.join(tempfile.mkdtemp(prefix='optuna-bench-'), 'optuna.db')}"
    t0 = time.perf_counter()
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=args.trials)
    elapsed = time.perf_counter() - t0
    assert len(study.trials) == args.trials
    reports = sum(len(t.intermediate_values) for t in study.trials)
    assert reports == args.trials * REPORTS, reports
    print(json.dumps({"seconds": elapsed, "version": optuna.__version__, "reports": reports}))


if __name__ == "__main__":
    main()
