"""``data.data_dir`` as any fsspec URL: trials get ``ctx.data_dir`` (and ``$DATA_DIR``), a local path
as is, remote data downloaded once per worker however many trials ask at once.

"Downloaded once" is counted where it happens: the GET requests for the data's objects in the S3
server's own request log.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import det_jupyter
from det_jupyter import ExperimentState, TrialState
from det_jupyter.worker.context import local_context
from det_jupyter.worker.data import local_data
from tests.storage_tests.conftest import S3Bucket, S3Server

DATA_FILES = {"train.csv": "x,y\n1,2\n3,4\n", "labels/names.txt": "setosa\nversicolor\n"}


def upload_data(bucket: S3Bucket, prefix: str = "datasets/iris") -> str:
    fs = bucket.fs()
    for rel, text in DATA_FILES.items():
        fs.pipe(f"{bucket.bucket}/{prefix}/{rel}", text.encode())
    return f"s3://{bucket.bucket}/{prefix}"


def object_gets(server: S3Server, bucket: S3Bucket, key: str) -> int:
    """How many GET requests for one object the server has answered so far."""
    pattern = re.compile(rf'"GET /{re.escape(bucket.bucket)}/{re.escape(key)}(\?[^ ]*)? HTTP')
    return sum(1 for line in server.log.read_text(errors="replace").splitlines() if pattern.search(line))


def options(bucket: S3Bucket) -> dict[str, Any]:
    return {
        "key": bucket.access_key,
        "secret": bucket.secret_key,
        "client_kwargs": {"endpoint_url": bucket.endpoint},
    }


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Outside a Dask worker the data cache lives under the temp dir: make that this test's own."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_local_paths_and_file_urls_are_used_as_they_are(tmp_path: Path) -> None:
    assert local_data(str(tmp_path)) == tmp_path
    assert local_data(f"file://{tmp_path}") == tmp_path
    assert local_data("~/data") == Path.home() / "data"
    assert local_context({}).data_dir is None
    assert local_context({}, data={"data_dir": f"file://{tmp_path}"}).data_dir == tmp_path


def test_remote_data_is_downloaded_once_for_concurrent_callers(
    s3_server: S3Server, s3_bucket: S3Bucket, scratch: Path
) -> None:
    url = upload_data(s3_bucket)
    barrier = threading.Barrier(8)
    results: list[Path] = []

    def call() -> None:
        barrier.wait(timeout=30)
        results.append(local_data(url, options(s3_bucket)))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 8 and len(set(results)) == 1
    [path] = set(results)
    assert path.parent == scratch / "det-jupyter-data"
    assert {
        p.relative_to(path).as_posix(): p.read_text() for p in path.rglob("*") if p.is_file()
    } == DATA_FILES
    for rel in DATA_FILES:
        assert object_gets(s3_server, s3_bucket, f"datasets/iris/{rel}") == 1
    # no half download left beside it; a later caller (a later trial) is served from the cache
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(".lock")) == [path.name]
    assert local_context({}, data={"data_dir": url, "storage_options": options(s3_bucket)}).data_dir == path
    assert object_gets(s3_server, s3_bucket, "datasets/iris/train.csv") == 1


def test_a_single_remote_file_arrives_in_its_own_directory(s3_bucket: S3Bucket, scratch: Path) -> None:
    url = upload_data(s3_bucket)
    path = local_data(f"{url}/train.csv", options(s3_bucket))
    assert [p.name for p in path.iterdir()] == ["train.csv"]


def test_remote_data_that_does_not_exist_names_the_url(s3_bucket: S3Bucket, scratch: Path) -> None:
    url = f"s3://{s3_bucket.bucket}/no/such/data"
    with pytest.raises(FileNotFoundError, match=re.escape(url)):
        local_data(url, options(s3_bucket))
    assert not any(p.is_dir() for p in (scratch / "det-jupyter-data").iterdir())  # nothing half-made


# --- a real experiment: two trials at once on one worker ----------------------------------------------


def data_trial(ctx: Any) -> None:
    """Waits until both trials have started (so their first ``ctx.data_dir`` overlaps), then reads."""
    rendezvous = Path(ctx.hparams["rendezvous"])
    (rendezvous / f"arrived-{ctx.trial_id}").write_text("")
    deadline = time.monotonic() + 60
    while len(list(rendezvous.glob("arrived-*"))) < 2:
        if time.monotonic() > deadline:
            raise TimeoutError("the other trial never started beside this one")
        time.sleep(0.01)
    data_dir = ctx.data_dir
    rows = (data_dir / "train.csv").read_text().splitlines()
    print(f"pid={os.getpid()} data_dir={data_dir} rows={len(rows)}")
    ctx.report_validation_metrics(1, {"rows": len(rows)})


def test_two_trials_on_one_worker_download_once(
    s3_server: S3Server, s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    from distributed import Client, LocalCluster

    url = upload_data(s3_bucket)
    config = {
        "name": "s3-data",
        "searcher": {
            "name": "grid",
            "metric": "rows",
            "smaller_is_better": False,
            "max_concurrent_trials": 2,
        },
        "hyperparameters": {"i": {"type": "categorical", "vals": [1, 2]}, "rendezvous": str(tmp_path)},
        "data": {"data_dir": url, "storage_options": options(s3_bucket)},
        "checkpoint_storage": {"host_path": str(tmp_path / "checkpoints")},
    }
    # one worker process, two trial slots: both trials run in it at the same time
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=True, resources={"CPU": 2}, dashboard_address=None
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        exp = det_jupyter.create_experiment(config, data_trial, cluster=client, store=tmp_path / "det.db")
        assert exp.wait(timeout=120) == ExperimentState.COMPLETED, exp.error
        trials = exp.trials()
        assert [t.state for t in trials] == [TrialState.COMPLETED] * 2
        lines = [t.logs()[-1] for t in trials]
        pids = {re.search(r"pid=(\d+)", line).group(1) for line in lines}  # type: ignore[union-attr]
        dirs = {re.search(r"data_dir=(\S+)", line).group(1) for line in lines}  # type: ignore[union-attr]
        assert len(pids) == 1 and len(dirs) == 1 and all("rows=3" in line for line in lines)
        assert all(t.best_validation == 3 for t in trials)
    for rel in DATA_FILES:
        assert object_gets(s3_server, s3_bucket, f"datasets/iris/{rel}") == 1
    for t in trials:
        assert not any(s3_bucket.secret_key in line for line in t.logs())


def test_command_trials_get_remote_data_as_DATA_DIR(
    s3_bucket: S3Bucket, dask_client: Any, tmp_path: Path
) -> None:
    url = upload_data(s3_bucket)
    config = {
        "name": "s3-data-command",
        "entrypoint": 'sh -c "cat $DATA_DIR/train.csv $DATA_DIR/labels/names.txt"',
        "searcher": {"name": "single", "metric": "loss"},
        "data": {"data_dir": url, "storage_options": options(s3_bucket)},
        "checkpoint_storage": {"host_path": str(tmp_path / "checkpoints")},
    }
    exp = det_jupyter.create_experiment(config, cluster=dask_client, store=tmp_path / "det.db")
    assert exp.wait(timeout=120) == ExperimentState.COMPLETED, exp.error
    [trial] = exp.trials()
    assert trial.logs() == "".join(DATA_FILES.values()).splitlines()
