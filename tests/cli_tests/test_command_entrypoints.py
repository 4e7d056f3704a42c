"""Command entrypoints through the CLI: a Determined Core API script (``import det_jupyter as det``) in a
model directory, a failing command, and IBM's manifest + model zip with ``$DATA_DIR`` / ``$RESULT_DIR``
on local paths."""

from __future__ import annotations

import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from det_jupyter.experiment import get_experiment
from det_jupyter.states import ExperimentState, TrialState
from tests.cli_tests.helpers import run_cli, run_script
from tests.master_tests.helpers import master_mode_home

CORE_API_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "core_api_dir"


@pytest.mark.slow
def test_a_core_api_script_runs_through_the_installed_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # const.yaml: grid over two learning rates, `python3 train.py --steps 10 --crash-at 7`, max_restarts 1:
    # each trial crashes once at step 7 and resumes from its step-5 checkpoint
    with master_mode_home(tmp_path / "home", monkeypatch):
        ran = run_script(
            "experiment", "create", str(CORE_API_DIR / "const.yaml"), str(CORE_API_DIR), "--follow"
        )
        assert ran.rc == 0, ran.err + ran.out
        assert "experiment 1 COMPLETED: trials 2/2 done, 0 running; best val_loss " in ran.out
        for trial in (1, 2):
            assert f"[trial {trial}] crashing on purpose" in ran.out
            assert f"[trial {trial}] restored at 5" in ran.out
        exp = get_experiment(1)
        assert [t.restarts for t in exp.trials()] == [1, 1]
        out = tmp_path / "best"
        downloaded = run_script("e", "download", "1", "--best", str(out))
        assert downloaded.rc == 0 and (out / "state.json").exists()
        assert '"steps": 10' in (out / "state.json").read_text()


@pytest.mark.slow
def test_a_failing_command_shows_its_stderr(
    det_home: Path, tmp_path: Path, dask_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "fail.py").write_text(
        "import sys\nprint('reading the data')\nprint('bad input on purpose', file=sys.stderr)\nsys.exit(4)\n"
    )
    cfg = tmp_path / "fail.yaml"
    cfg.write_text(
        "name: failing\nentrypoint: python3 fail.py\nsearcher: {name: single, metric: loss}\nmax_restarts: 0\n"
    )
    address = dask_client.scheduler.address
    ran = run_cli(
        capsys, "e", "create", str(cfg), str(directory), "--follow", "--inprocess", "--cluster", address
    )
    assert ran.rc == 1
    assert "[trial 1] reading the data" in ran.out and "[trial 1] bad input on purpose" in ran.out
    assert "det-jupyter: trial 1 failed:" in ran.err and "bad input on purpose" in ran.err
    assert get_experiment(1).trials()[0].state == TrialState.ERROR


TRAIN_IBM = """\
import os
import sys
from pathlib import Path

numbers = Path(sys.argv[1]).read_text().split()
total = sum(int(n) for n in numbers)
print(f"sum of {len(numbers)} numbers from {os.environ['DATA_DIR']}: {total}")
(Path(os.environ["RESULT_DIR"]) / "sum.txt").write_text(str(total))
"""


@pytest.mark.slow
def test_an_ibm_manifest_and_model_zip_run_with_data_dir_and_result_dir(
    det_home: Path, tmp_path: Path, dask_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    data, results = tmp_path / "data", tmp_path / "results"
    data.mkdir()
    (data / "numbers.txt").write_text("1 2 3\n")
    model = tmp_path / "model.zip"
    with zipfile.ZipFile(model, "w") as zf:
        zf.writestr("train.py", TRAIN_IBM)
    manifest = tmp_path / "manifest.yml"
    manifest.write_text(
        textwrap.dedent(
            f"""\
            model_definition:
              name: ibm-sum
              framework: {{name: python, version: "3"}}
              execution:
                command: python3 train.py ${{DATA_DIR}}/numbers.txt
                resourceType: small
            training_data:
              - source: {{type: fs, path: {data}}}
            training_results:
              target: {{type: fs, path: {results}}}
            """
        )
    )
    assert yaml.safe_load(manifest.read_text())["training_results"]["target"]["path"] == str(results)
    address = dask_client.scheduler.address
    ran = run_cli(
        capsys, "e", "create", str(manifest), str(model), "--follow", "--inprocess", "--cluster", address
    )
    assert ran.rc == 0, ran.err
    assert f"[trial 1] sum of 3 numbers from {data}: 6" in ran.out
    assert "experiment 1 COMPLETED (IBM: completed): trials 1/1 done" in ran.out
    assert (results / "1" / "1" / "sum.txt").read_text() == "6"
    assert get_experiment(1).state == ExperimentState.COMPLETED
    listed = run_cli(capsys, "experiment", "list").out.splitlines()
    assert listed[1].split() == ["1", "COMPLETED", "completed", "100%", "1", "ibm-sum"]
