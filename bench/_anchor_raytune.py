"""Ray Tune anchor: trial throughput (bench_trials.py) and ASHA search efficiency (bench_search.py).

Runs in the benchmark's own venv (Ray is not a det_jupyter dependency); prints one JSON line. Ray is
started first (not timed, as our side's cluster is warm too); ``Tuner.fit()`` is timed.

* ``--trials N``: N trivial trainables x 10 reports with the default Tuner.
* ``--search TASK``: ``ASHAScheduler`` (one bracket, grace period 1, reduction factor 4) with random
  sampling (``BasicVariantGenerator``) on a ``bench/_curves.py`` task, ``--concurrency`` trials at once,
  until ``--budget`` trial-epochs are spent (a ``Stopper``). The JSON line carries the trace: one
  ``[seconds since fit() started, trial, epoch, accuracy]`` per report.

Run:  /tmp/det-bench-anchors/bin/python bench/_anchor_raytune.py --trials 200
      /tmp/det-bench-anchors/bin/python bench/_anchor_raytune.py --search synthetic --budget 1024 --seed 1
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


def search_trainable(config: dict) -> None:
    import time

    import _curves
    from ray import tune

    for epoch, acc in enumerate(
        _curves.curve(config["task"], config, config["max_epochs"], data_path=config["data_path"],
                      epoch_seconds=config["epoch_seconds"]), 1
    ):  # fmt: skip
        tune.report({"val_accuracy": acc, "epoch": epoch, "t": time.time()})


def search(args: argparse.Namespace) -> None:
    import random

    import _curves
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    here = os.path.dirname(os.path.abspath(__file__))
    os.environ["PYTHONPATH"] = here + os.pathsep + os.environ.get("PYTHONPATH", "")
    ray.init(num_cpus=args.concurrency, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}})  # fmt: skip
    random.seed(args.seed)
    space: dict = {"task": args.search, "max_epochs": args.max_time, "data_path": args.data_path,
                   "epoch_seconds": args.epoch_seconds}  # fmt: skip
    for name, (kind, *a) in _curves.SPACES[args.search].items():
        space[name] = (tune.loguniform(10 ** a[0], 10 ** a[1]) if kind == "log" else tune.randint(a[0], a[1] + 1)
                       if kind == "int" else tune.uniform(a[0], a[1]) if kind == "float" else tune.choice(a[0]))  # fmt: skip

    class Budget(tune.Stopper):
        """End the whole search once ``budget`` trial-epochs have been reported."""

        def __init__(self) -> None:
            self.reports = 0

        def __call__(self, trial_id: str, result: dict) -> bool:
            self.reports += 1
            return False

        def stop_all(self) -> bool:
            return self.reports >= args.budget

    scheduler = ASHAScheduler(time_attr="epoch", max_t=args.max_time, grace_period=1,
                              reduction_factor=args.reduction_factor, brackets=1)  # fmt: skip
    tuner = tune.Tuner(
        tune.with_resources(search_trainable, {"cpu": 1}),
        param_space=space,
        tune_config=tune.TuneConfig(metric="val_accuracy", mode="max", scheduler=scheduler,
                                    num_samples=args.budget, max_concurrent_trials=args.concurrency,
                                    search_alg=BasicVariantGenerator(random_state=args.seed), reuse_actors=True),
        run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(prefix="ray-bench-"), verbose=0,
                                  stop=Budget()),
    )  # fmt: skip
    t0 = time.time()
    results = tuner.fit()
    elapsed = time.time() - t0
    trace = []
    for i, r in enumerate(results):
        df = r.metrics_dataframe
        if df is None or len(df) == 0:
            continue
        for t, epoch, acc in zip(df["t"], df["epoch"], df["val_accuracy"]):
            trace.append([float(t) - t0, i, int(epoch), float(acc)])
    ray.shutdown()
    trace.sort()
    print(
        json.dumps({"seconds": elapsed, "version": ray.__version__, "trials": len(results), "trace": trace})
    )


def main() -> None:
    import _curves  # beside this script (sys.path[0]), in the anchors' venv too

    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    _curves.add_search_arguments(parser, "ASHA search")
    parser.add_argument("--reduction-factor", type=float, default=4)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")
    if args.search:
        search(args)
        return
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
