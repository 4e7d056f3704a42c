"""Bad input, answered before anything runs (docs/errors.md lists each case and its test here).

Fast tests call the submit path up to the point that refuses; the ones that need a cluster or a
subprocess are marked ``slow``.
"""

from __future__ import annotations

import os
import types
from pathlib import Path
from typing import Any

import pytest

import det_jupyter
from det_jupyter.engine.definition import resolve_entrypoint
from det_jupyter.engine.lifecycle import Lifecycle
from det_jupyter.engine.runs import FinishExperiment, Submit, TaskEnd, TrialRecord
from det_jupyter.errors import ConfigError, StoreError
from det_jupyter.states import ExperimentState
from det_jupyter.worker.context import ListSink, TrialContext, local_context
from det_jupyter.worker.events import (
    Exited,
    Log,
    MetricKind,
    MetricRecord,
    Metrics,
    RunEvent,
    RunStatus,
    Started,
    decode,
)

CONFIG: dict[str, Any] = {
    "name": "bad-input",
    "searcher": {"name": "single", "metric": "val_loss", "max_length": {"batches": 2}},
}


# --- entrypoints ----------------------------------------------------------------------------------


class DeterminedStyleTrial:
    """What a Determined user brings: a class built with a context, no run_trial."""

    def __init__(self, context: Any) -> None:
        self.context = context

    def train_batch(self, batch: Any, epoch_idx: int, batch_idx: int) -> dict[str, float]:
        return {"loss": 0.0}


def _fake_determined_base() -> type:
    module = types.ModuleType("determined.pytorch")
    base = type("PyTorchTrial", (), {"__module__": "determined.pytorch"})
    module.PyTorchTrial = base  # type: ignore[attr-defined]
    return base


def test_a_plain_class_entrypoint_is_refused_at_submit(det_home: Path) -> None:
    with pytest.raises(TypeError) as info:
        det_jupyter.create_experiment(CONFIG, DeterminedStyleTrial, cluster="tcp://127.0.0.1:1")
    text = str(info.value)
    assert (
        "create_experiment(entrypoint=" in text and "class DeterminedStyleTrial has no run_trial(ctx)" in text
    )
    assert "det_jupyter.torch.TorchTrial" in text and "a function train(ctx)" in text
    assert not (det_home / "det_jupyter.db").exists()  # nothing was written


def test_a_determined_trial_lookalike_is_refused_naming_our_class() -> None:
    lookalike = type("MyTrial", (_fake_determined_base(),), {"__module__": "__main__"})
    with pytest.raises(
        TypeError,
        match=r"subclasses determined\.pytorch\.PyTorchTrial.*subclass det_jupyter\.torch\.TorchTrial instead",
    ):
        resolve_entrypoint(lookalike, None)


def test_a_named_class_entrypoint_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_entrypoint(None, "MyTrial", {"MyTrial": DeterminedStyleTrial})
    assert info.value.paths == ["entrypoint"]
    assert "'MyTrial': class DeterminedStyleTrial has no run_trial(ctx)" in str(info.value)


def test_a_function_that_cannot_take_the_context_is_refused() -> None:
    def train() -> None:
        pass

    with pytest.raises(TypeError, match=r"train\(\) cannot be called with the trial context.*train\(ctx\)"):
        resolve_entrypoint(train, None)


def test_accepted_entrypoints_pass() -> None:
    class WithRunTrial:
        @classmethod
        def run_trial(cls, ctx: Any) -> None:
            pass

    def train(ctx: Any, extra: int = 1) -> None:
        pass

    assert resolve_entrypoint(WithRunTrial, None) is WithRunTrial
    assert resolve_entrypoint(train, None) is train  # TorchTrial / KerasTrial: frameworks_tests


# --- what a trial reports -------------------------------------------------------------------------


def _log_lines(ctx: TrialContext) -> list[str]:
    assert isinstance(ctx.sink, ListSink)
    bodies = [decode(e).body for e in ctx.sink.events]
    return [line.text for b in bodies if isinstance(b, Log) for line in b.lines]


