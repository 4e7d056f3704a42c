"""The magics on a real IPython shell: ``%%det_experiment`` and ``%det`` against the session's Dask cluster.

User code is defined with ``ip.run_cell`` in the shell's namespace (``__main__``), exactly as in a
notebook, so it is shipped to the workers by value.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import det_jupyter
from det_jupyter.engine.presubmit import LargeGlobalWarning, check_shippable, walk_entrypoint
from det_jupyter.states import ExperimentState, TrialState

CONFIG = """\
name: magic-test
hyperparameters:
  x: {type: double, minval: 0, maxval: 1}
searcher:
  name: random
  metric: val_loss
  max_trials: 2
  time_metric: batches
  max_time: 4
"""

TRAIN = """
import time
from pathlib import Path

def train(ctx):
    gate = ctx.hparams.get("gate")
    print(f"trial {ctx.trial_id} x={ctx.hparams['x']:.3f}")
    for step in range(1, ctx.searcher.max_time + 1):
        while gate and not Path(gate).exists() and not ctx.should_stop():
            time.sleep(0.01)
        ctx.report_training_metrics(step, {"loss": 1 / step})
        if ctx.should_stop():
            return
    ctx.report_validation_metrics(ctx.searcher.max_time, {"val_loss": ctx.hparams["x"]})
