"""The SQLite store: schema and migrations, CRUD returning frozen rows, transactions, ownership, concurrency.

The ``store`` fixture is a small contract suite in Optuna's manner: every test runs against a freshly
created store, a store reopened from the same file by a new object, and a store that went through
pickle (what the controller ships to its threads and what readers in other processes build).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import det_jupyter
from det_jupyter.errors import DetJupyterError, NotFoundError, StoreError
from det_jupyter.states import ControlAction, ExperimentState, TrialState
from det_jupyter.store import (
    SCHEMA_VERSION,
    CheckpointRow,
    ExperimentRow,
    LogRow,
    MetricRow,
    RequestRow,
    Store,
    TrialRow,
)

_PACKAGE_DIR = str(Path(det_jupyter.__file__).parent)

# Child processes import det_jupyter.store.sqlite without running det_jupyter/__init__.py (which imports
# Dask and takes a second): the test exercises the same store module, and stays fast.
_CHILD_PRELUDE = f"""
import json, sys, types
_pkg = types.ModuleType("det_jupyter")
_pkg.__path__ = [{_PACKAGE_DIR!r}]
sys.modules["det_jupyter"] = _pkg
from det_jupyter.store import MetricRow, Store
"""


@pytest.fixture(params=["fresh", "reopened", "unpickled"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    path = tmp_path / "det.db"
    first = Store(path)
    if request.param == "fresh":
        s = first
    elif request.param == "reopened":
        first.close()
        s = Store(path)
    else:
        s = pickle.loads(pickle.dumps(first))
    yield s
    s.close()
    first.close()


def _experiment(store: Store, **kwargs: Any) -> int:
    values: dict[str, Any] = {"name": "exp", "config": {"searcher": {"name": "single"}}, "entrypoint": b"fn"}
    values.update(kwargs)
    return store.create_experiment(seed=7, **values)


def _metric_rows(trial_id: int, n: int, *, tag: str = "", start: int = 0) -> list[MetricRow]:
    return [
        MetricRow(trial_id, 0, "training", start + i, {"loss": 1.0 / (start + i + 1), "tag": tag}, 1.0)
        for i in range(n)
    ]


# --- schema and migrations ----------------------------------------------------------------------------


def test_schema_version_is_set_and_reopening_migrates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "det.db"
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION >= 1
    exp_id = _experiment(store, name="kept")
    store.close()

    for _ in range(2):  # a second migration pass would fail on CREATE TABLE, or drop the data
        again = Store(path)
        assert again.schema_version == SCHEMA_VERSION
        assert [e.name for e in again.list_experiments()] == ["kept"]
        assert again.get_experiment(exp_id).name == "kept"
        again.close()

    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"experiments", "trials", "metrics", "checkpoints", "logs", "requests"} <= tables


def test_newer_schema_version_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "det.db"
    Store(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")

    with pytest.raises(StoreError) as info:
        Store(path)
    message = str(info.value)
    assert f"schema version {SCHEMA_VERSION + 3}" in message
    assert str(path) in message
    assert "upgrade det_jupyter" in message and "DET_JUPYTER_HOME" in message
    assert isinstance(info.value, DetJupyterError)
    with sqlite3.connect(path) as raw:  # refused, not "migrated" downwards
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 3


def test_default_path_follows_det_jupyter_home(det_home: Path) -> None:
    store = Store()
    assert store.path == det_home / "det_jupyter.db"
    assert store.path.exists()
    assert repr(store) == f"Store({str(store.path)!r})"
    store.close()


# --- experiments --------------------------------------------------------------------------------------


def test_experiment_crud_returns_frozen_rows_with_enum_states(store: Store) -> None:
    exp_id = _experiment(
        store,
        name="mnist",
        description="first",
        entrypoint=b"\x00blob",
        load_hook=b"hook",
        entrypoint_name="train",
    )
    row = store.get_experiment(exp_id)
    assert isinstance(row, ExperimentRow)
    assert (row.id, row.name, row.description, row.entrypoint_name, row.seed) == (
        exp_id,
        "mnist",
        "first",
        "train",
        7,
    )
    assert row.state is ExperimentState.ACTIVE
    assert row.config == {"searcher": {"name": "single"}}
    assert row.owner is None and row.heartbeat is None and row.ended_at is None
    assert row.progress == 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.state = ExperimentState.PAUSED  # type: ignore[misc]
    assert store.get_entrypoint(exp_id) == (b"\x00blob", b"hook")

    store.update_experiment(exp_id, state=ExperimentState.PAUSED, progress=0.5, error="boom", ended_at=12.0)
    updated = store.get_experiment(exp_id)
    assert updated.state is ExperimentState.PAUSED
    assert (updated.progress, updated.error, updated.ended_at) == (0.5, "boom", 12.0)
    assert row.state is ExperimentState.ACTIVE  # a snapshot, not a live view

    store.update_experiment(exp_id, state="COMPLETED")  # plain strings are stored too
    assert store.get_experiment(exp_id).state is ExperimentState.COMPLETED

    second = _experiment(store, name="second", load_hook=None)
    assert store.get_entrypoint(second) == (b"fn", None)
    assert [e.id for e in store.list_experiments()] == [second, exp_id]  # newest first
    assert [e.id for e in store.list_experiments(limit=1)] == [second]
    assert [e.id for e in store.list_experiments(limit=1, offset=1)] == [exp_id]


def test_searcher_state_round_trip(store: Store) -> None:
    exp_id = _experiment(store)
    assert store.get_searcher_state(exp_id) is None
    store.save_searcher_state(exp_id, {"rungs": [[1, 2]], "seed": 3}, progress=0.25)
    assert store.get_searcher_state(exp_id) == {"rungs": [[1, 2]], "seed": 3}
    assert store.get_experiment(exp_id).progress == 0.25


def test_unknown_ids_raise_not_found_naming_the_id(store: Store) -> None:
    for call, what in [
        (lambda: store.get_experiment(4242), "experiment 4242"),
        (lambda: store.get_entrypoint(4242), "experiment 4242"),
        (lambda: store.add_request(4242, ControlAction.KILL), "experiment 4242"),
        (lambda: store.delete_experiment(4242), "experiment 4242"),
        (lambda: store.claim_experiment(4242, "me", stale_after=1), "experiment 4242"),
        (lambda: store.get_trial(4343), "trial 4343"),
    ]:
        with pytest.raises(NotFoundError, match=what):
            call()
    assert issubclass(NotFoundError, LookupError)


def test_updates_reject_unknown_columns(store: Store) -> None:
    exp_id = _experiment(store)
    trial_id = store.create_trial(exp_id, 1, {})
    with pytest.raises(ValueError, match=r"cannot update trials columns \['experiment_id', 'hparams'\]"):
        store.update_trial(trial_id, hparams={"x": 1}, experiment_id=9, state=TrialState.ACTIVE)
    with pytest.raises(
        ValueError, match=r"cannot update experiments columns \['config'\].*allowed:.*'state'"
    ):
        store.update_experiment(exp_id, config={}, state=ExperimentState.PAUSED)
    # the rejected calls wrote nothing, not even their valid columns
    assert store.get_trial(trial_id).state is TrialState.QUEUED
    assert store.get_experiment(exp_id).state is ExperimentState.ACTIVE
    store.update_trial(trial_id)  # nothing to do is fine
    assert store.get_trial(trial_id).state is TrialState.QUEUED


# --- trials, metrics, logs, checkpoints, requests -----------------------------------------------------


def test_trial_crud_and_counts(store: Store) -> None:
    exp_id = _experiment(store)
    t1 = store.create_trial(exp_id, 1, {"lr": 0.1, "layers": {"n": 2}})
    t2 = store.create_trial(exp_id, 2, {"lr": 0.2})
    row = store.get_trial(t1)
    assert isinstance(row, TrialRow)
    assert (row.experiment_id, row.request_id, row.hparams) == (exp_id, 1, {"lr": 0.1, "layers": {"n": 2}})
    assert row.state is TrialState.QUEUED
    assert (row.restarts, row.run_id, row.steps_completed, row.best_validation) == (0, 0, 0, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.restarts = 1  # type: ignore[misc]

    store.update_trial(
        t1,
        state=TrialState.ACTIVE,
        restarts=1,
        run_id=1,
        steps_completed=50,
        best_validation=0.3,
        latest_validation=0.4,
        worker="tcp://w:1",
        started_at=5.0,
    )
    got = store.get_trial(t1)
    assert got.state is TrialState.ACTIVE
    assert (got.restarts, got.run_id, got.steps_completed) == (1, 1, 50)
    assert (got.best_validation, got.latest_validation, got.worker, got.started_at) == (
        0.3,
        0.4,
        "tcp://w:1",
        5.0,
    )
    assert [t.id for t in store.list_trials(exp_id)] == [t1, t2]
    assert store.trial_counts(exp_id) == {TrialState.ACTIVE: 1, TrialState.QUEUED: 1}
    with pytest.raises(sqlite3.IntegrityError):  # one trial per searcher request
        store.create_trial(exp_id, 1, {})


def test_metrics_filters_and_incremental_reading(store: Store) -> None:
    exp_a, exp_b = _experiment(store), _experiment(store)
    ta1, ta2, tb = (
        store.create_trial(exp_a, 1, {}),
        store.create_trial(exp_a, 2, {}),
        store.create_trial(exp_b, 1, {}),
    )
    store.add_metrics(
        [
            MetricRow(ta1, 0, "training", 1, {"loss": 1.0}, 10.0),
            MetricRow(ta1, 0, "validation", 1, {"val_loss": 0.9}, 11.0),
            MetricRow(tb, 0, "training", 1, {"loss": 5.0}, 12.0),
            MetricRow(ta2, 1, "training", 3, {"loss": 0.5, "note": None}, 13.0),
        ]
    )
    rows = store.metrics(experiment_id=exp_a)
    assert all(isinstance(r, MetricRow) for r in rows)
    assert [(r.trial_id, r.kind, r.steps) for r in rows] == [
        (ta1, "training", 1),
        (ta1, "validation", 1),
        (ta2, "training", 3),
    ]
    assert rows[2] == MetricRow(ta2, 1, "training", 3, {"loss": 0.5, "note": None}, 13.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rows[0].steps = 2  # type: ignore[misc]
    assert [r.metrics for r in store.metrics(trial_id=ta1, kind="validation")] == [{"val_loss": 0.9}]
    assert [r.trial_id for r in store.metrics(experiment_id=exp_b)] == [tb]

    last, first_batch = store.metrics_since(experiment_id=exp_a)
    assert [r.steps for r in first_batch] == [1, 1, 3]
    again, nothing = store.metrics_since(experiment_id=exp_a, after_id=last)
    assert (again, nothing) == (last, [])

    store.add_metrics([MetricRow(tb, 0, "training", 2, {"loss": 4.0}, 14.0)])  # another experiment: not seen
    assert store.metrics_since(experiment_id=exp_a, after_id=last) == (last, [])
    store.add_metrics(
        [
            MetricRow(ta1, 0, "training", 2, {"loss": 0.8}, 15.0),
            MetricRow(ta2, 1, "training", 4, {"loss": 0.4}, 16.0),
        ]
    )
    newer, batch = store.metrics_since(experiment_id=exp_a, after_id=last)
    assert newer > last
    assert [(r.trial_id, r.steps) for r in batch] == [(ta1, 2), (ta2, 4)]
    assert store.metrics(experiment_id=exp_a, after_id=last) == batch


def test_logs_in_order_and_tail(store: Store) -> None:
    exp_id = _experiment(store)
    t1, t2 = store.create_trial(exp_id, 1, {}), store.create_trial(exp_id, 2, {})
    store.add_logs([LogRow(t1, 0, float(i), f"line {i}") for i in range(5)])
    store.add_logs([LogRow(t2, 0, 9.0, "other trial")])
    store.add_logs([LogRow(t1, 1, 5.0, "line 5")])
    logs = store.logs(t1)
    assert all(isinstance(r, LogRow) for r in logs)
    assert [r.line for r in logs] == [f"line {i}" for i in range(6)]
    assert logs[-1] == LogRow(t1, 1, 5.0, "line 5")
    assert [r.line for r in store.logs(t1, tail=2)] == ["line 4", "line 5"]
    assert [r.line for r in store.logs(t1, tail=100)] == [f"line {i}" for i in range(6)]
    assert store.logs(t1, tail=0) == []
    assert [r.line for r in store.logs(t2)] == ["other trial"]


def test_checkpoint_registry(store: Store) -> None:
    exp_id = _experiment(store)
    t1, t2 = store.create_trial(exp_id, 1, {}), store.create_trial(exp_id, 2, {})
    store.add_checkpoint(
        CheckpointRow.committed(
            uuid="c1",
            trial_id=t1,
            experiment_id=exp_id,
            run_id=0,
            steps=10,
            metadata={"f": "torch"},
            resources={"w.pt": 12},
            metric=None,
        )
    )
    store.add_checkpoint(
        CheckpointRow.committed(
            uuid="c2",
            trial_id=t1,
            experiment_id=exp_id,
            run_id=0,
            steps=20,
            metadata={},
            resources={},
            metric=0.5,
        )
    )
    store.add_checkpoint(
        CheckpointRow.committed(
            uuid="c3",
            trial_id=t2,
            experiment_id=exp_id,
            run_id=1,
            steps=10,
            metadata={},
            resources={},
            metric=None,
        )
    )
    rows = store.checkpoints(experiment_id=exp_id)
    assert [r.uuid for r in rows] == ["c1", "c2", "c3"]
    first = rows[0]
    assert isinstance(first, CheckpointRow)
    assert (first.trial_id, first.steps, first.state, first.metric) == (t1, 10, "COMPLETED", None)
    assert (first.metadata, first.resources) == ({"f": "torch"}, {"w.pt": 12})
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.state = "DELETED"  # type: ignore[misc]

    store.set_checkpoint_metric("c1", 0.7)
    assert store.checkpoints(trial_id=t1)[0].metric == 0.7
    assert [r.uuid for r in store.checkpoints(trial_id=t2)] == ["c3"]

    store.mark_checkpoints_deleted(["c1", "c3"])
    assert [r.uuid for r in store.checkpoints(experiment_id=exp_id)] == ["c2"]
    deleted = {r.uuid: r.state for r in store.checkpoints(experiment_id=exp_id, include_deleted=True)}
    assert deleted == {"c1": "DELETED", "c2": "COMPLETED", "c3": "DELETED"}


def test_control_requests(store: Store) -> None:
    exp_id = _experiment(store)
    other = _experiment(store)
    r1 = store.add_request(exp_id, ControlAction.PAUSE)
    r2 = store.add_request(exp_id, "KILL")
    store.add_request(other, ControlAction.ACTIVATE)
    pending = store.pending_requests(exp_id)
    assert all(isinstance(r, RequestRow) for r in pending)
    assert [(r.id, r.action) for r in pending] == [(r1, ControlAction.PAUSE), (r2, ControlAction.KILL)]
    assert pending[1].action is ControlAction.KILL
    with pytest.raises(dataclasses.FrozenInstanceError):
        pending[0].action = ControlAction.KILL  # type: ignore[misc]
    store.mark_request_handled(r1)
    assert [r.id for r in store.pending_requests(exp_id)] == [r2]
    with pytest.raises(ValueError, match="'RESTART'"):
        store.add_request(exp_id, "RESTART")
    assert [r.id for r in store.pending_requests(exp_id)] == [r2]


# --- transactions -------------------------------------------------------------------------------------


def test_transaction_rolls_back_everything_on_exception(store: Store) -> None:
    exp_id = _experiment(store)
    trial_id = store.create_trial(exp_id, 1, {})

    class Boom(Exception):
        pass

    with pytest.raises(Boom), store.transaction():
        store.add_metrics(_metric_rows(trial_id, 3))
        store.add_logs([LogRow(trial_id, 0, 1.0, "never")])
        store.update_trial(trial_id, state=TrialState.ACTIVE)
        store.create_trial(exp_id, 2, {})
        raise Boom

    assert store.metrics(trial_id=trial_id) == []
    assert store.logs(trial_id) == []
    assert store.get_trial(trial_id).state is TrialState.QUEUED
    assert [t.id for t in store.list_trials(exp_id)] == [trial_id]

    with store.transaction():  # the connection is usable again, and commits
        store.add_logs([LogRow(trial_id, 0, 1.0, "kept")])
    assert [r.line for r in store.logs(trial_id)] == ["kept"]


def test_transaction_is_reentrant_and_commits_once_at_the_outermost(store: Store) -> None:
    exp_id = _experiment(store)
    trial_id = store.create_trial(exp_id, 1, {})
    observer = Store(store.path)  # another connection, as a reader in another thread or process would be

    with store.transaction() as conn:
        store.add_logs([LogRow(trial_id, 0, 1.0, "outer")])
        with store.transaction() as inner:
            assert inner is conn
            store.add_logs([LogRow(trial_id, 0, 2.0, "inner")])
        assert conn.in_transaction  # the inner block did not commit the outer one
        assert observer.logs(trial_id) == []
    assert [r.line for r in observer.logs(trial_id)] == ["outer", "inner"]

    with pytest.raises(KeyError), store.transaction():  # an inner failure rolls back the outer work too
        store.add_logs([LogRow(trial_id, 0, 3.0, "outer again")])
        with store.transaction():
            store.add_logs([LogRow(trial_id, 0, 4.0, "inner again")])
            raise KeyError("x")
    assert [r.line for r in observer.logs(trial_id)] == ["outer", "inner"]
    observer.close()


# --- delete ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state", [ExperimentState.ACTIVE, ExperimentState.PAUSED, ExperimentState.STOPPING_CANCELED]
)
def test_delete_refuses_a_non_terminal_experiment(store: Store, state: ExperimentState) -> None:
    exp_id = _experiment(store)
    store.update_experiment(exp_id, state=state)
    with pytest.raises(StoreError, match=f"experiment {exp_id} is {state.value}; kill it"):
        store.delete_experiment(exp_id)
    assert store.get_experiment(exp_id).state is state


@pytest.mark.parametrize(
    "state", [ExperimentState.COMPLETED, ExperimentState.CANCELED, ExperimentState.ERROR]
)
def test_delete_cascades_for_a_terminal_experiment(store: Store, state: ExperimentState) -> None:
    doomed, kept = _experiment(store), _experiment(store)
    for exp_id in (doomed, kept):
        trial_id = store.create_trial(exp_id, 1, {})
        store.add_metrics(_metric_rows(trial_id, 2))
        store.add_logs([LogRow(trial_id, 0, 1.0, "hello")])
        store.add_checkpoint(
            CheckpointRow.committed(
                uuid=f"ck-{exp_id}",
                trial_id=trial_id,
                experiment_id=exp_id,
                run_id=0,
                steps=1,
                metadata={},
                resources={},
                metric=None,
            )
        )
        store.add_request(exp_id, ControlAction.KILL)
    doomed_trial = store.list_trials(doomed)[0].id
    store.update_experiment(doomed, state=state)

    store.delete_experiment(doomed)

    with pytest.raises(NotFoundError):
        store.get_experiment(doomed)
    with pytest.raises(NotFoundError):
        store.get_trial(doomed_trial)
    assert store.list_trials(doomed) == []
    assert store.metrics(trial_id=doomed_trial) == []
    assert store.logs(doomed_trial) == []
    assert store.checkpoints(experiment_id=doomed, include_deleted=True) == []
    assert store.pending_requests(doomed) == []
    # the other experiment is untouched
    kept_trial = store.list_trials(kept)[0].id
    assert len(store.metrics(trial_id=kept_trial)) == 2
    assert [r.line for r in store.logs(kept_trial)] == ["hello"]
    assert [c.uuid for c in store.checkpoints(experiment_id=kept)] == [f"ck-{kept}"]
    assert len(store.pending_requests(kept)) == 1


# --- ownership ---------------------------------------------------------------------------------------


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


def test_claim_is_refused_while_the_owner_heartbeat_is_fresh(store: Store) -> None:
    exp_id = _experiment(store)
    first = f"{socket.gethostname()}:{os.getpid()}:aaaa"  # this very process: alive
    second = f"{socket.gethostname()}:{os.getpid()}:bbbb"
    assert store.claim_experiment(exp_id, first, stale_after=60)
    row = store.get_experiment(exp_id)
    assert row.owner == first and row.heartbeat is not None and row.heartbeat >= time.time() - 60

    assert not store.claim_experiment(exp_id, second, stale_after=60)
    assert store.get_experiment(exp_id).owner == first
    assert store.claim_experiment(exp_id, first, stale_after=60)  # the owner re-claims (restart of its loop)

    store.update_experiment(exp_id, heartbeat=time.time() - 120)  # the owner stopped beating
    assert store.claim_experiment(exp_id, second, stale_after=60)
    row = store.get_experiment(exp_id)
    assert row.owner == second and row.heartbeat is not None and row.heartbeat > time.time() - 60
    assert not store.claim_experiment(exp_id, first, stale_after=60)


def test_claim_from_an_owner_on_another_host_waits_for_staleness(store: Store) -> None:
    exp_id = _experiment(store)
    remote = f"not-{socket.gethostname()}:{_dead_pid()}:cccc"  # its pid means nothing here
    assert store.claim_experiment(exp_id, remote, stale_after=60)
    mine = f"{socket.gethostname()}:{os.getpid()}:dddd"
    assert not store.claim_experiment(exp_id, mine, stale_after=60)
    store.update_experiment(exp_id, heartbeat=time.time() - 61)
    assert store.claim_experiment(exp_id, mine, stale_after=60)


def test_claim_at_once_when_the_owner_pid_on_this_host_is_dead(store: Store) -> None:
    exp_id = _experiment(store)
    dead = f"{socket.gethostname()}:{_dead_pid()}:eeee"
    assert store.claim_experiment(exp_id, dead, stale_after=3600)
    assert store.get_experiment(exp_id).heartbeat is not None  # a fresh heartbeat...
    mine = f"{socket.gethostname()}:{os.getpid()}:ffff"
    assert store.claim_experiment(exp_id, mine, stale_after=3600)  # ...but its process is gone
    assert store.get_experiment(exp_id).owner == mine


def test_claim_of_an_unowned_experiment(store: Store) -> None:
    exp_id = _experiment(store)
    store.update_experiment(exp_id, heartbeat=time.time())  # a heartbeat without owner means nothing
    assert store.claim_experiment(exp_id, "h:1:x", stale_after=60)


# --- several writers and readers at once ------------------------------------------------------------

_WRITER = (
    _CHILD_PRELUDE
    + """
