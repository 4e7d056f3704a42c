"""Store queries the server extension relies on: trial aggregates, best-metric series, paging, counts."""

from __future__ import annotations

from pathlib import Path

from det_jupyter.states import TrialState
from det_jupyter.store import Store, TrialStats


def _store(tmp_path: Path) -> tuple[Store, int, int]:
    store = Store(tmp_path / "det.db")
    a = store.create_experiment(name="a", config={}, entrypoint=b"", seed=1)
    b = store.create_experiment(name="b", config={}, entrypoint=b"", seed=2)
    states = [TrialState.COMPLETED, TrialState.COMPLETED, TrialState.ACTIVE, TrialState.ERROR]
    bests = [0.5, None, 0.2, 0.9]
    for i, (state, best) in enumerate(zip(states, bests)):
        tid = store.create_trial(a, i, {"i": i})
        store.update_trial(tid, state=state, best_validation=best)
    return store, a, b


def test_trial_stats_count_states_and_range_bests_in_one_query(tmp_path: Path) -> None:
    store, a, b = _store(tmp_path)
    stats = store.trial_stats([a, b, a])
    assert set(stats) == {a, b}
    assert stats[a] == TrialStats(
        a, {TrialState.COMPLETED: 2, TrialState.ACTIVE: 1, TrialState.ERROR: 1}, 0.2, 0.9
    )
    assert stats[a].total == 4
    assert stats[b] == TrialStats(b, {}, None, None) and stats[b].total == 0
    assert store.trial_stats([]) == {}
    assert stats[a].counts == store.trial_counts(a)


def test_best_validations_in_trial_order_skip_unscored(tmp_path: Path) -> None:
    store, a, b = _store(tmp_path)
    assert store.best_validations([a, b]) == {a: [0.5, 0.2, 0.9], b: []}


def test_list_trials_pages_and_keeps_its_old_signature(tmp_path: Path) -> None:
    store, a, _ = _store(tmp_path)
    every = store.list_trials(a)
    assert [t.request_id for t in every] == [0, 1, 2, 3]
    assert store.list_trials(a, limit=2, offset=1) == every[1:3]
    assert store.list_trials(a, offset=3) == every[3:]


def test_count_experiments(tmp_path: Path) -> None:
    store, _, _ = _store(tmp_path)
    assert store.count_experiments() == 2
