"""Optuna anchor for bench_trials.py: N trivial objectives x 10 reports, timed inside this process.

Runs in the benchmark's own venv (Optuna is not a det_jupyter dependency); prints one JSON line.

Run:  /tmp/det-bench-anchors/bin/python bench/_anchor_optuna.py --trials 200 --storage memory|sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

REPORTS = 10


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--storage", choices=["memory", "sqlite"], default="memory")
    args = parser.parse_args()
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
