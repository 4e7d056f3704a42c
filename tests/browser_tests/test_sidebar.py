"""The sidebar in a real browser: Debian's Chromium driven by Playwright, a real ``jupyter lab``
subprocess with the extension as installed in the venv, and real experiments on the session's
LocalCluster writing the store the server reads (``DET_JUPYTER_HOME``).

Every wait is on a condition (page selectors, store states); screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import det_jupyter
from det_jupyter.experiment import Experiment
from det_jupyter.states import ExperimentState
from det_jupyter.store import Store

from .conftest import ARTIFACTS, ROOT, UI_TIMEOUT_MS, require_browser, shot

pytestmark = pytest.mark.slow

require_browser()


def slow_trial(ctx: Any) -> None:
    """Steps of ``step_seconds``; validates every 5 steps; honours stop requests (pause, kill)."""
    for step in range(1, ctx.searcher.max_time + 1):
        time.sleep(ctx.hparams["step_seconds"])
        ctx.report_training_metrics(step, {"loss": 1.0 / step})
        if step % 5 == 0:
            ctx.report_validation_metrics(step, {"val_loss": ctx.hparams["x"] + 1.0 / step})
            with ctx.checkpoint.save(step) as path:
                (path / "step").write_text(str(step))
        if ctx.should_stop():
            with ctx.checkpoint.save(step) as path:
                (path / "step").write_text(str(step))
            return


def _config(name: str, step_seconds: float, max_time: int, xs: list[float]) -> dict[str, Any]:
    return {
        "name": name,
        "searcher": {
            "name": "grid",
            "metric": "val_loss",
            "max_time": max_time,
            "time_metric": "batches",
            "max_concurrent_trials": 2,
        },
        "hyperparameters": {"x": {"type": "categorical", "vals": xs}, "step_seconds": step_seconds},
    }


@pytest.fixture(scope="module")
def running_experiment(store: Store, dask_client: Any) -> Iterator[Experiment]:
    """Two slow trials (one step a second) that run until killed."""
    exp = det_jupyter.create_experiment(
        _config("browser-slow", 1.0, 600, [0.3, 0.1]), slow_trial, cluster=dask_client, store=store
    )
    yield exp
    if not exp.state.is_terminal:
        exp.kill()
        exp.wait(timeout=60)


def _open_sidebar(page: Any) -> Any:
    sidebar = page.locator("#det-jupyter-sidebar")
    if not sidebar.is_visible():
        page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="det-jupyter-sidebar"]').click()
    sidebar.wait_for(state="visible")
    return sidebar


def _widen_sidebar(page: Any, width: int) -> None:
    """Drag the handle between the left area and the main area so the sidebar is ``width`` px wide."""
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle:not(.lm-mod-hidden)").first
    box = handle.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(
        box["x"] + (width - page.locator("#det-jupyter-sidebar").bounding_box()["width"]), y, steps=5
    )
    page.mouse.up()
    page.wait_for_function(
        "w => document.querySelector('#det-jupyter-sidebar').getBoundingClientRect().width >= w - 20",
        arg=width,
    )


def _row(page: Any, exp_id: int) -> Any:
    return page.locator(f'#det-jupyter-sidebar li[data-experiment-id="{exp_id}"]')


def test_the_browser_loads_the_extension_that_was_built(page: Any) -> None:
    config = json.loads(page.locator("#jupyter-config-data").text_content())
    (ext,) = [e for e in config["federated_extensions"] if e["name"] == "det-jupyter"]
    built = ROOT / "det_jupyter" / "labextension" / ext["load"]
    assert built.exists(), (
        f"the page loads {ext['load']}, which det_jupyter/labextension does not hold: rebuild"
    )


def test_sidebar_opens_from_its_icon(page: Any) -> None:
    tab = page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="det-jupyter-sidebar"]')
    tab.wait_for(state="visible")
    assert tab.locator("svg").count() == 1  # our LabIcon
    assert not page.locator("#det-jupyter-sidebar").is_visible()
    tab.click()
    sidebar = page.locator("#det-jupyter-sidebar")
    sidebar.wait_for(state="visible")
    assert sidebar.locator(".jp-DetSidebar-title").text_content() == "Experiments"
    sidebar.locator(".jp-DetSidebar-cluster").wait_for(state="visible")
    _widen_sidebar(page, 420)
    shot(page, "sidebar-open")


def test_a_running_experiment_appears_with_its_trials(
    page: Any, running_experiment: Experiment, store: Store, wait_for: Callable[..., object]
) -> None:
    _open_sidebar(page)
    exp_id = running_experiment.id
    row = _row(page, exp_id)
    row.wait_for(state="visible")
    assert "browser-slow" in row.locator(".jp-DetSidebar-experimentName").inner_text()
    wait_for(lambda: len(store.list_trials(exp_id)) == 2, 60, what="both trials in the store")
    row.locator(".jp-DetSidebar-experimentHeader").click()
    page.wait_for_function(
        """id => document.querySelectorAll(
             `#det-jupyter-sidebar li[data-experiment-id="${id}"] tr.jp-DetSidebar-trial`).length === 2""",
        arg=exp_id,
    )
    shown = row.locator("tr.jp-DetSidebar-trial").evaluate_all(
        "rows => rows.map(r => Number(r.dataset.trialId))"
    )
    assert shown == [t.id for t in store.list_trials(exp_id)]
    # the trials run: their badges turn ACTIVE, and a validation appears in the experiment's best metric
    row.locator('tr.jp-DetSidebar-trial[data-state="ACTIVE"]').first.wait_for()
    assert row.get_attribute("data-state") == "ACTIVE"
    page.wait_for_function(
        """id => !document.querySelector(
             `#det-jupyter-sidebar li[data-experiment-id="${id}"] .jp-DetSidebar-best`).textContent.includes('–')""",
        arg=exp_id,
        timeout=UI_TIMEOUT_MS,
    )
    shot(page, "sidebar-running")


def test_kill_from_the_sidebar_stops_a_running_experiment(
    page: Any, running_experiment: Experiment, store: Store, wait_for: Callable[..., object]
) -> None:
    _open_sidebar(page)
    exp_id = running_experiment.id
    row = _row(page, exp_id)
    row.locator('.jp-DetSidebar-badge[data-state="ACTIVE"]').first.wait_for()
    row.locator('button[data-action="kill"]').click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(state="visible")
    assert f"Kill experiment {exp_id}?" in dialog.inner_text()
    shot(page, "sidebar-kill-dialog")
    dialog.locator("button.jp-mod-accept").click()
    wait_for(
        lambda: store.get_experiment(exp_id).state == ExperimentState.CANCELED,
        90,
        what=f"experiment {exp_id} CANCELED in the store",
    )
    row.locator('.jp-DetSidebar-experimentHeader .jp-DetSidebar-badge[data-state="CANCELED"]').wait_for()
    assert {t.state.value for t in store.list_trials(exp_id)} == {"CANCELED"}


def test_state_changes_live_to_completed(page: Any, store: Store, dask_client: Any) -> None:
    sidebar = _open_sidebar(page)
    exp = det_jupyter.create_experiment(
        _config("browser-quick", 0.25, 30, [0.2, 0.05]), slow_trial, cluster=dask_client, store=store
    )
    row = _row(page, exp.id)
    header_badge = row.locator(".jp-DetSidebar-experimentHeader .jp-DetSidebar-badge")
    row.locator('.jp-DetSidebar-experimentHeader .jp-DetSidebar-badge[data-state="ACTIVE"]').wait_for()
    assert header_badge.inner_text() == "ACTIVE"
    row.locator('.jp-DetSidebar-experimentHeader .jp-DetSidebar-badge[data-state="COMPLETED"]').wait_for()
    assert exp.wait(timeout=60) == ExperimentState.COMPLETED
    assert "0.08333" in row.locator(".jp-DetSidebar-best").inner_text()  # 0.05 + 1/30, smaller is better
    assert row.locator(".jp-DetSidebar-sparkline").count() == 1
    assert sidebar.locator(f'li[data-experiment-id="{exp.id}"] button[data-action="delete"]').count() == 1
    shot(page, "sidebar-completed")
    width = page.locator("#det-jupyter-sidebar").bounding_box()["width"]
    page.screenshot(
        path=str(ARTIFACTS / "sidebar-panel.png"), clip={"x": 0, "y": 0, "width": width + 40, "height": 420}
    )


def test_insert_code_puts_the_snippet_in_a_notebook_cell(
    page: Any, store: Store, wait_for: Callable[..., object]
) -> None:
    newest = store.list_experiments(limit=1)
    exp_id = (
        newest[0].id
        if newest
        else store.create_experiment(name="row-only", config={}, entrypoint=b"", seed=0)
    )
    page.locator('.jp-LauncherCard[data-category="Notebook"]').first.click()
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    notebook.locator(".jp-Cell.jp-mod-active .cm-content").wait_for(state="visible")
    _open_sidebar(page)
    _row(page, exp_id).locator('button[data-action="insert-code"]').click()
    expected = f"import det_jupyter\n\nexp = det_jupyter.get_experiment({exp_id})\nmodel = exp.best_checkpoint().load()"

    def cell_text() -> str:
        lines = notebook.locator(".jp-Cell.jp-mod-active .cm-line").all_text_contents()
        return "\n".join(line.rstrip("\n") for line in lines)

    wait_for(
        lambda: cell_text() == expected, 30, what=f"the snippet in the active cell (got {cell_text()!r})"
    )
    assert notebook.locator(".jp-Cell").count() == 1  # the empty first cell was used
    shot(page, "sidebar-insert-code")
