"""Checkpoint storage: one contract suite over every backend, and the checkpoint GC policy.

The ``storage`` fixture runs each contract test against a local directory and fsspec's in-memory
filesystem (which stands in for object stores: no rename, files uploaded then ``metadata.json``).
The memory filesystem is global to the process, so each test gets a unique root and removes it.
"""

from __future__ import annotations

import json
import os
import pickle
import time
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import det_jupyter.checkpoints as storage_module
from det_jupyter.checkpoints import METADATA_FILE, CheckpointRecord, CheckpointStorage, checkpoints_to_delete
from det_jupyter.errors import CheckpointError


@pytest.fixture(params=["local", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CheckpointStorage]:
    if request.param == "local":
        yield CheckpointStorage(str(tmp_path / "checkpoints"))
        return
    s = CheckpointStorage(f"memory://det-test-{uuidlib.uuid4().hex}")
    yield s
    root = s.path_of("x").rsplit("/", 1)[0]
    if s.fs.exists(root):
        s.fs.rm(root, recursive=True)


def _write_files(path: Path) -> dict[str, bytes]:
    files = {
        "weights.bin": b"\x00\x01\x02" * 10,
        "nested/deeper/state.json": b'{"epoch": 3}',
        "empty.txt": b"",
    }
    for rel, data in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)
    return files


def _save(storage: CheckpointStorage, uuid: str, steps: int = 10) -> dict[str, bytes]:
    with storage.stage(uuid) as path:
        files = _write_files(path)
        storage.commit(uuid, path, {"steps": steps})
    return files


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# --- the contract, on every backend ------------------------------------------------------------------


def test_stage_and_commit_then_read_back(storage: CheckpointStorage, tmp_path: Path) -> None:
    assert not storage.exists("ck-1")
    with storage.stage("ck-1") as path:
        assert path.is_dir() and not any(path.iterdir())
        files = _write_files(path)
        resources = storage.commit("ck-1", path, {"steps": 10, "framework": "torch"})
    assert resources == {rel: len(data) for rel, data in files.items()}
    assert storage.exists("ck-1")

    meta = storage.metadata("ck-1")
    assert meta["steps"] == 10 and meta["framework"] == "torch"
    assert meta["uuid"] == "ck-1"
    assert meta["resources"] == resources
    assert isinstance(meta["committed_at"], float)

    with storage.restore_path("ck-1") as restored:
        assert _tree(restored) == {**files, METADATA_FILE: _tree(restored)[METADATA_FILE]}
        assert json.loads(_tree(restored)[METADATA_FILE]) == meta

    dest = storage.download("ck-1", tmp_path / "download" / "here")
    assert dest == tmp_path / "download" / "here"
    downloaded = _tree(dest)
    assert json.loads(downloaded.pop(METADATA_FILE)) == meta
    assert downloaded == files
    assert storage.exists("ck-1")  # reading takes nothing away


def test_an_exception_inside_stage_commits_nothing(storage: CheckpointStorage) -> None:
    staged: list[Path] = []
    with pytest.raises(RuntimeError, match="user code broke"), storage.stage("ck-2") as path:
        staged.append(path)
        _write_files(path)
        raise RuntimeError("user code broke")
    assert not staged[0].exists()  # the staging directory is gone
    assert not storage.exists("ck-2")
    assert not storage.fs.exists(storage.path_of("ck-2"))
    assert storage.remove_incomplete() == 0  # nothing left behind for the sweeper either
    with pytest.raises(CheckpointError, match="checkpoint ck-2 is not in storage"):
        storage.metadata("ck-2")


def test_files_without_metadata_are_not_a_checkpoint(storage: CheckpointStorage, tmp_path: Path) -> None:
    # What a writer that died mid-commit leaves: files, but no metadata.json (written last).
    path = storage.path_of("ck-3")
    storage.fs.makedirs(path, exist_ok=True)
    storage.fs.pipe_file(f"{path}/weights.bin", b"half written")
    assert not storage.exists("ck-3")
    with pytest.raises(CheckpointError) as info, storage.restore_path("ck-3"):
        pass
    message = str(info.value)
    assert "checkpoint ck-3 is not in storage" in message
    assert storage.url in message
    assert "never committed" in message and "save_trial_latest" in message  # the why and the fix
    with pytest.raises(CheckpointError, match="ck-3"):
        storage.download("ck-3", tmp_path / "dest")


