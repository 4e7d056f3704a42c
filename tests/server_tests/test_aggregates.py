"""The experiment list's aggregate query (``Store.experiment_aggregates``) gives the numbers the
per-experiment path (every trial row read, then :mod:`det_jupyter.store.progress` and
:mod:`det_jupyter.searcher.ranking` in Python) gives, on a real SQLite store with trials in every state."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from det_jupyter.server.serializers import best_trial_id, serialize_experiment_summary
from det_jupyter.server.service import ExperimentService
from det_jupyter.states import ExperimentState, TrialState
from det_jupyter.store import Store
from det_jupyter.store.progress import experiment_progress


@pytest.fixture(autouse=True)
def _close_service() -> None:
    """Overrides the directory's server-bound fixture: these tests start no Jupyter server."""


def _config(**searcher: Any) -> dict[str, Any]:
    return {"searcher": {"name": "random", "metric": "val_loss", **searcher}, "hyperparameters": {}}


# (state, searcher_time, steps_completed, best_validation, started_at) per trial
MIXED = [
    (TrialState.COMPLETED, 100.0, 100, 0.30, 10.0),
    (TrialState.STOPPED, 20.0, 25, 0.20, 11.0),
    (TrialState.ACTIVE, 40.0, 55, 0.20, 12.0),  # ties the STOPPED one: the older wins
    (TrialState.PAUSED, 30.0, 30, None, 9.5),
    (TrialState.CANCELED, 10.0, 12, math.nan, 13.0),  # NaN ranks nowhere
    (TrialState.ERROR, 5.0, 250, math.inf, None),  # inf neither; steps beyond max_time count 1
    (TrialState.QUEUED, 0.0, 0, None, None),
    (TrialState.ACTIVE, 60.0, 70, -math.inf, 14.0),  # -inf neither
]


def _fill(store: Store) -> list[int]:
    specs = [
        ("batches, smaller", _config(max_trials=10, max_time=100, time_metric="batches"), ExperimentState.ACTIVE),
        ("epochs, larger", _config(max_trials=8, max_time=50, time_metric="epochs", smaller_is_better=False),
         ExperimentState.PAUSED),
        ("no max_time", _config(max_trials=4), ExperimentState.ACTIVE),
        ("more trials than planned", _config(max_trials=2, max_time=100, time_metric="batches"),
         ExperimentState.CANCELED),
        ("completed", _config(max_trials=20, max_time=100, time_metric="batches"), ExperimentState.COMPLETED),
        ("no trials", _config(max_trials=3, max_time=10, time_metric="batches"), ExperimentState.ACTIVE),
        ("grid", {"searcher": {"name": "grid", "metric": "acc", "smaller_is_better": False, "max_time": 80,
                               "time_metric": "batches"},
                  "hyperparameters": {"x": {"type": "categorical", "vals": [1, 2, 3, 4, 5, 6, 7, 8, 9]}}},
         ExperimentState.ACTIVE),
    ]  # fmt: skip
    ids = []
    for k, (name, config, state) in enumerate(specs):
        exp = store.create_experiment(name=name, config=config, entrypoint=b"", seed=k)
        store.update_experiment(exp, state=state)
        ids.append(exp)
        if name == "no trials":
            continue
        for i, (trial_state, searcher_time, steps, best, started) in enumerate(MIXED[k:] + MIXED[:k]):
            tid = store.create_trial(exp, i, {"x": i})
            store.update_trial(tid, state=trial_state, searcher_time=searcher_time, steps_completed=steps,
                               best_validation=best, started_at=started)  # fmt: skip
    return ids


def test_the_aggregate_query_gives_the_per_experiment_numbers(tmp_path: Path) -> None:
    store = Store(tmp_path / "det.db")
    ids = _fill(store)
    rows = [store.get_experiment(i) for i in ids]
    aggregates = store.experiment_aggregates(rows)
    stats = store.trial_stats(ids)
    assert set(aggregates) == set(ids)
    for row in rows:
        trials = store.list_trials(row.id)
        agg = aggregates[row.id]
        smaller = row.config["searcher"].get("smaller_is_better", True)
        assert agg.stats == stats[row.id]
        assert agg.progress == pytest.approx(experiment_progress(row, trials), rel=1e-12, abs=1e-15), row.name
        assert agg.best_trial_id == best_trial_id(trials, smaller_is_better=smaller), row.name
        started = [t.started_at for t in trials if t.started_at is not None]
        assert agg.first_started_at == (min(started) if started else None)
        bests = store.best_validations([row.id])[row.id]
        by_rows = serialize_experiment_summary(row, stats[row.id], bests, trials, now=1e9)
        by_sql = serialize_experiment_summary(row, agg.stats, bests, aggregate=agg, now=1e9)
        assert by_sql.keys() == by_rows.keys()
        for key in by_rows:
            if isinstance(by_rows[key], float):
                assert by_sql[key] == pytest.approx(by_rows[key], rel=1e-12), (row.name, key)
            else:
                assert by_sql[key] == by_rows[key], (row.name, key)
    # the cases the fill meant to cover are there
    progress = {r.name: aggregates[r.id].progress for r in rows}
    assert progress["completed"] == 1.0 and progress["no trials"] == 0.0
    assert 0.0 < progress["batches, smaller"] < 1.0 and 0.0 < progress["no max_time"] < 1.0
    best = {r.name: aggregates[r.id].best_trial_id for r in rows}
    assert best["no trials"] is None and all(best[n] is not None for n in progress if n != "no trials")


def test_the_service_reads_pages_with_the_aggregates(tmp_path: Path) -> None:
    """The list, the detail and the trial table answer what they answered from all trial rows."""
    service = ExperimentService(store_path=str(tmp_path / "det.db"))
    try:
        ids = _fill(service.store)
        listed = {e["id"]: e for e in service.list_experiments(limit=50, offset=0)["experiments"]}
        for exp_id in ids:
            trials = service.store.list_trials(exp_id)
            row = service.store.get_experiment(exp_id)
            smaller = row.config["searcher"].get("smaller_is_better", True)
            best = best_trial_id(trials, smaller_is_better=smaller)
            assert listed[exp_id]["best_trial_id"] == best
            assert listed[exp_id]["progress"] == pytest.approx(experiment_progress(row, trials), rel=1e-12)
            page = service.trials(exp_id, limit=3, offset=2)
            assert page["total"] == len(trials)
            assert [t["id"] for t in page["trials"]] == [t.id for t in trials[2:5]]
            assert [t["is_best"] for t in page["trials"]] == [t.id == best for t in trials[2:5]]
            detail = service.experiment(exp_id, limit=3, offset=2)
            assert [t["id"] for t in detail["trials"]["trials"]] == [t.id for t in trials[2:5]]
            assert detail["trials"]["total"] == len(trials) and detail["best_trial_id"] == best
    finally:
        service.close()
