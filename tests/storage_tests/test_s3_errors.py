"""A wrong S3 endpoint, a missing bucket or missing credentials fail at submission, naming the field
and the fix, before anything is written to the store (nothing is lost, no trial runs)."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

import det_jupyter
from det_jupyter.checkpoints import CheckpointStorage
from det_jupyter.errors import ConfigError
from det_jupyter.store import Store
from tests.storage_tests.conftest import S3Bucket

SEARCHER = {"name": "single", "metric": "loss", "time_metric": "batches", "max_time": 1}


def train(ctx: Any) -> None:
    ctx.report_validation_metrics(1, {"loss": 0.0})


def submit_error(storage: dict[str, Any], tmp_path: Path) -> ConfigError:
    """Submit with this checkpoint storage; the ConfigError it must raise (nothing may be stored)."""
    store = Store(tmp_path / "det.db")
    cfg = {"name": "bad-storage", "searcher": SEARCHER, "checkpoint_storage": storage}
    with pytest.raises(ConfigError) as info:
        det_jupyter.create_experiment(
            cfg, train, cluster="tcp://127.0.0.1:1", store=store, master="inprocess"
        )
    assert store.list_experiments() == []
    return info.value


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


def test_unreachable_endpoint_names_endpoint_url(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{unused_port()}"
    started = time.monotonic()
    error = submit_error(s3_bucket.storage_config(endpoint_url=dead), tmp_path)
    elapsed = time.monotonic() - started
    assert error.paths == ["checkpoint_storage.endpoint_url"]
    [field] = error.errors
    assert dead in field.message and "cannot reach" in field.message
    assert field.fix is not None and "S3 server" in field.fix
    assert s3_bucket.secret_key not in str(error)
    print(f"dead endpoint reported after {elapsed:.1f} s")


def test_missing_bucket_names_bucket(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    error = submit_error(s3_bucket.storage_config(bucket="no-such-bucket"), tmp_path)
    assert error.paths == ["checkpoint_storage.bucket"]
    [field] = error.errors
    assert "s3://no-such-bucket" in field.message and "does not exist" in field.message
    assert field.fix is not None and "create the bucket" in field.fix
    assert s3_bucket.secret_key not in str(error)


def test_no_credentials_anywhere_names_the_keys_and_the_environment(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    storage = s3_bucket.storage_config()
    del storage["access_key"], storage["secret_key"]  # and the fixture cleared AWS_* variables
    error = submit_error(storage, tmp_path)
    assert error.paths == ["checkpoint_storage.access_key"]
    [field] = error.errors
    assert "no working credentials" in field.message and "NoCredentialsError" in field.message
    assert field.fix is not None and "AWS_ACCESS_KEY_ID" in field.fix and "secret_key" in field.fix


def test_the_probe_leaves_nothing_in_the_bucket(s3_bucket: S3Bucket) -> None:
    storage = CheckpointStorage(
        f"s3://{s3_bucket.bucket}/team/exp",
        {
            "key": s3_bucket.access_key,
            "secret": s3_bucket.secret_key,
            "client_kwargs": {"endpoint_url": s3_bucket.endpoint},
        },
    )
    assert storage.check_access() is None
    assert s3_bucket.fs().find(s3_bucket.bucket) == []


def test_credentials_from_the_environment_pass_the_probe(
    s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage_options = {"client_kwargs": {"endpoint_url": s3_bucket.endpoint}}
    storage = CheckpointStorage(f"s3://{s3_bucket.bucket}", storage_options)
    problem = storage.check_access()
    assert problem is not None and problem.reason == "credentials"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_bucket.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_bucket.secret_key)
    assert CheckpointStorage(f"s3://{s3_bucket.bucket}", storage_options).check_access() is None