"""


@pytest.fixture
def ip(det_home: Path) -> Iterator[InteractiveShell]:
    """A real IPython shell with the extension loaded; the names a test defines are removed afterwards.

    The shell is a process-wide singleton that installs its namespace as ``sys.modules["__main__"]``;
    the real one is put back afterwards, so Dask can still spawn worker processes in later tests.
    """
    main = sys.modules["__main__"]
    shell = InteractiveShell.instance()
    before = set(shell.user_ns)
    shell.run_line_magic("load_ext", "det_jupyter")
    shell.run_cell(TRAIN)
    yield shell
    shell.run_line_magic("unload_ext", "det_jupyter")
    for name in set(shell.user_ns) - before:
        del shell.user_ns[name]
    sys.modules["__main__"] = main


def _gated(tmp_path: Path) -> tuple[str, Path]:
    """A config whose trials wait at a gate file (so they are surely running), and the gate."""
    gate = tmp_path / "gate"
    return CONFIG.replace("hyperparameters:\n", f"hyperparameters:\n  gate: {gate}\n"), gate


# --- arguments and user mistakes (no cluster needed) -----------------------------------------------


def test_magics_are_registered_with_help(ip: InteractiveShell) -> None:
    cell = ip.find_cell_magic("det_experiment")
    line = ip.find_line_magic("det")
    assert cell is not None and line is not None
    assert "Examples" in (cell.__doc__ or "") and "--preview" in (cell.__doc__ or "")
    assert "%det kill 3" in (line.__doc__ or "")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--bogus", "unrecognized arguments: --bogus"),
        ("train -o 2fast", "-o '2fast': the name to bind the experiment to must be a Python identifier"),
        ("train extra", "unrecognized arguments: extra"),
    ],
)
def test_bad_arguments_are_usage_errors(ip: InteractiveShell, line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ip.run_cell_magic("det_experiment", line, CONFIG)


def test_yaml_error_names_its_line(ip: InteractiveShell) -> None:
    broken = CONFIG.replace("  name: random", "  name: random\n   metric: oops")
    with pytest.raises(UsageError, match=r"\(line 6\): YAML syntax error") as err:
        ip.run_cell_magic("det_experiment", "train", broken)
    assert "line 1 is the first line after %%det_experiment" in str(err.value)
    with pytest.raises(
        UsageError, match=r"searcher.max_trails \(line 7\): unknown key. Fix: did you mean 'max_trials'"
    ):
        ip.run_cell_magic("det_experiment", "train", CONFIG.replace("max_trials", "max_trails"))
    assert det_jupyter.list_experiments() == []


def test_missing_entrypoint_is_named_with_a_close_match(ip: InteractiveShell) -> None:
    with pytest.raises(
        UsageError, match=r"'trian' is not defined in the notebook. Fix: did you mean 'train'\?"
    ):
        ip.run_cell_magic("det_experiment", "trian", CONFIG)
    with pytest.raises(
        UsageError, match=r"entrypoint: 'tarin' is not defined"
    ):  # from the config's entrypoint
        ip.run_cell_magic("det_experiment", "", "entrypoint: tarin\n" + CONFIG)
    with pytest.raises(UsageError, match="entrypoint: no entrypoint given"):
        ip.run_cell_magic("det_experiment", "", CONFIG)
    ip.run_cell("answer = 42")
    with pytest.raises(UsageError, match="entrypoint 'answer' is a int, not a function"):
        ip.run_cell_magic("det_experiment", "answer", CONFIG)


def test_unpicklable_global_is_named_before_anything_runs(ip: InteractiveShell) -> None:
    ip.run_cell(
        "import threading\n"
        "lock = threading.Lock()\n"
        "def helper():\n"
        "    with lock:\n"
        "        return 1\n"
        "def locked(ctx):\n"
        "    ctx.report_validation_metrics(1, {'val_loss': helper()})\n"
    )
    with pytest.raises(UsageError) as err:
        ip.run_cell_magic("det_experiment", "locked", CONFIG)
    text = str(err.value)
    assert "global `lock` (a _thread.lock, used by helper) cannot be pickled" in text
    assert "create it inside the function" in text
    ip.run_cell(
        "class Holder:\n"
        "    handle = open(__import__('os').devnull, 'w')\n"
        "    @classmethod\n"
        "    def run_trial(cls, ctx):\n"
        "        pass\n"
        "class HolderTrial(Holder):\n"
        "    pass\n"
    )
    with pytest.raises(
        UsageError, match=r"class attribute `Holder.handle` \(a _io.TextIOWrapper\) cannot be pickled"
    ):
        ip.run_cell_magic("det_experiment", "HolderTrial", CONFIG)
    ip.run_cell("Holder.handle.close()")
    ip.run_cell(
        "class InitTrial:\n"
        "    def __init__(self, ctx):\n"
        "        self.guard = lock\n"
        "    @classmethod\n"
        "    def run_trial(cls, ctx):\n"
        "        cls(ctx)\n"
    )
    with pytest.raises(UsageError, match=r"global `lock` \(a _thread.lock, used by InitTrial.__init__\)"):
        ip.run_cell_magic("det_experiment", "InitTrial", CONFIG)
    assert det_jupyter.list_experiments() == []


def test_preview_shows_the_search_without_running_it(ip: InteractiveShell) -> None:
    config = CONFIG.replace("name: random", "name: adaptive_asha").replace("max_time: 4", "max_time: 64")
    report = ip.run_cell_magic(
        "det_experiment", "--preview", config.replace("max_trials: 2", "max_trials: 8")
    )
    assert str(report).startswith("Using adaptive_asha search method")
    assert "Total: 8 trials" in str(report) and "<table>" in report._repr_html_()
    assert det_jupyter.list_experiments() == []


def test_notebook_variables_fill_the_config(ip: InteractiveShell) -> None:
    ip.run_cell("n_trials = 5\nsearch = 'random'\nlength = 30")
    config = CONFIG.replace("max_trials: 2", "max_trials: {n_trials}").replace(
        "max_time: 4", "max_time: {length}"
    )
    report = ip.run_cell_magic(
        "det_experiment", "--preview", config.replace("name: random", "name: {search}")
    )
    assert "Using random search method" in str(report)  # the flow mapping of `x` was left alone
    assert "Total: 5 trials, 150 batches of training" in str(report)
    with pytest.raises(UsageError, match=r"searcher.max_trials \(line 7\)"):  # {undefined} stays as YAML
        ip.run_cell_magic(
            "det_experiment", "--preview", CONFIG.replace("max_trials: 2", "max_trials: {undefined}")
        )


def test_det_usage_errors(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="invalid choice: 'frobnicate'"):
        ip.run_line_magic("det", "frobnicate")
    with pytest.raises(UsageError, match=r"%det describe takes ID, e.g. `%det describe 3`"):
        ip.run_line_magic("det", "describe")
    with pytest.raises(UsageError, match="argument ids: invalid int value: 'x'"):
        ip.run_line_magic("det", "kill x")
    with pytest.raises(UsageError, match="experiment 999 not found"):
        ip.run_line_magic("det", "kill 999")
    assert str(ip.run_line_magic("det", "list")) == "no experiments yet"


def test_attach_hints_at_resume_when_no_controller_runs_it(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DET_JUPYTER_MASTER", "inprocess")  # in master mode the master reclaims it instead
    store = det_jupyter.experiment.open_store()
    exp_id = store.create_experiment(name="orphan", config={"searcher": {}}, entrypoint=b"", seed=1)
    ip.run_line_magic("det", f"attach {exp_id}")
    out = capsys.readouterr().out
    assert f"<Experiment {exp_id} 'orphan' ACTIVE" in out  # a terminal shell: the repr, not the widget
    assert (
        f"no controller runs it (its kernel stopped?); run it again from here with %det resume {exp_id}"
        in out
    )


def test_cluster_report_shows_gpus_slots_and_the_dashboard() -> None:
    from det_jupyter.notebook.reports import cluster_report
    from det_jupyter.worker.gpu import GpuInfo

    gpu = GpuInfo(0, "GPU-1", "NVIDIA H100 80GB HBM3", 81559.0, 20480.0, 87.0).to_dict()
    summary = {
        "scheduler": "tcp://10.0.0.5:8786",
        "dashboard_link": "http://10.0.0.5:8787/status",
        "workers": [{"name": "gpu-0", "address": "tcp://10.0.0.6:4000", "nthreads": 1,
                     "resources": {"GPU": 1.0}, "gpus": [gpu]}],
        "slots": {"GPU": 1.0, "CPU": 0.0},
    }  # fmt: skip
    report = cluster_report(summary)
    assert "scheduler tcp://10.0.0.5:8786: 1 worker(s), 1 GPU slot(s), 0 CPU slot(s)" in str(report)
    assert "NVIDIA H100 80GB HBM3 (20.0/79.6 GiB, 87% busy)" in str(report)
    assert '<a href="http://10.0.0.5:8787/status" target="_blank"' in report._repr_html_()


# --- pre-submit check ------------------------------------------------------------------------------


def test_large_globals_warn_and_local_modules_are_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ip: InteractiveShell
) -> None:
    (tmp_path / "det_helpers_mod.py").write_text("def scale(v):\n    return 2 * v\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ip.run_cell(
        "import numpy as np, det_helpers_mod\n"
        "table = np.zeros(8 * 2**20)\n"  # 64 MiB
        "blob = bytes(60 * 2**20)\n"
        "def heavy(ctx):\n"
        "    ctx.report_validation_metrics(1, {'val_loss': det_helpers_mod.scale(table[0]) + len(blob)})\n"
    )
    heavy = ip.user_ns["heavy"]
    assert [m.__name__ for m in walk_entrypoint(heavy).local_modules] == ["det_helpers_mod"]
    with pytest.warns(LargeGlobalWarning) as record:
        large = check_shippable(heavy)
    assert [c.label for c in large] == ["global `table`", "global `blob`"]
    assert (
        "captures global `table` (a numpy.ndarray, 64 MB): it is copied to the workers for every trial"
        in str(record[0].message)
    )
    monkeypatch.delitem(sys.modules, "det_helpers_mod")


# --- on the cluster ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_wait_runs_to_the_end_and_o_binds_the_experiment(
    ip: InteractiveShell, dask_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    address = dask_client.scheduler.address
    result = ip.run_cell_magic("det_experiment", f"train -o exp --cluster {address} --wait", CONFIG)
    assert result is None
    exp = ip.user_ns["exp"]
    assert exp.state == ExperimentState.COMPLETED
    best = exp.best_trial()
    out = capsys.readouterr().out
    assert f"<Experiment {exp.id} 'magic-test' ACTIVE" in out  # displayed at once, before waiting
    assert f"experiment {exp.id} COMPLETED; best trial {best.id}: " in out
    # %det list / describe / trials / logs read the same store
    (row,) = [line.split() for line in str(ip.run_line_magic("det", "list")).splitlines()[1:]]
    assert row[:7] == [str(exp.id), "magic-test", "COMPLETED", "100%", "2", "random", "(val_loss)"]
    assert float(row[7]) == pytest.approx(best.best_validation, rel=1e-3)
    description = str(ip.run_line_magic("det", f"describe {exp.id}"))
    assert f"experiment {exp.id} 'magic-test': COMPLETED, progress 100%" in description
    assert f"best trial {best.id}: " in description and "2 COMPLETED" in description
    trials = str(ip.run_line_magic("det", f"trials {exp.id}")).splitlines()
    assert trials[0].split() == ["trial", "state", "hparams", "steps", "best", "restarts", "worker"]
    assert [line.split()[:2] for line in trials[1:]] == [[str(t.id), "COMPLETED"] for t in exp.trials()]
    logs = str(ip.run_line_magic("det", f"logs {exp.id} {best.id}"))
    assert logs == f"[trial {best.id}] trial {best.id} x={best.hparams['x']:.3f}"
    cluster = str(ip.run_line_magic("det", "cluster"))  # the cluster the last experiment used
    assert f"scheduler {address}: 2 worker(s), 0 GPU slot(s), 2 CPU slot(s)" in cluster
    assert f"dashboard: {dask_client.dashboard_link}" in cluster and "cpu-0" in cluster and "CPU=1" in cluster


@pytest.mark.slow
def test_submission_returns_at_once_and_det_controls_the_experiment(
    ip: InteractiveShell, dask_client: Any, tmp_path: Path, wait_for: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    config, gate = _gated(tmp_path)
    ip.run_cell_magic("det_experiment", f"train -o gated --cluster {dask_client.scheduler.address}", config)
    exp = ip.user_ns["gated"]
    assert exp.state == ExperimentState.ACTIVE  # returned while the trials wait at the gate
    wait_for(lambda: sum(t.state == TrialState.ACTIVE for t in exp.trials()) == 2, what="both trials to run")
    ip.run_line_magic("det", f"pause {exp.id}")
    assert f"asked experiment {exp.id} to pause" in capsys.readouterr().out
    wait_for(lambda: {t.state for t in exp.trials()} == {TrialState.PAUSED}, what="the trials to pause")
    assert exp.state == ExperimentState.PAUSED
    ip.run_line_magic("det", f"activate {exp.id}")
    wait_for(lambda: exp.state == ExperimentState.ACTIVE, what="the experiment to be active again")
    ip.run_line_magic("det", f"kill {exp.id}")
    assert exp.wait(timeout=60) == ExperimentState.CANCELED
    assert {t.state for t in exp.trials()} == {TrialState.CANCELED}
    assert exp.store.pending_requests(exp.id) == []  # every request was handled
    assert not gate.exists()


@pytest.mark.slow
def test_interrupting_wait_leaves_the_experiment_running(
    ip: InteractiveShell,
    dask_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def interrupted(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt  # what Ctrl-C / the kernel's interrupt does to a waiting cell

    monkeypatch.setattr(det_jupyter.Experiment, "wait", interrupted)
    config, _gate = _gated(tmp_path)
    ip.run_cell_magic(
        "det_experiment", f"train -o waited --cluster {dask_client.scheduler.address} --wait", config
    )
    exp = ip.user_ns["waited"]
    out = capsys.readouterr().out
    assert f"Stopped waiting; experiment {exp.id} keeps running (ACTIVE)" in out
    assert f"waited.pause() / waited.kill(), or %det pause {exp.id} / %det kill {exp.id}" in out
    assert exp.state == ExperimentState.ACTIVE
    exp.kill()
    monkeypatch.undo()
    assert exp.wait(timeout=60) == ExperimentState.CANCELED
    assert exp.store.pending_requests(exp.id) == []


@pytest.mark.slow
def test_local_module_code_is_shipped_by_value(
    ip: InteractiveShell, dask_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the workers started before this directory was on sys.path: they can only run it by value
    (tmp_path / "det_local_scoring.py").write_text("def score(x):\n    return round(x * 10) / 10\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ip.run_cell(
        "import det_local_scoring\n"
        "def scored(ctx):\n"
        "    ctx.report_validation_metrics(1, {'val_loss': det_local_scoring.score(ctx.hparams['x'])})\n"
    )
    ip.run_cell_magic(
        "det_experiment", f"scored -o scored_exp --cluster {dask_client.scheduler.address} --wait", CONFIG
    )
    exp = ip.user_ns["scored_exp"]
    assert exp.state == ExperimentState.COMPLETED
    assert all(t.best_validation == round(t.hparams["x"] * 10) / 10 for t in exp.trials())
    monkeypatch.delitem(sys.modules, "det_local_scoring")


# --- --context DIR: a model directory instead of the notebook's code -------------------------------------

CORE_API_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "core_api_dir"


def test_context_that_is_no_directory_is_a_usage_error(ip: InteractiveShell, tmp_path: Path) -> None:
    config = CONFIG + "entrypoint: python3 train.py\n"
    with pytest.raises(UsageError, match=r"model directory .*nope"):
        ip.run_cell_magic("det_experiment", f"--context {tmp_path / 'nope'}", config)


@pytest.mark.slow
def test_context_runs_a_module_entrypoint_of_the_model_dir(
    ip: InteractiveShell, dask_client: Any, tmp_path: Path
) -> None:
    from tests.cli_tests.helpers import model_dir

    directory, module = model_dir(tmp_path)  # not importable here: only the shipped directory has it
    config = CONFIG.replace("name: magic-test", f"name: magic-context\nentrypoint: {module}:train")
    address = dask_client.scheduler.address
    ip.run_cell_magic(
        "det_experiment", f"--context {directory} -o ctx_exp --cluster {address} --wait", config
    )
    exp = ip.user_ns["ctx_exp"]
    assert exp.state == ExperimentState.COMPLETED
    best = exp.best_trial()
    path = exp.best_checkpoint().download(tmp_path / "best")
    assert (path / "weights.txt").read_text() == repr(best.hparams["x"])
    assert module not in sys.modules


@pytest.mark.slow
def test_context_runs_a_core_api_command(ip: InteractiveShell, dask_client: Any) -> None:
    config = (
        "name: magic-core-api\n"
        "entrypoint: python3 train.py --steps 10\n"
        "hyperparameters: {lr: 0.1}\n"
        "searcher: {name: single, metric: val_loss}\n"
    )
    address = dask_client.scheduler.address
    ip.run_cell_magic(
        "det_experiment", f"--context {CORE_API_DIR} -o cmd_exp --cluster {address} --wait", config
    )
    exp = ip.user_ns["cmd_exp"]
    assert exp.state == ExperimentState.COMPLETED
    (trial,) = exp.trials()
    assert trial.state == TrialState.COMPLETED and trial.best_validation is not None
    assert [c.steps for c in trial.checkpoints()][-1] == 10
