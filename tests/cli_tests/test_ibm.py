"""IBM's deep-learning-service flow: manifest locations become ``data.data_dir`` / ``data.result_dir``,
credentials stay out of what is shown, and the CLI shows IBM's state names beside ours.

The run of a manifest + model zip through ``det-jupyter experiment create`` is in
``test_command_entrypoints.py`` (it needs the command runner).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from det_jupyter.config import load_config
from det_jupyter.config.ibm import IBM_LABEL, from_ibm_manifest, ibm_state, is_from_manifest
from det_jupyter.config.redact import REDACTED
from det_jupyter.errors import ConfigError
from det_jupyter.states import ExperimentState, TrialState
from det_jupyter.store import Store
from tests.cli_tests.helpers import run_cli
from tests.shared_examples import EXAMPLES

EXAMPLE = EXAMPLES / "ibm_manifest.yml"


def manifest(**sections: Any) -> dict[str, Any]:
    return {"model_definition": {"name": "ibm-job", "execution": {"command": "python3 train.py"}}, **sections}


def test_local_locations_become_data_dir_and_result_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(
        manifest(
            training_data=[{"source": {"type": "fs", "path": "data/mnist"}}],
            training_results={
                "target": {"type": "local", "container": str(tmp_path / "out"), "path": "run1"}
            },
        )
    )
    assert cfg.data == {"data_dir": str(tmp_path / "data" / "mnist"), "result_dir": f"{tmp_path}/out/run1"}
    assert cfg.entrypoint == "python3 train.py" and cfg.labels == [IBM_LABEL]
    assert cfg.checkpoint_storage.type == "shared_fs"  # a local target leaves checkpoints where they were


def test_fsspec_urls_are_kept_and_s3_connections_become_storage_options() -> None:
    connection = {"auth_url": "http://127.0.0.1:9000", "user_name": "AKIA-user", "password": "pw-secret"}
    cfg = from_ibm_manifest(
        manifest(
            training_data={"source": {"type": "fs", "container": "memory://datasets", "path": "mnist"}},
            training_results={
                "target": {"type": "s3_datastore", "container": "results", "connection": connection}
            },
        )
    )
    assert cfg["data"] == {
        "data_dir": "memory://datasets/mnist",
        "result_dir": "s3://results",
        "storage_options": {
            "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"},
            "key": "AKIA-user",
            "secret": "pw-secret",
        },
    }
    assert cfg["checkpoint_storage"] == {
        "type": "s3",
        "bucket": "results",
        "endpoint_url": "http://127.0.0.1:9000",
        "access_key": "AKIA-user",
        "secret_key": "pw-secret",
    }


def test_the_shared_example_translates(tmp_path: Path) -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.name == "tf-mnist" and cfg.resources.slots_per_trial == 1
    assert cfg.data == {"data_dir": "s3://tf_training_data", "result_dir": "s3://tf_training_results"}
    assert "${DATA_DIR}/train-images-idx3-ubyte.gz" in str(cfg.entrypoint)


@pytest.mark.parametrize(
    ("location", "path", "message"),
    [
        (
            {"type": "nfs", "path": "/d"},
            "training_data[0].source.type",
            "must be one of s3_datastore, fs, local (got 'nfs')",
        ),
        ({"type": "fs"}, "training_data[0].source.path", "is required for type fs"),
        ({"type": "s3_datastore"}, "training_data[0].source.container", "is required for s3_datastore"),
        ({"type": "fs", "path": "/d", "bucket": "b"}, "training_data[0].source.bucket", "unknown key"),
    ],
)
def test_bad_locations_name_the_field(location: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(manifest(training_data=[{"source": location}]))
    (error,) = info.value.errors
    assert (error.path, error.message) == (path, message)


def test_two_different_connections_are_refused() -> None:
    source = {"type": "s3_datastore", "container": "in", "connection": {"user_name": "a", "password": "x"}}
    target = {"type": "s3_datastore", "container": "out", "connection": {"user_name": "b", "password": "y"}}
    with pytest.raises(ConfigError) as info:
        from_ibm_manifest(manifest(training_data=[{"source": source}], training_results={"target": target}))
    (error,) = info.value.errors
    assert error.path == "training_results.target.connection"
    same = from_ibm_manifest(
        manifest(training_data=[{"source": source}], training_results={"target": source})
    )
    assert same["data"]["storage_options"] == {"key": "a", "secret": "x"}


@pytest.mark.parametrize(
    ("ours", "running", "theirs"),
    [
        (TrialState.QUEUED, True, "pending"),
        (ExperimentState.ACTIVE, False, "pending"),
        (ExperimentState.ACTIVE, True, "running"),
        (ExperimentState.PAUSED, True, "halted"),
        (ExperimentState.COMPLETED, True, "completed"),
        (TrialState.STOPPED, True, "completed"),
        (ExperimentState.ERROR, True, "failed"),
        (ExperimentState.CANCELED, True, "canceled"),
        (ExperimentState.STOPPING_CANCELED, True, "canceled"),
    ],
)
def test_ibm_state_names(ours: Any, running: bool, theirs: str) -> None:
    assert ibm_state(ours, running=running) == theirs


def _stored(store: Store, config: dict[str, Any], state: ExperimentState, trials: list[TrialState]) -> int:
    cfg = load_config(config).to_dict()
    exp_id = store.create_experiment(name=cfg["name"], config=cfg, entrypoint=b"x", seed=1)
    store.update_experiment(exp_id, state=state.value)
    for i, trial_state in enumerate(trials):
        trial_id = store.create_trial(exp_id, i, {})
        store.update_trial(trial_id, state=trial_state.value)
    return exp_id


def test_list_and_describe_show_ibm_states_beside_ours(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(tmp_path / "det_jupyter.db")
    plain = {"name": "plain", "searcher": {"name": "single", "metric": "loss"}}
    secret = {
        "type": "s3_datastore",
        "container": "r",
        "connection": {"user_name": "u", "password": "pw-secret"},
    }
    ids = [
        _stored(store, manifest(), ExperimentState.ACTIVE, [TrialState.QUEUED]),
        _stored(store, manifest(), ExperimentState.ACTIVE, [TrialState.ACTIVE]),
        _stored(
            store, manifest(training_results={"target": secret}), ExperimentState.ERROR, [TrialState.ERROR]
        ),
        _stored(store, plain, ExperimentState.COMPLETED, [TrialState.COMPLETED]),
    ]
    assert is_from_manifest(store.get_experiment(ids[0]).config)
    listed = run_cli(capsys, "--store", str(store.path), "experiment", "list")
    rows = [line.split() for line in listed.out.splitlines()]
    assert rows[0] == ["id", "state", "ibm", "state", "progress", "trials", "name"]
    assert [r[:3] for r in rows[1:]] == [
        ["4", "COMPLETED", "-"],
        ["3", "ERROR", "failed"],
        ["2", "ACTIVE", "running"],
        ["1", "ACTIVE", "pending"],
    ]
    asked = run_cli(capsys, "--store", str(store.path), "e", "list", "--ibm").out.splitlines()
    assert asked[1].split()[:3] == ["4", "COMPLETED", "completed"]

    described = run_cli(capsys, "--store", str(store.path), "experiment", "describe", str(ids[2]))
    assert described.out.startswith(f"experiment {ids[2]} 'ibm-job': ERROR (IBM: failed)")
    assert "pw-secret" not in described.out and REDACTED in described.out
    trial_rows = described.out.split("hparams\n", 1)[1].split()
    assert trial_rows[:3] == ["3", "ERROR", "failed"]
    info = json.loads(run_cli(capsys, "--store", str(store.path), "e", "describe", str(ids[2]), "--json").out)
    assert (info["state"], info["ibm_state"], info["trials"][0]["ibm_state"]) == ("ERROR", "failed", "failed")
    assert info["config"]["data"]["storage_options"]["secret"] == REDACTED
    assert "pw-secret" not in json.dumps(info)
