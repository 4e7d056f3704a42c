"""Checkpoints in S3, end to end: real experiments on the real LocalCluster against a moto S3 server.

Trials write, restore (after a failure), garbage-collect and point ``latest/`` at checkpoints in the
bucket; the kernel loads and downloads them back; nothing checkpoint-related is left on local disk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import det_jupyter
from det_jupyter import ExperimentState, TrialState
from tests.storage_tests.conftest import S3Bucket

pytestmark = pytest.mark.slow


def config(bucket: S3Bucket, tmp_path: Path, **storage: Any) -> dict[str, Any]:
    return experiment_config("s3-checkpoints", bucket.storage_config(**storage), tmp_path)


def experiment_config(name: str, storage: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Two trials of :func:`stepping_trial` (one fails once at step 7) checkpointing to ``storage``."""
    return {
        "name": name,
        "searcher": {
            "name": "grid",
            "metric": "val_loss",
            "time_metric": "batches",
            "max_time": 10,
            "max_concurrent_trials": 2,
        },
        "hyperparameters": {
            "x": {"type": "categorical", "vals": [0.25, 0.5]},
            "marker_dir": str(tmp_path),
            "fail_once_at": 7,
        },
        "max_restarts": 2,
        "checkpoint_storage": storage,
    }


def stepping_trial(ctx: Any) -> None:
    """Trains to max_time, validating and checkpointing every 5 steps; the x=0.5 trial raises once
    at ``fail_once_at`` (a marker file makes it once), so its second run must restore from S3."""
    hp = ctx.hparams
    start = 0
    with ctx.checkpoint.restore() as path:
        if path is not None:
            start = int((path / "step").read_text())
    print(f"run {ctx.run_id} starts at step {start}")
    marker = Path(hp["marker_dir"]) / f"failed-{ctx.trial_id}"
    for step in range(start + 1, ctx.searcher.max_time + 1):
        if hp["x"] == 0.5 and step == hp["fail_once_at"] and not marker.exists():
            marker.write_text("failed")
            raise ValueError(f"planned failure at step {step}")
        ctx.report_training_metrics(step, {"loss": 1.0 / step})
        if step % 5 == 0:
            ctx.report_validation_metrics(step, {"val_loss": hp["x"] + 1.0 / step})
            with ctx.checkpoint.save(step) as out:
                (out / "step").write_text(str(step))
                (out / "weights").mkdir()
                (out / "weights" / "x.json").write_text(json.dumps({"x": hp["x"], "step": step}))


def load_step(path: Path) -> tuple[int, float]:
    """The experiment's ``load=`` hook: a "model" made from the checkpoint's files."""
    weights = json.loads((path / "weights" / "x.json").read_text())
    return int((path / "step").read_text()), float(weights["x"])


def test_checkpoints_round_trip_through_s3(
    s3_bucket: S3Bucket, dask_client: Any, tmp_path: Path, det_home: Path
) -> None:
    exp = det_jupyter.create_experiment(
        config(s3_bucket, tmp_path),
        stepping_trial,
        cluster=dask_client,
        store=tmp_path / "det.db",
        load=load_step,
    )
    assert exp.wait(timeout=180) == ExperimentState.COMPLETED, exp.error
    trials = {t.hparams["x"]: t for t in exp.trials()}
    assert {t.state for t in trials.values()} == {TrialState.COMPLETED}

    # the failed trial's second run restored step 5 from S3 and trained on from there
    failed = trials[0.5]
    assert failed.restarts == 1
    assert failed.logs()[0] == "run 0 starts at step 0"
    assert "run 1 starts at step 5" in failed.logs()
    training = failed.metrics("training")
    assert list(training[training.run_id == 1]["steps"]) == [6, 7, 8, 9, 10]
    assert list(trials[0.25].metrics("training")["steps"]) == list(range(1, 11))

    # the kernel gets the best checkpoint back from S3: loaded by the hook, and downloaded
    best = exp.best_checkpoint()
    assert best.trial_id == trials[0.25].id and best.steps == 10
    assert best.load() == (10, 0.25)
    out = best.download(tmp_path / "download")
    assert (out / "step").read_text() == "10"
    assert json.loads((out / "weights" / "x.json").read_text()) == {"x": 0.25, "step": 10}
    assert json.loads((out / "metadata.json").read_text())["uuid"] == best.uuid

    # GC (save_trial_best=1, save_trial_latest=1) deleted the step-5 checkpoints from the bucket
    fs = s3_bucket.fs()
    kept = {c.uuid for c in exp.checkpoints()}
    assert len(kept) == 2 and all(len(t.checkpoints()) == 1 for t in trials.values())
    top = {p.rsplit("/", 1)[-1] for p in fs.ls(s3_bucket.bucket)}
    assert top == kept | {"latest"}
    for uuid in kept:
        files = {p.split(f"{uuid}/", 1)[1] for p in fs.find(f"{s3_bucket.bucket}/{uuid}")}
        assert files == {"step", "weights/x.json", "metadata.json"}

    # each trial's latest/ pointer lives in the bucket and names its newest checkpoint
    pointers = {p.rsplit("/", 1)[-1] for p in fs.ls(f"{s3_bucket.bucket}/latest")}
    assert pointers == {f"{exp.id}-{t.id}.json" for t in trials.values()}
    for t in trials.values():
        doc = json.loads(fs.cat(f"{s3_bucket.bucket}/latest/{exp.id}-{t.id}.json"))
        assert doc["uuid"] == t.checkpoints()[-1].uuid and doc["steps"] == 10

    # nothing went to the local default checkpoint root
    assert not (det_home / "checkpoints").exists() or not any((det_home / "checkpoints").iterdir())