def test_a_validation_without_the_searcher_metric_fails_at_that_call() -> None:
    ctx = local_context({}, metric="val_loss")
    with pytest.raises(
        ValueError, match=r"steps=5\) lacks the searcher metric 'val_loss' \(got \['acc', 'val_los'\]\)"
    ):
        ctx.report_validation_metrics(5, {"val_los": 0.5, "acc": 0.9})  # a typo fails fast


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (float("nan"), "= nan is NaN: stored as null, it ranks worst"),
        (float("inf"), "= inf is inf: stored as null, it ranks worst"),
        (float("-inf"), "= -inf is -inf: stored as null"),
        (True, "= True is a bool: stored as is, it never ranks (worst)"),
        ("0.25", "= '0.25' is a str: stored as is, it never ranks (worst); report a number"),
        (None, "= None is None: stored as null"),
    ],
)
def test_an_unrankable_searcher_metric_value_is_never_a_silent_null(value: object, said: str) -> None:
    ctx = local_context({}, metric="val_loss")
    ctx.report_validation_metrics(7, {"val_loss": value})
    (line,) = _log_lines(ctx)
    assert line.startswith("[det_jupyter] warning: trial 0, report_validation_metrics(steps=7): ")
    assert f"searcher metric 'val_loss' {said}" in line


def test_numpy_nan_is_named_too_and_finite_values_say_nothing() -> None:
    np = pytest.importorskip("numpy")
    ctx = local_context({}, metric="val_loss")
    ctx.report_validation_metrics(1, {"val_loss": np.float32(0.5)})
    ctx.report_validation_metrics(2, {"val_loss": np.float64("nan")})
    (line,) = _log_lines(ctx)
    assert "steps=2" in line and "is NaN" in line


def test_unrankable_warnings_stop_after_three_per_run() -> None:
    ctx = local_context({}, metric="val_loss")
    for step in range(1, 6):
        ctx.report_validation_metrics(step, {"val_loss": float("nan")})
    lines = _log_lines(ctx)
    assert len(lines) == 3 and lines[-1].endswith(
        "(further warnings like this one are left out for this run)"
    )


def test_validation_steps_that_do_not_increase_warn() -> None:
    ctx = local_context({}, metric="val_loss", time_metric="batches")
    ctx.report_validation_metrics(100, {"val_loss": 0.5})
    ctx.report_validation_metrics(200, {"val_loss": 0.4})
    ctx.report_validation_metrics(1, {"val_loss": 0.3})  # an epoch index instead of batches trained
    (line,) = _log_lines(ctx)
    assert "report_validation_metrics(steps=1) comes after a validation at steps=200" in line
    assert "validation steps should increase" in line and "batches" in line


# --- an experiment whose trials never reported the searcher metric --------------------------------


def _trial_reporting(rules: Lifecycle, trial_id: int, *records: MetricRecord) -> None:
    (submit,) = rules.add_trial(TrialRecord(trial_id, trial_id, {}))
    assert isinstance(submit, Submit)
    run = submit.run
    rules.on_event(RunEvent(trial_id, run.run_id, 1, Started("w")), now=0.0)
    seq = 2
    if records:
        rules.on_event(RunEvent(trial_id, run.run_id, seq, Metrics(records)), now=0.0)
        seq += 1
    exited = Exited(RunStatus.COMPLETED, None, events_sent=seq - 1)
    rules.on_event(RunEvent(trial_id, run.run_id, seq, exited), now=0.0)
    rules.on_task_end(run.key, TaskEnd.FINISHED, None, now=0.0)


def test_a_search_where_no_trial_reported_the_metric_completes_with_an_error_message() -> None:
    rules = Lifecycle(experiment_id=1, nonce="n", max_restarts=0, max_time=10, metric="val_loss")
    _trial_reporting(rules, 1, MetricRecord(MetricKind.TRAINING, 5, {"loss": 0.5}, 0.0))
    _trial_reporting(rules, 2)
    rules.searcher_shutdown(failure=False)
    final = rules.finish()
    assert final is not None and final.state == ExperimentState.COMPLETED
    assert final.error is not None
    assert final.error.startswith(
        "no trial reported the searcher metric 'val_loss': no trial reported a validation "
        "(training metrics: ['loss'])"
    )
    assert "best_trial() is None" in final.error and "set searcher.metric" in final.error


