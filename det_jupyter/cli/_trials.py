"""``det-jupyter trial ...`` (alias ``t``): ``describe ID [--json]`` and ``logs ID [--follow] [--tail N]``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from det_jupyter.store import Store

__all__ = ["run_trial_verb", "trial_json"]


def run_trial_verb(args: argparse.Namespace) -> int:
    """Run ``det-jupyter trial <verb>``; returns the exit status."""
    from det_jupyter.cli._follow import follow_trial_logs
    from det_jupyter.experiment import open_store

    store = open_store(args.store)
    store.get_trial(args.id)  # NotFoundError names the id
    if args.verb == "logs":
        if args.follow:
            return follow_trial_logs(store, args.id, tail=args.tail)
        for row in store.logs(args.id, tail=args.tail):
            print(row.line)
        return 0
    info = trial_json(store, args.id)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    metric = info["searcher_metric"]
    best = "-" if info["best_validation"] is None else f"{info['best_validation']:.6g}"
    print(
        f"trial {info['id']} of experiment {info['experiment_id']}: {info['state']}, restarts {info['restarts']}, "
        f"steps {info['steps_completed']}, best {metric} {best}"
    )
    print(f"hparams: {json.dumps(info['hparams'])}")
    for c in info["checkpoints"]:
        shown = "-" if c["metric"] is None else f"{c['metric']:.6g}"
        print(f"checkpoint {c['uuid']}  steps {c['steps']:>6}  {metric} {shown}")
    if info["error"]:
        print("error (last lines):\n" + "\n".join(info["error"].strip().splitlines()[-10:]))
    return 0


def trial_json(store: Store, trial_id: int) -> dict[str, Any]:
    """A trial as plain JSON data: ``id``, ``experiment_id``, ``state``, ``hparams``, ``restarts``,
    ``steps_completed``, ``best_validation``, ``latest_validation``, ``searcher_metric``, ``error``,
    ``worker``, ``checkpoints`` (``uuid``, ``steps``, ``metric``), oldest first."""
    t = store.get_trial(trial_id)
    searcher = store.get_experiment(t.experiment_id).config.get("searcher", {})
    return {
        "id": t.id,
        "experiment_id": t.experiment_id,
        "state": t.state.value,
        "hparams": t.hparams,
        "restarts": t.restarts,
        "steps_completed": t.steps_completed,
        "best_validation": t.best_validation,
        "latest_validation": t.latest_validation,
        "searcher_metric": searcher.get("metric"),
        "error": t.error,
        "worker": t.worker,
        "checkpoints": [
            {"uuid": c.uuid, "steps": c.steps, "metric": c.metric}
            for c in store.checkpoints(trial_id=trial_id)
        ],
    }
