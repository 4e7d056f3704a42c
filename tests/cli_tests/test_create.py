"""``det-jupyter experiment create CONFIG MODEL_DIR`` and the commands that read what it ran.

Experiments run on the session's real Dask cluster with the controller in this process
(``--inprocess --cluster ADDR``), except the subprocess test, which runs the installed
``det-jupyter`` script against the home's own master.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from det_jupyter.experiment import get_experiment
from det_jupyter.states import ExperimentState
from tests.cli_tests.helpers import config_file, model_dir, run_cli, run_script
from tests.master_tests.helpers import master_mode_home


def _create(capsys: pytest.CaptureFixture[str], dask_client: Any, *args: str) -> Any:
    return run_cli(
        capsys, "experiment", "create", *args, "--inprocess", "--cluster", dask_client.scheduler.address
    )


@pytest.mark.slow
def test_create_follow_runs_a_module_entrypoint_from_the_model_dir(
    det_home: Path, tmp_path: Path, dask_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, module = model_dir(tmp_path)
    cfg = config_file(tmp_path, f"{module}:train")
    ran = _create(capsys, dask_client, str(cfg), str(directory), "--follow")
    assert ran.rc == 0, ran.err
    assert ran.out.startswith("created experiment 1 'cli-test'")
    exp = get_experiment(1)
    assert exp.state == ExperimentState.COMPLETED
    best = exp.best_trial()
    assert best is not None
    progress = [line for line in ran.out.splitlines() if line.startswith("experiment 1 ")]
    assert progress[-1].startswith("experiment 1 COMPLETED: trials 2/2 done, 0 running; best val_loss ")
    assert f"(trial {best.id}, hparams {best.hparams})" in progress[-1]
    for trial in exp.trials():  # every trial's log lines, prefixed, each once
        assert ran.out.count(f"[trial {trial.id}] training with x={trial.hparams['x']:.4f}") == 1
        assert ran.out.count(f"[trial {trial.id}] done") == 1


@pytest.mark.slow
def test_a_failing_experiment_exits_non_zero_with_the_trial_error(
    det_home: Path, tmp_path: Path, dask_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, module = model_dir(tmp_path)
    cfg = config_file(tmp_path, f"{module}:fail", max_trials=1)
    ran = _create(capsys, dask_client, str(cfg), str(directory), "--follow")
    assert ran.rc == 1
    assert get_experiment(1).state == ExperimentState.ERROR
    assert "[trial 1] about to fail" in ran.out
    assert "experiment 1 ERROR: trials 1/1 done" in ran.out
    assert "det-jupyter: trial 1 failed:" in ran.err and "this trial fails on purpose" in ran.err
    waited = run_cli(capsys, "experiment", "wait", "1")
    assert waited.rc == 1 and waited.out.startswith("experiment 1 ERROR")


@pytest.mark.slow
def test_every_reading_command_on_a_finished_experiment(
    det_home: Path, tmp_path: Path, dask_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, module = model_dir(tmp_path)
    cfg = config_file(tmp_path, f"{module}:train", max_trials=3)
    created = _create(capsys, dask_client, str(cfg), str(directory))  # in-process: waits, quietly
    assert created.rc == 0, created.err
    exp = get_experiment(1)
    best = exp.best_trial()
    assert best is not None and exp.state == ExperimentState.COMPLETED

    described = run_cli(capsys, "e", "describe", "1", "--json")
    info = json.loads(described.out)
    assert (info["id"], info["name"], info["state"], info["ibm_state"]) == (
        1,
        "cli-test",
        "COMPLETED",
        "completed",
    )
    assert info["progress"] == 1.0 and info["error"] is None
    assert info["searcher"] == {"name": "random", "metric": "val_loss", "smaller_is_better": True}
    assert info["best_trial"] == best.id and info["best_validation"] == pytest.approx(best.best_validation)
    assert info["config"]["entrypoint"] == f"{module}:train"
    assert [t["id"] for t in info["trials"]] == [t.id for t in exp.trials()]
    for shown, trial in zip(info["trials"], exp.trials()):
        assert shown["hparams"] == trial.hparams and shown["state"] == "COMPLETED"
        assert shown["best_validation"] == pytest.approx(trial.best_validation)
        assert [c["uuid"] for c in shown["checkpoints"]] == [c.uuid for c in trial.checkpoints()]

    out = tmp_path / "best"
    downloaded = run_cli(capsys, "experiment", "download", "1", "--best", str(out))
    ckpt = exp.best_checkpoint()
    assert downloaded.rc == 0
    assert downloaded.out.splitlines() == [
        f"checkpoint {ckpt.uuid} (trial {best.id}, steps 3, val_loss {ckpt.metric:.6g})",
        f"downloaded to {out.resolve()}",
    ]
    assert (out / "weights.txt").read_text() == repr(best.hparams["x"])
    other = next(t for t in exp.trials() if t.id != best.id)
    ran = run_cli(capsys, "experiment", "download", "1", "--trial", str(other.id), str(tmp_path / "other"))
    assert ran.rc == 0 and (tmp_path / "other" / "weights.txt").read_text() == repr(other.hparams["x"])

    logs = run_cli(capsys, "trial", "logs", str(best.id))
    assert logs.out.splitlines() == [f"training with x={best.hparams['x']:.4f}", "done"]
    assert run_cli(capsys, "t", "logs", str(best.id), "--tail", "1").out == "done\n"
    assert (
        run_cli(capsys, "t", "logs", str(best.id), "--follow").out.splitlines()[-1] == "done"
    )  # ended: returns
    trial = run_cli(capsys, "trial", "describe", str(best.id))
    assert trial.out.startswith(
        f"trial {best.id} of experiment 1: COMPLETED, restarts 0, steps 3, best val_loss "
    )
    assert f"checkpoint {best.checkpoints()[-1].uuid}" in trial.out
    assert json.loads(run_cli(capsys, "t", "describe", str(best.id), "--json").out)["hparams"] == best.hparams

    waited = run_cli(capsys, "experiment", "wait", "1")
    assert waited.rc == 0 and waited.out.startswith("experiment 1 COMPLETED: trials 3/3 done")
    listed = run_cli(capsys, "experiment", "list").out.splitlines()
    assert listed[1].split() == ["1", "COMPLETED", "100%", "3", "cli-test"]
    assert "ibm state" not in listed[0]  # no experiment came from an IBM manifest


def test_preview_search_and_its_alias(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = config_file(tmp_path, "m:train", max_trials=4)
    ran = run_cli(capsys, "preview-search", str(cfg))
    assert ran.rc == 0 and "Using random search method" in ran.out and "4 | 3 batches" in ran.out
    assert run_cli(capsys, "preview", str(cfg)).out == ran.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["experiment", "create", "missing.yaml"], "config file 'missing.yaml' not found"),
        (["experiment", "describe", "42"], "experiment 42 not found"),
        (["trial", "logs", "42"], "trial 42 not found"),
        (["experiment", "download", "42", "out"], "experiment 42 not found"),
    ],
)
def test_errors_are_one_line_and_exit_2(
    det_home: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    ran = run_cli(capsys, *args)
    assert ran.rc == 2 and ran.out == ""
    assert ran.err.startswith(f"det-jupyter: {message}") and ran.err.count("\n") == 1, ran.err


def test_create_refuses_what_cannot_run_before_anything_is_written(
    det_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, module = model_dir(tmp_path)
    cfg = config_file(tmp_path, "train")  # a notebook name: needs the model dir
    ran = run_cli(capsys, "e", "create", str(cfg))
    assert ran.rc == 2 and "it needs the model directory" in ran.err and f"create {cfg} MODEL_DIR" in ran.err
    ran = run_cli(
        capsys, "e", "create", str(config_file(tmp_path, f"{module}:train")), str(tmp_path / "nope")
    )
    assert ran.rc == 2 and f"MODEL_DIR '{tmp_path / 'nope'}' does not exist" in ran.err
    (tmp_path / "model.tar").write_text("")
    ran = run_cli(capsys, "e", "create", str(cfg), str(tmp_path / "model.tar"))
    assert ran.rc == 2 and "is neither a directory nor a .zip file" in ran.err
    bad = tmp_path / "bad.yaml"
    bad.write_text(cfg.read_text().replace("max_trials", "max_trails"))
    ran = run_cli(capsys, "e", "create", str(bad), str(directory))
    assert ran.rc == 2 and "searcher.max_trails" in ran.err and "did you mean 'max_trials'?" in ran.err
    assert run_cli(capsys, "e", "list").out.count("\n") == 1  # the header only: nothing was created


@pytest.mark.slow
def test_paused_then_activated(
    det_home: Path, tmp_path: Path, dask_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    directory, module = model_dir(tmp_path)
    ran = _create(
        capsys, dask_client, str(config_file(tmp_path, f"{module}:train")), str(directory), "--paused"
    )
    assert ran.rc == 0 and "created experiment 1 'cli-test' PAUSED" in ran.out
    exp = get_experiment(1)
    assert exp.state == ExperimentState.PAUSED and exp.trials() == []
    assert run_cli(capsys, "experiment", "activate", "1").rc == 0
    assert run_cli(capsys, "experiment", "wait", "1").rc == 0
    assert exp.state == ExperimentState.COMPLETED


@pytest.mark.slow
def test_the_installed_script_follows_an_experiment_of_the_homes_master(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, module = model_dir(tmp_path)
    cfg = config_file(tmp_path, f"{module}:train")
    with master_mode_home(tmp_path / "home", monkeypatch):
        ran = run_script("experiment", "create", str(cfg), str(directory), "--follow")
        assert ran.rc == 0, ran.err
        assert "experiment 1 COMPLETED: trials 2/2 done, 0 running; best val_loss " in ran.out
        assert "[trial 1] done" in ran.out and "[trial 2] done" in ran.out
        listed = run_script("e", "list")
        assert listed.rc == 0 and listed.out.splitlines()[1].split() == [
            "1",
            "COMPLETED",
            "100%",
            "2",
            "cli-test",
        ]
        bad = run_script("e", "describe", "9")
        assert bad.rc == 2 and bad.err.startswith("det-jupyter: experiment 9 not found")


@pytest.mark.slow
def test_ctrl_c_stops_following_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import signal
    import subprocess

    from tests.cli_tests.helpers import DET_JUPYTER

    directory, module = model_dir(tmp_path)
    gate = tmp_path / "gate"
    cfg = config_file(tmp_path, f"{module}:gated", max_trials=1)
    cfg.write_text(cfg.read_text().replace("hyperparameters:\n", f"hyperparameters:\n  gate: {gate}\n"))
    with master_mode_home(tmp_path / "home", monkeypatch):
        proc = subprocess.Popen(
            [str(DET_JUPYTER), "e", "create", str(cfg), str(directory), "--follow"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            seen = []
            for line in proc.stdout or ():  # printed (and flushed) by the follower: it is following
                seen.append(line)
                if line.startswith("[trial 1] waiting at the gate"):
                    break
            proc.send_signal(signal.SIGINT)
            rest, err = proc.communicate(timeout=60)
            out = "".join(seen) + rest
        finally:
            proc.kill()
        assert proc.returncode == 130, err
        assert "[trial 1] waiting at the gate" in out
        assert "det-jupyter: stopped following experiment 1; it keeps running: " in err
        assert "`det-jupyter experiment wait 1 --follow` follows it again" in err
        assert get_experiment(1).state == ExperimentState.ACTIVE
        gate.touch()
        again = run_script("experiment", "wait", "1", "--follow")
        assert again.rc == 0 and "experiment 1 COMPLETED: trials 1/1 done" in again.out
        assert "[trial 1] done" in again.out