def test_one_trial_reporting_the_metric_is_enough() -> None:
    rules = Lifecycle(experiment_id=1, nonce="n", max_restarts=0, max_time=10, metric="val_loss")
    _trial_reporting(rules, 1)
    _trial_reporting(rules, 2, MetricRecord(MetricKind.VALIDATION, 5, {"val_loss": float("nan")}, 0.0))
    rules.searcher_shutdown(failure=False)
    assert rules.finish() == FinishExperiment(ExperimentState.COMPLETED)


def test_a_resumed_experiment_does_not_claim_what_it_did_not_see() -> None:
    rules = Lifecycle(experiment_id=1, nonce="n", max_restarts=0, max_time=10, metric="val_loss")
    resumed = TrialRecord(1, 1, {}, run_id=0)  # ran before this controller
    (submit,) = rules.add_trial(resumed)
    assert isinstance(submit, Submit)
    rules.on_event(RunEvent(1, submit.run.run_id, 1, Started("w")), now=0.0)
    exited = Exited(RunStatus.COMPLETED, None, events_sent=1)
    rules.on_event(RunEvent(1, submit.run.run_id, 2, exited), now=0.0)
    rules.on_task_end(submit.run.key, TaskEnd.FINISHED, None, now=0.0)
    rules.searcher_shutdown(failure=False)
    assert rules.finish() == FinishExperiment(ExperimentState.COMPLETED)


# --- paths ----------------------------------------------------------------------------------------


def _with_storage(**storage: str) -> dict[str, Any]:
    return {**CONFIG, "checkpoint_storage": storage}


def test_a_checkpoint_host_path_that_is_a_file_is_refused_before_any_row(
    det_home: Path, tmp_path: Path
) -> None:
    not_a_dir = tmp_path / "ckpts"
    not_a_dir.write_text("oops")

    def train(ctx: Any) -> None:
        pass

    with pytest.raises(ConfigError) as info:
        det_jupyter.create_experiment(
            _with_storage(host_path=str(not_a_dir)), train, cluster="tcp://127.0.0.1:1"
        )
    (error,) = info.value.errors
    assert error.path == "checkpoint_storage.host_path"
    assert f"checkpoint path {str(not_a_dir)!r} is not a directory" in error.message
    under = _with_storage(host_path=str(not_a_dir), storage_path="run1")
    with pytest.raises(ConfigError, match=r"would be created under .*ckpts', which is not a directory"):
        det_jupyter.create_experiment(under, train, cluster="tcp://127.0.0.1:1")
    assert not (det_home / "det_jupyter.db").exists()


def test_an_unwritable_checkpoint_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from det_jupyter.config import load_config

    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if str(p) == str(tmp_path) else real_access(p, mode)
    )
    cfg = load_config(_with_storage(type="directory", container_path=str(tmp_path / "new")))
    problem = cfg.checkpoint_storage.local_path_problem()
    assert problem is not None and problem.path == "checkpoint_storage.container_path"
    assert "which is not writable by this user" in problem.message
    assert (
        load_config(
            _with_storage(host_path=str(tmp_path.parent / "a" / "b"))
        ).checkpoint_storage.local_path_problem()
        is None
    )
    assert load_config(_with_storage(type="s3", bucket="b")).checkpoint_storage.local_path_problem() is None


def test_det_jupyter_home_that_is_a_file_is_a_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home-file"
    home.write_text("")
    monkeypatch.setenv("DET_JUPYTER_HOME", str(home))
    with pytest.raises(StoreError) as info:
        det_jupyter.list_experiments()
    text = str(info.value)
    assert f"DET_JUPYTER_HOME={str(home)!r}" in text and "det_jupyter.db" in text
    assert "point DET_JUPYTER_HOME at a writable directory" in text
    assert text.startswith(f"cannot open the det_jupyter store {str(home / 'det_jupyter.db')!r}")


def test_a_store_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    bogus = tmp_path / "det_jupyter.db"
    bogus.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(StoreError, match=r"cannot open the det_jupyter store .*from the store path given"):
        det_jupyter.list_experiments(store=bogus)
