"""'Best' is decided once (det_jupyter.searcher.ranking): every reader of one real store agrees.

One store holds two experiments, one minimising and one maximising its metric, whose trials have tied
best values, no value, NaN and an infinity (a trap for a plain ``min``/``max``). The handles
(``best_trial``, ``best_checkpoint``), the widget model, the ``%det`` reports, the server's serializer
and the checkpoint GC policy must all name the same best.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from det_jupyter.checkpoints import CheckpointRecord, checkpoints_to_delete
from det_jupyter.config import load_config
from det_jupyter.experiment import Experiment
from det_jupyter.notebook.reports import experiment_description, experiment_list
from det_jupyter.notebook.widget.html import format_value
from det_jupyter.notebook.widget.model import WidgetModel
from det_jupyter.searcher.ranking import best_index, best_value, is_better, is_rankable, rank_key
from det_jupyter.server.serializers import serialize_experiment_summary
from det_jupyter.states import TrialState
from det_jupyter.store import CheckpointRow, Store

# Per direction: trials' best values in creation order and the trial (1-based position) that is best.
CASES = {
    True: ([0.5, None, 0.2, math.nan, -math.inf, 0.2, 0.9], 3),  # ties 0.2 at #3 and #6: the older wins
    False: ([0.5, None, 0.9, math.nan, math.inf, 0.9, 0.1], 3),
}


def _config(smaller_is_better: bool) -> dict[str, object]:
    searcher = {"name": "random", "metric": "val_loss", "smaller_is_better": smaller_is_better,
                "max_trials": 7, "time_metric": "batches", "max_time": 10}  # fmt: skip
    return load_config({"name": f"smaller-{smaller_is_better}", "searcher": searcher}).to_dict()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "ranking.db")


def _experiment(store: Store, smaller_is_better: bool) -> tuple[Experiment, list[int]]:
    values, _ = CASES[smaller_is_better]
    exp_id = store.create_experiment(
        name=f"smaller-{smaller_is_better}", config=_config(smaller_is_better), entrypoint=b"", seed=1
    )
    ids = []
    for i, value in enumerate(values):
        tid = store.create_trial(exp_id, i + 1, {"i": i})
        store.update_trial(tid, state=TrialState.COMPLETED, best_validation=value, steps_completed=10)
        # Two checkpoints per trial with the trial's value: GC and best_checkpoint break ties by steps.
        for steps in (5, 10):
            metric = value if value is None or math.isfinite(value) else None
            store.add_checkpoint(CheckpointRow.committed(
                uuid=f"e{exp_id}-t{tid}-s{steps}", trial_id=tid, experiment_id=exp_id, run_id=0,
                steps=steps, metadata={}, resources={}, metric=metric,
            ))  # fmt: skip
        ids.append(tid)
    return Experiment(exp_id, store), ids


@pytest.mark.parametrize("smaller_is_better", [True, False])
def test_every_reader_names_the_same_best(store: Store, smaller_is_better: bool) -> None:
    other, _ = _experiment(store, not smaller_is_better)  # a neighbour with the opposite direction
    exp, ids = _experiment(store, smaller_is_better)
    values, position = CASES[smaller_is_better]
    best_id, best = ids[position - 1], values[position - 1]
    assert isinstance(best, float)

    # Handles.
    trial = exp.best_trial()
    assert trial is not None and trial.id == best_id
    ckpt = exp.best_checkpoint()
    assert (ckpt.trial_id, ckpt.steps) == (best_id, 10)  # ties within the trial: the newer checkpoint

    # Widget model: the marked best trial, and the table sorted by best.
    model = WidgetModel(store, exp.id)
    model.refresh()
    assert model.best_trial_id == best_id
    rows = model.table_rows(sort_by="best")
    assert rows[0].id == best_id and [r.is_best for r in rows].count(True) == 1
    unrankable = {ids[i] for i, v in enumerate(values) if not is_rankable(v)}
    assert {r.id for r in rows[-len(unrankable) :]} == unrankable  # None, NaN (stored NULL), ±inf last
    descending = model.table_rows(sort_by="best", descending=True)
    assert descending[len(ids) - len(unrankable) - 1].id == best_id  # best last among the ranked

    # %det reports.
    assert f"best trial {best_id}:" in experiment_description(store, exp.id).text
    listed = {line.split()[0]: line for line in experiment_list(store).text.splitlines()[1:]}
    assert listed[str(exp.id)].endswith(format_value(best))

    # The server's wire format.
    stats = store.trial_stats([exp.id])[exp.id]
    summary = serialize_experiment_summary(
        store.get_experiment(exp.id), stats, store.best_validations([exp.id])[exp.id]
    )
    assert summary["best_metric"] == best

    # Checkpoint GC: keeping only the experiment's best keeps best_checkpoint().
    records = [
        CheckpointRecord(c.uuid, c.trial_id, c.steps, c.metric)
        for c in store.checkpoints(experiment_id=exp.id)
    ]
    deleted = checkpoints_to_delete(
        records, save_experiment_best=1, save_trial_best=0, save_trial_latest=0,
        smaller_is_better=smaller_is_better,
    )  # fmt: skip
    assert {r.uuid for r in records} - deleted == {ckpt.uuid}

    # The neighbour ranks in its own direction.
    other_values, other_position = CASES[not smaller_is_better]
    other_trial = other.best_trial()
    assert other_trial is not None and other_trial.best_validation == other_values[other_position - 1]


def test_an_experiment_without_rankable_values_has_no_best(store: Store) -> None:
    exp_id = store.create_experiment(name="none", config=_config(True), entrypoint=b"", seed=1)
    for i, value in enumerate([None, math.nan, math.inf]):
        tid = store.create_trial(exp_id, i + 1, {})
        store.update_trial(tid, best_validation=value)
    exp = Experiment(exp_id, store)
    model = WidgetModel(store, exp_id)
    model.refresh()
    stats = store.trial_stats([exp_id])[exp_id]
    summary = serialize_experiment_summary(
        store.get_experiment(exp_id), stats, store.best_validations([exp_id])[exp_id]
    )
    assert exp.best_trial() is None and model.best_trial_id is None and summary["best_metric"] is None
    assert "best trial" not in experiment_description(store, exp_id).text


def test_rules() -> None:
    assert not is_rankable(True) and not is_rankable("1") and is_rankable(3)
    assert best_index([None, 2, 1, 1], smaller_is_better=True) == 2  # ties: the first
    assert best_value([math.nan, -math.inf, 4.0], smaller_is_better=True) == 4.0
    assert is_better(1.0, math.nan, smaller_is_better=False) and not is_better(
        math.nan, 1.0, smaller_is_better=False
    )
    assert rank_key(None, smaller_is_better=True) > rank_key(1e308, smaller_is_better=True)
