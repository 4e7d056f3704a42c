"""One progress definition (``det_jupyter.store.progress``) read the same by every surface.

A killed experiment that ran 32 of 300 steps keeps what it did: the REST API, the notebook widget,
``%det list`` / ``%det describe`` and the CLI's ``experiment list`` / ``describe`` (text and JSON)
all read 10 %, although the engine's own ``progress`` column (the searcher's) says 1.0.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from det_jupyter.cli._experiments import _describe, _list, describe_json
from det_jupyter.config import load_config
from det_jupyter.notebook import reports
from det_jupyter.notebook.widget.html import progress_text
from det_jupyter.notebook.widget.model import WidgetModel
from det_jupyter.server.serializers import serialize_experiment_detail, serialize_experiment_summary
from det_jupyter.states import ExperimentState, TrialState
from det_jupyter.store import Store
from det_jupyter.store.progress import Plan, experiment_progress, plan_of, trial_progress, work_progress

CONFIG = {
    "name": "killed",
    "searcher": {"name": "single", "metric": "val_loss", "max_time": 300, "time_metric": "batches"},
    "hyperparameters": {"lr": 0.1},
}
STEPS, MAX_TIME = 32, 300
EXPECTED = STEPS / MAX_TIME  # 0.1066..., shown as 10 % (floored: unfinished work never rounds up)


@pytest.fixture
def killed(tmp_path: Path) -> tuple[Store, int]:
    """A single-trial experiment killed at step 32 of 300 (last validation at 30), as the engine leaves it."""
    store = Store(tmp_path / "det.db")
    exp = store.create_experiment(name="killed", config=load_config(CONFIG).to_dict(), entrypoint=b"", seed=1)
    tid = store.create_trial(exp, 0, {"lr": 0.1})
    store.update_trial(
        tid, state=TrialState.CANCELED, steps_completed=STEPS, searcher_time=30.0, best_validation=0.5
    )
    store.update_experiment(exp, state=ExperimentState.CANCELED, progress=1.0)  # what the engine writes
    return store, exp


def test_the_rule() -> None:
    plan = Plan(trials=4, max_time=100.0, time_metric="batches")
    rows = [(TrialState.COMPLETED, 100.0, 100), (TrialState.STOPPED, 10.0, 10), (TrialState.ACTIVE, 20.0, 25)]
    # completed and stopped count whole, the running one by its steps (past its last validation), one not created
    assert work_progress(ExperimentState.ACTIVE, rows, plan) == pytest.approx((1 + 1 + 0.25) / 4)
    assert work_progress(ExperimentState.COMPLETED, [], plan) == 1.0
    assert work_progress(ExperimentState.ACTIVE, [], Plan(None, None)) == 0.0
    # epochs: reported steps (batches) do not measure the length, the searcher's time does
    epochs = Plan(trials=1, max_time=10.0, time_metric="epochs")
    assert trial_progress(TrialState.ACTIVE, searcher_time=2.0, steps_completed=900, plan=epochs) == 0.2
    # no max_time: a trial counts once done; more trials than planned count as planned
    free = Plan(trials=1, max_time=None)
    assert trial_progress(TrialState.ACTIVE, searcher_time=5.0, steps_completed=5, plan=free) is None
    assert work_progress(ExperimentState.ACTIVE, [(TrialState.COMPLETED, 0.0, 9)] * 2, free) == 1.0
    assert plan_of(load_config(CONFIG).to_dict()) == Plan(1, 300.0, "batches")


def test_a_killed_experiment_reads_the_same_below_100_percent_everywhere(
    killed: tuple[Store, int], capsys: pytest.CaptureFixture[str]
) -> None:
    store, exp_id = killed
    row, trials = store.get_experiment(exp_id), store.list_trials(exp_id)
    assert row.progress == 1.0  # the searcher's progress: not what any surface shows
    assert experiment_progress(row, trials) == pytest.approx(EXPECTED)

    # REST API / sidebar
    stats = store.trial_stats([exp_id])[exp_id]
    summary = serialize_experiment_summary(row, stats, [0.5], trials)
    assert summary["progress"] == pytest.approx(EXPECTED) and summary["searcher_progress"] == 1.0
    detail = serialize_experiment_detail(row, stats, [0.5], trials, limit=10, offset=0)
    assert detail["trials"]["trials"][0]["progress"] == pytest.approx(EXPECTED)

    # the notebook widget
    model = WidgetModel(store, exp_id)
    model.refresh()
    assert model.progress() == pytest.approx(EXPECTED)
    assert progress_text(model) == "10% of 1 × 300 batches"

    # %det list and %det describe
    listed = str(reports.experiment_list(store))
    assert re.search(rf"\b{exp_id}\b.*CANCELED.*\b10%", listed), listed
    assert "progress 10%" in str(reports.experiment_description(store, exp_id))

    # the CLI: experiment list, describe, describe --json
    assert _list(store, ibm=False) == 0
    assert _describe(store, exp_id, ibm=False) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^\s*{exp_id}\s+CANCELED\s+10%", out, re.M), out
    assert "progress 10%" in out and "100%" not in out
    info = describe_json(store, exp_id)
    assert json.loads(json.dumps(info))["progress"] == pytest.approx(EXPECTED)