store = Store(sys.argv[1])
trial_id, n, tag = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
print("ready", flush=True)
assert sys.stdin.readline().strip() == "go"
for i in range(n):
    if i % 2:
        store.add_metrics([MetricRow(trial_id, 0, "training", i, {"loss": 1.0, "tag": tag}, 1.0)])
    else:
        with store.transaction():
            store.add_metrics([MetricRow(trial_id, 0, "training", i, {"loss": 1.0, "tag": tag}, 1.0)])
print("done", flush=True)
"""
)

_READER = (
    _CHILD_PRELUDE
    + """
store = Store(sys.argv[1])
exp_id = int(sys.argv[2])
print("ready", flush=True)
for command in sys.stdin:
    if command.strip() != "read":
        break
    print(json.dumps(sorted(r.metrics["tag"] for r in store.metrics(experiment_id=exp_id))), flush=True)
"""
)


def _child(script: str, *args: object) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the child has opened the store (or died: "")
    if line.strip() != "ready":
        proc.kill()
        _, err = proc.communicate(timeout=30)
        raise AssertionError(f"child failed to start: {line!r} {err}")
    return proc


def test_many_threads_and_processes_write_at_once(tmp_path: Path) -> None:
    path = tmp_path / "det.db"
    store = Store(path)
    exp_id = _experiment(store)
    n_threads, n_procs, per_writer = 4, 2, 150
    trials = [store.create_trial(exp_id, i, {}) for i in range(n_threads + n_procs)]

    procs = [_child(_WRITER, path, trials[n_threads + p], per_writer, f"proc{p}") for p in range(n_procs)]
    start = threading.Barrier(n_threads + 1)
    errors: list[BaseException] = []

    def write(index: int) -> None:
        try:
            start.wait(timeout=30)
            for i in range(per_writer):
                row = [
                    MetricRow(trials[index], 0, "training", i, {"loss": 1.0, "tag": f"thread{index}"}, 1.0)
                ]
                if i % 2:
                    store.add_metrics(row)
                else:
                    with store.transaction():
                        store.add_metrics(row)
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for proc in procs:  # release all writers together
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    start.wait(timeout=30)
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive()
    outputs = [proc.communicate(timeout=60) for proc in procs]

    assert errors == []
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert out.strip() == "done"
        assert "locked" not in err
    rows = store.metrics(experiment_id=exp_id)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.metrics["tag"]] = counts.get(r.metrics["tag"], 0) + 1
    expected = {f"thread{i}": per_writer for i in range(n_threads)} | {
        f"proc{p}": per_writer for p in range(n_procs)
    }
    assert counts == expected
    for trial_id in trials:  # every writer's rows, each exactly once
        assert sorted(r.steps for r in store.metrics(trial_id=trial_id)) == list(range(per_writer))
    store.close()


def test_a_reader_process_sees_committed_rows_only(tmp_path: Path) -> None:
    path = tmp_path / "det.db"
    store = Store(path)
    exp_id = _experiment(store)
    trial_id = store.create_trial(exp_id, 1, {})
    reader = _child(_READER, path, exp_id)
    assert reader.stdin is not None and reader.stdout is not None

    def read() -> list[str]:
        assert reader.stdin is not None and reader.stdout is not None
        reader.stdin.write("read\n")
        reader.stdin.flush()
        line = reader.stdout.readline()
        assert line, reader.stderr.read() if reader.stderr else ""
        return list(json.loads(line))

    try:
        assert read() == []
        store.add_metrics(_metric_rows(trial_id, 1, tag="committed"))
        assert read() == ["committed"]
        with store.transaction():
            store.add_metrics(_metric_rows(trial_id, 1, tag="pending", start=1))
            assert read() == ["committed"]  # not blocked by the open write, and not seeing it
        assert read() == ["committed", "pending"]
    finally:
        reader.stdin.close()
        reader.wait(timeout=30)
        store.close()
    assert reader.returncode == 0
