"""Replay of Ray Tune's ASHAScheduler and Optuna's pruners on a ``bench/_curves.py`` task (many seeds).

Runs in the anchors' venv (``bench/_anchors.py``); prints one JSON line: per method, per seed, the
compact trace of :func:`_curves.replay`. The schedulers are the libraries' own objects, driven by the
same discrete-event replay as det_jupyter's searchers in ``bench_search.py`` (``slots`` trials at once,
one tick per epoch, decisions immediate), on the same configuration sequence per seed
(``_curves.stream(task, seed, "asha")``):

* ``ray``: ``ray.tune.schedulers.ASHAScheduler(time_attr="epoch", max_t, grace_period=1,
  reduction_factor, brackets=1)``; its ``on_trial_add`` / ``on_trial_result`` / ``on_trial_complete``
  are called as Tune's controller calls them; ``STOP`` stops the trial.
* ``optuna-hb`` / ``optuna-sha``: an in-memory study with ``HyperbandPruner(min_resource=1,
  max_resource=max_t, reduction_factor)`` / ``SuccessiveHalvingPruner(min_resource=1,
  reduction_factor)``, trials by ``study.ask()``, ``trial.report`` + ``trial.should_prune()`` per epoch,
  ``study.tell`` at the end (pruned or complete), as ``study.optimize`` does.

Run:  /tmp/det-bench-anchors/bin/python bench/_anchor_replay.py --task synthetic --seeds 1-20 \
          --budget 2048 --max-time 64 --reduction-factor 4 --slots 2 --methods ray,optuna-hb,optuna-sha
"""

from __future__ import annotations

import argparse
import json
import types
from typing import Any

import _curves


class RayReplay:
    """Ray Tune's ASHAScheduler, called as Tune's controller calls it."""

    def __init__(self, configs: Any, max_t: int, rf: float) -> None:
        from ray.tune.schedulers import ASHAScheduler, TrialScheduler

        self._stop = TrialScheduler.STOP
        self.s = ASHAScheduler(
            time_attr="epoch", max_t=max_t, grace_period=1, reduction_factor=rf, brackets=1
        )
        self.s.set_search_properties("val_accuracy", "max")
        self._configs, self._n, self._trials = configs, 0, {}

    def start(self) -> tuple[Any, dict[str, Any]]:
        self._n += 1
        trial = types.SimpleNamespace(trial_id=f"t{self._n}")
        self._trials[trial.trial_id] = trial
        self.s.on_trial_add(None, trial)
        return trial.trial_id, next(self._configs)

    def report(self, key: str, epoch: int, acc: float) -> bool:
        self._last = {"epoch": epoch, "val_accuracy": acc}
        return self.s.on_trial_result(None, self._trials[key], self._last) == self._stop

    def end(self, key: str, epoch: int, stopped: bool) -> None:
        trial = self._trials.pop(key)
        if stopped:  # Tune stops the trial: the scheduler forgets it (on_trial_remove)
            self.s.on_trial_remove(None, trial)
        else:
            self.s.on_trial_complete(None, trial, self._last)


class OptunaReplay:
    """An Optuna study with a pruner, trials asked and told as ``study.optimize`` does."""

    def __init__(self, configs: Any, task: str, pruner: str, max_t: int, rf: int, seed: int) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if pruner == "hyperband":
            p: Any = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_t, reduction_factor=rf)
        else:
            p = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=rf)
        self._optuna = optuna
        # HyperbandPruner picks a trial's bracket from a hash of the study name and trial number: a fixed
        # name per seed makes the replay repeatable (a generated name changes the brackets every run)
        self.study = optuna.create_study(direction="maximize", pruner=p, study_name=f"{task}-{seed}",
                                         sampler=optuna.samplers.RandomSampler(seed=0))  # fmt: skip
        self._configs, self._trials, self._last = configs, {}, {}

    def start(self) -> tuple[Any, dict[str, Any]]:
        trial = self.study.ask()  # pruners read only the reported values, never the parameters
        self._trials[trial.number] = trial
        return trial.number, next(self._configs)

    def report(self, key: int, epoch: int, acc: float) -> bool:
        trial = self._trials[key]
        trial.report(acc, epoch)
        self._last[key] = acc
        return bool(trial.should_prune())

    def end(self, key: int, epoch: int, stopped: bool) -> None:
        trial = self._trials.pop(key)
        state = self._optuna.trial.TrialState.PRUNED if stopped else self._optuna.trial.TrialState.COMPLETE
        self.study.tell(trial, self._last.pop(key) if not stopped else None, state=state)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="synthetic")
    parser.add_argument("--seeds", default="1-20", help="a range a-b")
    parser.add_argument("--budget", type=int, required=True)
    parser.add_argument("--max-time", type=int, required=True)
    parser.add_argument("--reduction-factor", type=int, default=4)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--data-path", default="")
    parser.add_argument("--methods", default="ray,optuna-hb,optuna-sha")
    args = parser.parse_args()
    lo, hi = (int(x) for x in args.seeds.split("-"))
    versions: dict[str, str] = {}
    out: dict[str, dict[str, Any]] = {}
    curves = _curves.Curves(args.task, args.max_time, args.data_path)
    for method in args.methods.split(","):
        out[method] = {}
        for seed in range(lo, hi + 1):
            configs = _curves.stream(args.task, seed, "asha")
            if method == "ray":
                import ray

                versions[method] = ray.__version__
                import numpy as np

                np.random.seed(seed)  # ASHAScheduler draws brackets from numpy's global generator
                sched: Any = RayReplay(configs, args.max_time, args.reduction_factor)
            else:
                import optuna

                versions[method] = optuna.__version__
                pruner = "hyperband" if method == "optuna-hb" else "sha"
                sched = OptunaReplay(configs, args.task, pruner, args.max_time, args.reduction_factor, seed)
            out[method][str(seed)] = _curves.replay(sched, curves, args.budget, args.slots)
    print(json.dumps({"versions": versions, "replays": out}))


if __name__ == "__main__":
    main()
