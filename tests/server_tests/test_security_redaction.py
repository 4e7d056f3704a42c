"""Secrets in an experiment config are shown as ``********`` on every surface, and stay real in the store.

Surfaces: the REST API (``experiments/<id>``, through a real Jupyter server), ``%det describe``
(``notebook/reports.py``), ``det-jupyter experiment describe`` (``cli.py``); all go through the one
:func:`~det_jupyter.config.redact.redact_config`. The slow test runs a real experiment with secret
environment variables and checks that the trial code got the real values while no trial log line,
trial error or API answer carries them.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from det_jupyter.cli import main as cli_main
from det_jupyter.config import load_config
from det_jupyter.config.redact import REDACTED, is_secret_env_name, redact_config, secret_values
from det_jupyter.notebook.reports import experiment_description
from det_jupyter.states import ExperimentState, TrialState
from det_jupyter.store import Store

API = "det-jupyter/api"
SECRETS = {
    "access": "AKIA-access-key-value",
    "secret": "s3-secret-key-value",
    "token": "hf-token-value",
    "password": "db-password-value",
    "url_password": "url-password-value",
}


def secret_config() -> dict[str, Any]:
    """A config as stored (validated, canonical) with s3 credentials and secret environment variables."""
    return load_config(
        {
            "name": "with-secrets",
            "searcher": {"name": "single", "metric": "loss", "time_metric": "batches", "max_time": 2},
            "checkpoint_storage": {
                "type": "s3",
                "bucket": "ckpts",
                "endpoint_url": "http://127.0.0.1:9000",
                "access_key": SECRETS["access"],
                "secret_key": SECRETS["secret"],
            },
            "environment": {
                "env_vars": [
                    f"HF_TOKEN={SECRETS['token']}",
                    f"DB_PASSWORD={SECRETS['password']}",
                    f"DB_URL=postgres://me:{SECRETS['url_password']}@127.0.0.1/db",
                    "OMP_NUM_THREADS=4",
                ]
            },
        }
    ).to_dict()


def assert_no_secret(text: str) -> None:
    for name, value in SECRETS.items():
        assert value not in text, f"the {name} secret leaks"


# --- the one function ---------------------------------------------------------------------------------


def test_redact_config_hides_storage_credentials_and_secret_env_vars() -> None:
    cfg = secret_config()
    original = copy.deepcopy(cfg)
    shown = redact_config(cfg)
    assert cfg == original  # the argument (the stored config) is not touched
    storage, env = shown["checkpoint_storage"], shown["environment"]["env_vars"]
    assert storage["access_key"] == storage["secret_key"] == REDACTED
    assert storage["bucket"] == "ckpts" and storage["endpoint_url"] == "http://127.0.0.1:9000"
    assert storage["save_trial_best"] == original["checkpoint_storage"]["save_trial_best"]
    assert env == {
        "HF_TOKEN": REDACTED,
        "DB_PASSWORD": REDACTED,
        "DB_URL": f"postgres://me:{REDACTED}@127.0.0.1/db",
        "OMP_NUM_THREADS": "4",
    }
    assert {k: v for k, v in shown.items() if k not in ("checkpoint_storage", "environment")} == {
        k: v for k, v in original.items() if k not in ("checkpoint_storage", "environment")
    }
    assert_no_secret(json.dumps(shown))
    assert sorted(secret_values(cfg)) == sorted(SECRETS.values())


def test_redact_config_handles_determined_shapes_and_other_storage_types() -> None:
    raw = {
        "checkpoint_storage": {
            "type": "gcs",
            "bucket": "b",
            "credentials": {"private_key": "pk", "client_email": "me@example.invalid"},
            "sas_token": "sas",
            "connection_string": "DefaultEndpointsProtocol=https;AccountKey=k",
            "account_key": None,  # absent stays visibly absent
            "url": "s3://AK:SK@bucket/prefix",
        },
        "environment": {
            "environment_variables": {"cpu": ["WANDB_API_KEY=w", "A=1"], "cuda": ["GITHUB_TOKEN=g"]},
        },
    }
    shown = redact_config(raw)
    storage = shown["checkpoint_storage"]
    assert storage["credentials"] == REDACTED
    assert storage["sas_token"] == REDACTED
    assert storage["account_key"] is None
    assert storage["url"] == f"s3://AK:{REDACTED}@bucket/prefix"
    assert storage["connection_string"] == REDACTED  # Azure's holds the account key
    assert shown["environment"]["environment_variables"] == {
        "cpu": [f"WANDB_API_KEY={REDACTED}", "A=1"],
        "cuda": [f"GITHUB_TOKEN={REDACTED}"],
    }
    assert "pk" not in json.dumps(shown) and "AccountKey=k" not in json.dumps(shown)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("AWS_SECRET_ACCESS_KEY", True),
        ("AWS_SESSION_TOKEN", True),
        ("WANDB_API_KEY", True),
        ("OPENAI_APIKEY", True),
        ("DB_PASSWORD", True),
        ("MY_SECRETS_FILE", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", True),
        ("hf_token", True),
        ("TOKENIZERS_PARALLELISM", False),
        ("KEYRING_BACKEND", False),
        ("OMP_NUM_THREADS", False),
        ("PYTHONHASHSEED", False),
    ],
)
def test_secret_env_names(name: str, secret: bool) -> None:
    assert is_secret_env_name(name) is secret


# --- the surfaces ---------------------------------------------------------------------------------------


async def test_rest_api_shows_the_config_redacted(jp_fetch: Any, det_store: Store) -> None:
    exp_id = det_store.create_experiment(name="s", config=secret_config(), entrypoint=b"x", seed=1)
    det_store.create_trial(exp_id, 0, {"lr": 0.1})
    response = await jp_fetch(API, "experiments", str(exp_id))
    body = json.loads(response.body)
    assert body["config"]["checkpoint_storage"]["secret_key"] == REDACTED
    assert body["config"]["environment"]["env_vars"]["HF_TOKEN"] == REDACTED
    assert body["config"]["environment"]["env_vars"]["OMP_NUM_THREADS"] == "4"
    for path in [("experiments",), ("experiments", str(exp_id)), ("experiments", str(exp_id), "trials")]:
        assert_no_secret((await jp_fetch(API, *path)).body.decode())
    stored = det_store.get_experiment(exp_id).config  # the engine's copy keeps the real values
    assert stored["checkpoint_storage"]["secret_key"] == SECRETS["secret"]
    assert stored["environment"]["env_vars"]["HF_TOKEN"] == SECRETS["token"]


def test_det_describe_report_shows_the_config_redacted(det_store: Store) -> None:
    exp_id = det_store.create_experiment(name="s", config=secret_config(), entrypoint=b"x", seed=1)
    report = experiment_description(det_store, exp_id)
    assert REDACTED in report.text and REDACTED in report.html
    assert '"OMP_NUM_THREADS": "4"' in report.text
    assert_no_secret(report.text)
    assert_no_secret(report.html)


def test_cli_describe_shows_the_config_redacted(det_store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    exp_id = det_store.create_experiment(name="s", config=secret_config(), entrypoint=b"x", seed=1)
    assert cli_main(["--store", str(det_store.path), "experiment", "describe", str(exp_id)]) == 0
    out = capsys.readouterr().out
    assert f'"secret_key": "{REDACTED}"' in out
    assert_no_secret(out)


# --- a real run: the engine gets the values, no log gets them ----------------------------------------


def secret_env_trial(ctx: Any) -> None:
    import os as _os

    got = (
        _os.environ.get("HF_TOKEN") == "hf-token-value"
        and _os.environ.get("DB_PASSWORD") == "db-password-value"
    )
    print(
        f"trial {ctx.trial_id} sees its environment: {sorted(k for k in _os.environ if k.startswith('DB_'))}"
    )
    ctx.report_training_metrics(1, {"env_ok": float(got)})
    ctx.report_validation_metrics(1, {"loss": float(ctx.hparams["fail"])})
    if ctx.hparams["fail"]:
        raise RuntimeError("this trial fails on purpose")


@pytest.mark.slow
async def test_secret_env_vars_reach_the_trial_but_no_log(
    jp_fetch: Any, det_store: Store, dask_client: Any, tmp_path: Path
) -> None:
    import det_jupyter

    cfg = {
        "name": "secret-run",
        "searcher": {"name": "grid", "metric": "loss", "time_metric": "batches", "max_time": 1},
        "hyperparameters": {"fail": {"type": "categorical", "vals": [0, 1]}},
        "max_restarts": 0,
        "checkpoint_storage": {"host_path": str(tmp_path / "ckpt")},
        "environment": {
            "env_vars": {"HF_TOKEN": SECRETS["token"], "DB_PASSWORD": SECRETS["password"], "PLAIN": "1"}
        },
    }
    exp = det_jupyter.create_experiment(cfg, secret_env_trial, cluster=dask_client, store=det_store)
    state = exp.wait(timeout=120)
    assert state in (ExperimentState.COMPLETED, ExperimentState.ERROR)
    trials = {t.hparams["fail"]: t for t in exp.trials()}
    assert trials[0].state == TrialState.COMPLETED and trials[1].state == TrialState.ERROR
    ok = det_store.metrics(trial_id=trials[0].id, kind="training")
    assert [m.metrics["env_ok"] for m in ok] == [1.0]  # the trial got the real values
    assert det_store.get_experiment(exp.id).config["environment"]["env_vars"]["HF_TOKEN"] == SECRETS["token"]

    text = []
    for trial in trials.values():
        text += [line.line for line in det_store.logs(trial.id)]
        text.append(det_store.get_trial(trial.id).error or "")
    assert any("sees its environment" for line in text)
    assert any("fails on purpose" in line for line in text)  # the traceback is in the log ...
    assert_no_secret("\n".join(text))  # ... and no secret value is
    for path in [("experiments", str(exp.id)), ("trials", str(trials[0].id)), ("trials", str(trials[1].id))]:
        assert_no_secret((await jp_fetch(API, *path)).body.decode())
    assert os.environ.get("HF_TOKEN") != SECRETS["token"]  # not leaked into the submitting process