def test_a_crash_while_committing_leaves_no_checkpoint(
    storage: CheckpointStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Crash(Exception):
        pass

    if storage.is_local:
        real_replace = os.replace

        def crash_on_rename(
            src: Any, dst: Any
        ) -> None:  # metadata written, the rename into place never happens
            if os.path.isdir(src):
                raise Crash
            real_replace(src, dst)

        monkeypatch.setattr(storage_module.os, "replace", crash_on_rename)
        with pytest.raises(Crash), storage.stage("ck-4") as path:
            _write_files(path)
            storage.commit("ck-4", path, {"steps": 1})
        monkeypatch.undo()
    else:
        fs = storage.fs
        real_open = fs.open

        def crash_on_metadata(path: str, *args: Any, **kwargs: Any) -> Any:  # files uploaded, metadata not
            if path.endswith(METADATA_FILE):
                raise Crash
            return real_open(path, *args, **kwargs)

        fs.open = crash_on_metadata  # type: ignore[method-assign]
        try:
            with pytest.raises(Crash), storage.stage("ck-4") as path:
                _write_files(path)
                storage.commit("ck-4", path, {"steps": 1})
        finally:
            del fs.open  # the memory filesystem is a process-wide singleton
        assert fs.exists(f"{storage.path_of('ck-4')}/weights.bin")  # the crash came after the upload

    assert not storage.exists("ck-4")
    with pytest.raises(CheckpointError, match="ck-4"), storage.restore_path("ck-4"):
        pass
    _save(storage, "ck-5")  # the storage is still usable
    assert storage.exists("ck-5")


def test_delete(storage: CheckpointStorage) -> None:
    _save(storage, "ck-6")
    _save(storage, "ck-7")
    storage.delete("ck-6")
    assert not storage.exists("ck-6")
    assert not storage.fs.exists(storage.path_of("ck-6"))
    assert storage.exists("ck-7")
    with pytest.raises(CheckpointError, match="ck-6"):
        storage.metadata("ck-6")
    storage.delete("ck-6")  # deleting again (or a never-committed uuid) is a no-op
    storage.delete("never-was")
    assert storage.exists("ck-7")


def test_latest_pointer(storage: CheckpointStorage) -> None:
    assert storage.read_latest(1, 2) is None
    _save(storage, "ck-a", steps=5)
    storage.write_latest(1, 2, "ck-a", 5)
    assert storage.read_latest(1, 2) == ("ck-a", 5)
    assert storage.read_latest(1, 3) is None  # per trial
    assert storage.read_latest(2, 2) is None  # per experiment

    _save(storage, "ck-b", steps=9)
    storage.write_latest(1, 2, "ck-b", 9)
    assert storage.read_latest(1, 2) == ("ck-b", 9)

    storage.delete("ck-b")  # a pointer to a deleted checkpoint points nowhere
    assert storage.read_latest(1, 2) is None


def test_a_pointer_left_by_another_experiment_with_the_same_id_is_ignored(storage: CheckpointStorage) -> None:
    # A store deleted and created again restarts ids at 1 while its checkpoint root keeps the old
    # pointers: experiment 1 of the new store must not restore experiment 1 of the old one.
    _save(storage, "old-ck", steps=6)
    storage.write_latest(1, 1, "old-ck", 6, experiment_key="1-1700000000.0")
    assert storage.read_latest(1, 1, experiment_key="1-1800000000.0") is None
    assert storage.read_latest(1, 1) is None  # a caller without a key never takes a keyed pointer
    assert storage.read_latest(1, 1, experiment_key="1-1700000000.0") == ("old-ck", 6)


def test_latest_pointer_to_an_uncommitted_checkpoint_is_ignored(storage: CheckpointStorage) -> None:
    storage.write_latest(4, 5, "ghost", 100)
    assert storage.read_latest(4, 5) is None


def test_storage_pickles_and_works_after_unpickling(storage: CheckpointStorage) -> None:
    _save(storage, "ck-p", steps=3)
    storage.write_latest(7, 8, "ck-p", 3)
    clone = pickle.loads(pickle.dumps(storage))
    assert isinstance(clone, CheckpointStorage)
    assert (clone.url, clone.storage_options) == (storage.url, storage.storage_options)
    assert repr(clone) == repr(storage)
    assert clone.exists("ck-p")
    assert clone.read_latest(7, 8) == ("ck-p", 3)
    _save(clone, "ck-q")
    assert storage.exists("ck-q")
    with clone.restore_path("ck-p") as path:
        assert (path / "nested/deeper/state.json").read_bytes() == b'{"epoch": 3}'


# --- local-only behaviour ----------------------------------------------------------------------------


def test_local_commit_is_a_rename_of_the_staging_directory(tmp_path: Path) -> None:
    storage = CheckpointStorage(str(tmp_path / "root"))
    assert storage.is_local
    with storage.stage("ck-r") as path:
        assert path.parent == tmp_path / "root"  # staged in place, so commit needs no copy
        inode = path.stat().st_ino
        _write_files(path)
        storage.commit("ck-r", path, {})
        assert not path.exists()
    assert Path(storage.path_of("ck-r")).stat().st_ino == inode
    with storage.restore_path("ck-r") as restored:
        assert restored == Path(storage.path_of("ck-r"))
    with (
        pytest.raises(CheckpointError, match="checkpoint ck-r already exists"),
        storage.stage("ck-r") as path,
    ):
        storage.commit("ck-r", path, {})


def _age(path: Path, seconds: float) -> None:
    """Make a directory tree look untouched for ``seconds`` (as a crashed writer's staging would be)."""
    then = time.time() - seconds
    for p in [path, *path.rglob("*")]:
        os.utime(p, (then, then))


def test_remove_incomplete_sweeps_staging_left_by_crashed_writers(tmp_path: Path) -> None:
    storage = CheckpointStorage(str(tmp_path / "root"))
    _save(storage, "done")
    storage.write_latest(1, 1, "done", 10)
    crashed = storage.stage("crashed")  # entered and never exited: the writer died
    path = crashed.__enter__()
    _write_files(path)
    _age(path, 2 * 3600)
    _age(Path(storage.path_of("done")), 2 * 3600)  # old committed checkpoints are not "incomplete"

    assert storage.remove_incomplete() == 1
    assert not path.exists()
    assert storage.exists("done")
    assert storage.read_latest(1, 1) == ("done", 10)
    assert storage.remove_incomplete() == 0
    assert sorted(os.listdir(tmp_path / "root")) == ["done", "latest"]


def test_remove_incomplete_spares_a_save_in_progress(tmp_path: Path) -> None:
    # One root serves many experiments: a controller starting up must not sweep a live trial's staging.
    writer = CheckpointStorage(str(tmp_path / "root"))
    controller = CheckpointStorage(str(tmp_path / "root"))
    with writer.stage("live") as path:
        (path / "part-1.bin").write_bytes(b"1")
        _age(path, 2 * 3600)  # a long save: the directory is old...
        (path / "part-2.bin").write_bytes(b"2")  # ...but it is still being written
        assert controller.remove_incomplete() == 0
        assert path.exists()
        writer.commit("live", path, {"steps": 1})
    assert writer.exists("live")
    with writer.stage("stalled") as path:
        _write_files(path)
        _age(path, 61)
        assert controller.remove_incomplete(older_than=60) == 1
        assert not path.exists()


def test_remove_incomplete_is_a_no_op_on_object_stores() -> None:
    storage = CheckpointStorage(f"memory://det-test-{uuidlib.uuid4().hex}")
    assert not storage.is_local
    assert storage.remove_incomplete() == 0


# --- garbage collection policy -----------------------------------------------------------------------


def _gc(cks: list[CheckpointRecord], **policy: Any) -> set[str]:
    args: dict[str, Any] = {"save_experiment_best": 0, "save_trial_best": 0, "save_trial_latest": 0}
    args.update(policy)
    return checkpoints_to_delete(cks, **args)


def _ck(uuid: str, trial_id: int, steps: int, metric: float | None = None) -> CheckpointRecord:
    return CheckpointRecord(uuid, trial_id, steps, metric)


def test_gc_save_trial_latest_keeps_each_trial_newest() -> None:
    cks = [_ck("a1", 1, 10), _ck("a3", 1, 30), _ck("a2", 1, 20), _ck("b1", 2, 5), _ck("b2", 2, 15)]
    assert _gc(cks, save_trial_latest=1, smaller_is_better=True) == {"a1", "a2", "b1"}
    assert _gc(cks, save_trial_latest=2, smaller_is_better=True) == {"a1"}
    assert _gc(cks, save_trial_latest=5, smaller_is_better=True) == set()
    assert _gc(cks, save_trial_latest=0, smaller_is_better=True) == {c.uuid for c in cks}


@pytest.mark.parametrize(
    ("smaller_is_better", "kept"),
    [(True, {"lo", "b-lo"}), (False, {"hi", "b-hi"})],
)
def test_gc_save_trial_best_in_both_directions(smaller_is_better: bool, kept: set[str]) -> None:
    cks = [
        _ck("hi", 1, 10, 0.9),
        _ck("lo", 1, 20, 0.1),
        _ck("mid", 1, 30, 0.5),
        _ck("b-lo", 2, 10, 0.2),
        _ck("b-hi", 2, 20, 0.8),
    ]
    assert _gc(cks, save_trial_best=1, smaller_is_better=smaller_is_better) == {c.uuid for c in cks} - kept


@pytest.mark.parametrize(
    ("smaller_is_better", "kept"),
    [(True, {"b-lo", "lo"}), (False, {"hi", "b-hi"})],
)
def test_gc_save_experiment_best_ranks_across_trials(smaller_is_better: bool, kept: set[str]) -> None:
    cks = [
        _ck("hi", 1, 10, 0.9),
        _ck("lo", 1, 20, 0.1),
        _ck("mid", 1, 30, 0.5),
        _ck("b-lo", 2, 10, 0.05),
        _ck("b-hi", 2, 20, 0.8),
    ]
    assert (
        _gc(cks, save_experiment_best=2, smaller_is_better=smaller_is_better) == {c.uuid for c in cks} - kept
    )


def test_gc_the_three_rules_combine() -> None:
    cks = [
        _ck("a1", 1, 10, 0.3),
        _ck("a2", 1, 20, 0.6),
        _ck("a3", 1, 30, 0.5),
        _ck("b1", 2, 10, 0.1),
        _ck("b2", 2, 20, 0.4),
    ]
    deleted = _gc(cks, save_experiment_best=1, save_trial_best=1, save_trial_latest=1, smaller_is_better=True)
    # kept: b1 (experiment best, trial 2 best), a1 (trial 1 best), a3 and b2 (newest of each trial)
    assert deleted == {"a2"}


def test_gc_a_checkpoint_without_metric_never_ranks_best() -> None:
    cks = [_ck("none-new", 1, 30), _ck("none-old", 1, 10), _ck("scored", 1, 20, 99.0)]
    assert _gc(cks, save_trial_best=1, smaller_is_better=True) == {"none-new", "none-old"}
    assert _gc(cks, save_experiment_best=1, smaller_is_better=False) == {"none-new", "none-old"}
    unscored = [_ck("x", 1, 10), _ck("y", 2, 10)]
    assert _gc(unscored, save_experiment_best=5, save_trial_best=5, smaller_is_better=True) == {"x", "y"}


def test_gc_ties_in_metric_prefer_the_newer_checkpoint() -> None:
    cks = [_ck("old", 1, 10, 0.5), _ck("new", 1, 20, 0.5)]
    assert _gc(cks, save_trial_best=1, smaller_is_better=True) == {"old"}
    assert _gc(cks, save_experiment_best=1, smaller_is_better=False) == {"old"}


def test_gc_active_trials_keep_their_newest() -> None:
    cks = [_ck("a1", 1, 10, 0.1), _ck("a2", 1, 20, 0.9), _ck("b1", 2, 10), _ck("b2", 2, 20), _ck("c1", 3, 10)]
    policy: dict[str, Any] = {"save_experiment_best": 1, "smaller_is_better": True}
    assert _gc(cks, **policy) == {"a2", "b1", "b2", "c1"}
    assert _gc(cks, **policy, active_trials=[1, 2]) == {"b1", "c1"}
    assert _gc(cks, **policy, active_trials=iter([2])) == {"a2", "b1", "c1"}  # any iterable
    assert _gc([], **policy, active_trials=[1]) == set()


# A property test: for any checkpoints and any policy, what is deleted exists, and what is kept is exactly
# what some rule justifies. Steps are unique per trial so that "newest" is well defined.


@st.composite
def _checkpoint_sets(draw: st.DrawFn) -> list[CheckpointRecord]:
    out: list[CheckpointRecord] = []
    for trial_id in range(draw(st.integers(0, 4))):
        steps = draw(st.lists(st.integers(0, 1000), unique=True, max_size=6))
        for s in steps:
            metric = draw(st.none() | st.sampled_from([0.0, 0.25, 0.5, 1.0, -3.0]) | st.floats(-1e6, 1e6))
            out.append(CheckpointRecord(f"t{trial_id}-s{s}", trial_id, s, metric))
    return draw(st.permutations(out))


def _better(a: float, b: float, smaller_is_better: bool) -> bool:
    return a < b if smaller_is_better else a > b


@settings(max_examples=300, deadline=None)
@given(
    cks=_checkpoint_sets(),
    experiment_best=st.integers(0, 3),
    trial_best=st.integers(0, 3),
    trial_latest=st.integers(0, 3),
    smaller_is_better=st.booleans(),
    active=st.sets(st.integers(0, 5)),
)
def test_gc_property_keeps_what_the_rules_require_and_only_that(
    cks: list[CheckpointRecord],
    experiment_best: int,
    trial_best: int,
    trial_latest: int,
    smaller_is_better: bool,
    active: set[int],
) -> None:
    deleted = checkpoints_to_delete(
        cks,
        save_experiment_best=experiment_best,
        save_trial_best=trial_best,
        save_trial_latest=trial_latest,
        smaller_is_better=smaller_is_better,
        active_trials=active,
    )
    all_uuids = {c.uuid for c in cks}
    assert deleted <= all_uuids
    kept = all_uuids - deleted
    by_trial: dict[int, list[CheckpointRecord]] = {}
    for c in cks:
        by_trial.setdefault(c.trial_id, []).append(c)

    scored = [c for c in cks if c.metric is not None]
    for trial_id, trial_cks in by_trial.items():
        newest_first = sorted(trial_cks, key=lambda c: c.steps, reverse=True)
        assert {c.uuid for c in newest_first[:trial_latest]} <= kept  # save_trial_latest
        if trial_id in active:
            assert newest_first[0].uuid in kept
        trial_scored = [c for c in trial_cks if c.metric is not None]
        kept_scored = [c for c in trial_scored if c.uuid in kept]
        assert len(kept_scored) >= min(trial_best, len(trial_scored))
        for d in trial_scored:  # nothing better than a kept best was deleted
            if d.uuid in deleted and trial_best:
                assert (
                    sum(not _better(d.metric, k.metric, smaller_is_better) for k in kept_scored) >= trial_best
                )  # type: ignore[arg-type]
    kept_all_scored = [c for c in scored if c.uuid in kept]
    assert len(kept_all_scored) >= min(experiment_best, len(scored))
    for d in scored:
        if d.uuid in deleted and experiment_best:
            assert (
                sum(not _better(d.metric, k.metric, smaller_is_better) for k in kept_all_scored)
                >= experiment_best
            )  # type: ignore[arg-type]

    # and nothing is kept without a reason
    for c in cks:
        if c.uuid not in kept:
            continue
        trial_cks = by_trial[c.trial_id]
        newer = sum(o.steps > c.steps for o in trial_cks)
        reasons = [newer < trial_latest, c.trial_id in active and newer == 0]
        if c.metric is not None:
            better_in_trial = sum(
                o.metric is not None and _better(o.metric, c.metric, smaller_is_better) for o in trial_cks
            )
            better_overall = sum(_better(o.metric, c.metric, smaller_is_better) for o in scored)  # type: ignore[arg-type]
            reasons += [better_in_trial < trial_best, better_overall < experiment_best]
        assert any(reasons), c


def test_staging_of_a_dead_writer_goes_at_once_a_live_ones_stays(tmp_path: Path) -> None:
    """A writer SIGKILLed mid-save (a real process) leaves a staging dir that is removed at once."""
    import signal
    import subprocess
    import sys

    root = tmp_path / "root"
    script = (
        "import sys, time\n"
        "from det_jupyter.checkpoints import CheckpointStorage\n"
        f"s = CheckpointStorage({str(root)!r})\n"
        "with s.stage('half') as p:\n"
        "    (p / 'weights').write_text('partial')\n"
        "    print('staged', flush=True)\n"
        "    time.sleep(60)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "staged"
        storage = CheckpointStorage(str(root))
        with storage.stage("live") as live:  # this process's own save in progress
            assert storage.remove_incomplete() == 0  # the writer is alive: both stay
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait(timeout=30)
            assert storage.remove_incomplete() == 1  # dead writer: gone without waiting an hour
            assert live.exists()
        assert not storage.exists("half") and sorted(p.name for p in root.iterdir()) == []
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(timeout=30)
