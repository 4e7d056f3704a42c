"""Stores filled through the Store API, as a controller writes them."""

from __future__ import annotations

import math

from det_jupyter.states import ExperimentState, TrialState
from det_jupyter.store import CheckpointRow, LogRow, MetricRow, Store


def fill_store(store: Store) -> dict[str, int]:
    """Write two experiments through the Store API, as a controller would.

    ``done``: COMPLETED, 3 trials (smaller is better; best 0.25), metrics (training 1..20, validation
    every 5, one NaN), checkpoints and logs. ``running``: ACTIVE, 2 trials, no metrics yet.
    """
    cfg = {"name": "done", "searcher": {"name": "random", "metric": "val_loss", "smaller_is_better": True}}
    done = store.create_experiment(name="done", config=cfg, entrypoint=b"x", seed=1, entrypoint_name="train")
    trial_ids = []
    for request_id, best in enumerate([0.5, 0.25, 1.0]):
        tid = store.create_trial(done, request_id, {"lr": 0.1 * (request_id + 1), "layers": request_id})
        trial_ids.append(tid)
        store.update_trial(
            tid,
            state=TrialState.COMPLETED,
            steps_completed=20,
            best_validation=best,
            latest_validation=best,
            worker="tcp://127.0.0.1:1",
            started_at=1.0,
            ended_at=2.0,
        )
        rows = [MetricRow(tid, 0, "training", s, {"loss": 1.0 / s}, float(s)) for s in range(1, 21)]
        rows += [
            MetricRow(tid, 0, "validation", s, {"val_loss": best + 1.0 / s}, float(s))
            for s in (5, 10, 15, 20)
        ]
        store.add_metrics(rows)
        store.add_logs([LogRow(tid, 0, float(i), f"trial {tid} line {i}") for i in range(150)])
        store.add_checkpoint(
            CheckpointRow.committed(
                uuid=f"ckpt-{tid}",
                trial_id=tid,
                experiment_id=done,
                run_id=0,
                steps=20,
                metadata={"format": "torch-module"},
                resources={"model.pt": 10},
                metric=best,
            )
        )
    store.add_metrics([MetricRow(trial_ids[2], 0, "training", 21, {"loss": math.nan}, 21.0)])
    store.save_searcher_state(done, {"ops": []}, 1.0)
    store.update_experiment(done, state=ExperimentState.COMPLETED, ended_at=3.0)

    cfg2 = {"name": "running", "searcher": {"name": "grid", "metric": "acc", "smaller_is_better": False}}
    running = store.create_experiment(name="running", config=cfg2, entrypoint=b"y", seed=2)
    r1 = store.create_trial(running, 0, {"lr": 0.5})
    store.create_trial(running, 1, {"lr": 0.6})
    store.update_trial(r1, state=TrialState.ACTIVE, best_validation=0.7)
    return {"done": done, "running": running, "trial": trial_ids[1], "nan_trial": trial_ids[2]}
