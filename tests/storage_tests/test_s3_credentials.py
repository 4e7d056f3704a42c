"""S3 credentials from the config or from the environment, and never in a log.

Each test's secret key is a unique string; after a real experiment (one trial failing once, so
tracebacks and restarts are logged too) it is looked for in every place something is written or shown:
trial logs and errors, the experiment's error, every row of the store, the CLI's ``describe``, the Dask
worker and scheduler logs, the master's log file (master mode: its workers write there too) and the
objects in the bucket.

The store keeps the experiment's config as submitted (``docs/security.md``: "Stored in clear"): with
keys in the config, that one column holds them and every surface shows it redacted; with keys from
the environment, no byte of the store holds them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import det_jupyter
from det_jupyter import ExperimentState, TrialState
from det_jupyter.cli import main as cli_main
from det_jupyter.config.redact import REDACTED
from tests.master_tests.helpers import master_mode_home
from tests.storage_tests.conftest import S3Bucket
from tests.storage_tests.test_s3_checkpoints import experiment_config, load_step, stepping_trial

pytestmark = pytest.mark.slow


def config(storage: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    return experiment_config("s3-credentials", storage, tmp_path)


def store_cells(db: Path) -> Iterator[tuple[str, str, str]]:
    """Every text or blob cell of the store as ``(table, column, text)``."""
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}"')
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row):
                    if isinstance(value, bytes):
                        yield table, column, value.decode("latin-1")
                    elif isinstance(value, str):
                        yield table, column, value


def cli_describe(db: Path, exp_id: int, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert cli_main(["--store", str(db), "experiment", "describe", str(exp_id)]) == 0
    assert cli_main(["--store", str(db), "experiment", "describe", str(exp_id), "--json"]) == 0
    return capsys.readouterr().out


def check_experiment(exp: Any) -> None:
    """It completed; the failed trial restored from S3; the kernel loads the best checkpoint from S3."""
    assert exp.wait(timeout=180) == ExperimentState.COMPLETED, exp.error
    trials = {t.hparams["x"]: t for t in exp.trials()}
    assert {t.state for t in trials.values()} == {TrialState.COMPLETED}
    assert trials[0.5].restarts == 1 and "run 1 starts at step 5" in trials[0.5].logs()
    assert any("planned failure at step 7" in line for line in trials[0.5].logs())
    assert exp.best_checkpoint().load() == (10, 0.25)


def assert_nowhere(secret: str, exp: Any, bucket: S3Bucket, texts: dict[str, str]) -> None:
    for t in exp.trials():
        assert not [line for line in t.logs() if secret in line], f"trial {t.id}'s log"
        assert secret not in (t.error or "")
    assert secret not in (exp.error or "")
    fs = bucket.fs()
    for path in fs.find(bucket.bucket):
        assert secret.encode() not in fs.cat(path), path
    for where, text in texts.items():
        assert secret not in text, where


def test_keys_in_the_config_reach_s3_and_no_log(
    s3_bucket: S3Bucket, dask_client: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "det.db"
    secret = s3_bucket.secret_key
    exp = det_jupyter.create_experiment(
        config(s3_bucket.storage_config(), tmp_path),
        stepping_trial,
        cluster=dask_client,
        store=db,
        load=load_step,
    )
    check_experiment(exp)
    describe = cli_describe(db, exp.id, capsys)
    assert f'"secret_key": "{REDACTED}"' in describe and f'"access_key": "{REDACTED}"' in describe
    worker_logs = dask_client.get_worker_logs()
    texts = {
        "cli describe": describe,
        "dask worker logs": "\n".join(f"{level} {msg}" for log in worker_logs.values() for level, msg in log),
        "dask scheduler log": "\n".join(f"{level} {msg}" for level, msg in dask_client.get_scheduler_logs()),
    }
    assert_nowhere(secret, exp, s3_bucket, texts)
    holding = {(table, column) for table, column, text in store_cells(db) if secret in text}
    assert holding == {("experiments", "config")}  # kept as submitted; shown redacted everywhere


def test_keys_from_the_environment_reach_the_master_and_its_workers(
    s3_bucket: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No keys in the config: the kernel, the master it starts and the master's workers all take
    them from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (without them the submission fails: see
    test_s3_errors)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_bucket.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_bucket.secret_key)
    storage = s3_bucket.storage_config()
    del storage["access_key"], storage["secret_key"]
    with master_mode_home(tmp_path / "home", monkeypatch, workers=2) as home:
        exp = det_jupyter.create_experiment(config(storage, tmp_path), stepping_trial, load=load_step)
        check_experiment(exp)
        db = home / "det_jupyter.db"
        describe = cli_describe(db, exp.id, capsys)
        assert s3_bucket.endpoint in describe
    master_log = (home / "master.log").read_text(errors="replace")
    assert master_log  # the master and its workers wrote there
    texts = {"cli describe": describe, "master.log": master_log}
    for secret in (s3_bucket.secret_key, s3_bucket.access_key):
        assert_nowhere(secret, exp, s3_bucket, texts)
        assert not [(t, c) for t, c, text in store_cells(db) if secret in text]
    fs = s3_bucket.fs()
    assert {c.uuid for c in exp.checkpoints()} | {"latest"} == {
        p.rsplit("/", 1)[-1] for p in fs.ls(s3_bucket.bucket)
    }
