"""Ray Tune anchor for bench_trials.py: N trivial trainables x 10 reports with the default Tuner.

Runs in the benchmark's own venv (Ray is not a det_jupyter dependency); prints one JSON line. Ray is
started first (not timed, as our side's cluster is warm too); ``Tuner.fit()`` is timed.

Run:  /tmp/det-bench-anchors/bin/python bench/_anchor_raytune.py --trials 200
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

REPORTS = 10


def trainable(config: dict) -> None:
    from ray import tune

    for step in range(1, REPORTS + 1):
        tune.report({"val_loss": config["x"] / step, "step": step})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")
    import ray
    from ray import tune

    t0 = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    init_s = time.perf_counter() - t0
    tuner = tune.Tuner(
        trainable,
        param_space={"x": tune.uniform(0.0, 1.0)},
        tune_config=tune.TuneConfig(num_samples=args.trials, metric="val_loss", mode="min"),
        run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(prefix="ray-bench-"), verbose=0),
    )
    t0 = time.perf_counter()
    results = tuner.fit()
    elapsed = time.perf_counter() - t0
    reports = sum(len(r.metrics_dataframe) for r in results)
    ray.shutdown()
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "init_seconds": init_s,
                "version": ray.__version__,
                "trials": len(results),
                "reports": reports,
            }
        )
    )


if __name__ == "__main__":
    main()
