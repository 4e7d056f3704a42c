"""The sidebar in a real browser: Debian's Chromium driven by Playwright at 1400x900, a real ``jupyter
lab`` subprocess with the extension as installed in the venv, and real experiments on the session's
LocalCluster writing the store the server reads (``DET_JUPYTER_HOME``).

The sidebar stays at JupyterLab's default width (about 250 px): rows must fit it (no horizontal
overflow, one stats line), the best trial carries a ★, a trial's log is visible after clicking it,
a killed experiment's progress stays under 100 %, and the insert command is in the palette.

Every wait is on a condition (page selectors, store states); screenshots go to ``test-artifacts/``.
With ``DET_JUPYTER_DOCS_IMAGES=1`` the last test also writes the README's
``docs/images/sidebar-light.png`` and ``docs/images/sidebar-dark.png``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import det_jupyter
from det_jupyter.experiment import Experiment
from det_jupyter.states import ExperimentState, TrialState
from det_jupyter.store import Store

from .conftest import ARTIFACTS, ROOT, UI_TIMEOUT_MS, require_browser, shot

pytestmark = pytest.mark.slow

require_browser()

SIDEBAR = "#det-jupyter-sidebar"


def slow_trial(ctx: Any) -> None:
    """Steps of ``step_seconds``; prints each; validates every 5 steps; honours stop requests (pause, kill)."""
    for step in range(1, ctx.searcher.max_time + 1):
        time.sleep(ctx.hparams["step_seconds"])
        print(f"step {step} loss {1.0 / step:.4f}")
        ctx.report_training_metrics(step, {"loss": 1.0 / step})
        if step % 5 == 0:
            ctx.report_validation_metrics(step, {"val_loss": ctx.hparams["x"] + 1.0 / step})
            with ctx.checkpoint.save(step) as path:
                (path / "step").write_text(str(step))
        if ctx.should_stop():
            with ctx.checkpoint.save(step) as path:
                (path / "step").write_text(str(step))
            return


def _config(name: str, step_seconds: float, max_time: int, xs: list[float], **extra: Any) -> dict[str, Any]:
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
        **extra,
    }


@pytest.fixture(scope="module")
def running_experiment(store: Store, dask_client: Any) -> Iterator[Experiment]:
    """Two slow trials (one step every 0.5 s, 600 planned) that run until killed; a long name."""
    exp = det_jupyter.create_experiment(
        _config(
            "browser-slow-with-a-rather-long-experiment-name",
            0.5,
            600,
            [0.3, 0.1],
            description="two slow trials that the test kills from the sidebar",
            labels=["browser", "grid"],
        ),
        slow_trial,
        cluster=dask_client,
        store=store,
    )
    yield exp
    if not exp.state.is_terminal:
        exp.kill()
        exp.wait(timeout=60)


def _open_sidebar(page: Any) -> Any:
    sidebar = page.locator(SIDEBAR)
    if not sidebar.is_visible():
        page.locator(f'.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="{SIDEBAR[1:]}"]').click()
    sidebar.wait_for(state="visible")
    return sidebar


def _row(page: Any, exp_id: int) -> Any:
    return page.locator(f'{SIDEBAR} li[data-experiment-id="{exp_id}"]')


def _expand(page: Any, exp_id: int) -> Any:
    row = _row(page, exp_id)
    row.wait_for(state="visible")
    if row.locator(".jp-DetSidebar-details").count() == 0:
        row.locator(".jp-DetSidebar-experimentHeader").click()
    row.locator(".jp-DetSidebar-details").wait_for(state="visible")
    return row


def _overflow(page: Any) -> list[str]:
    """Elements of the sidebar wider than their box (what would scroll sideways or be cut)."""
    result: list[str] = page.evaluate(
        """sel => {
          const root = document.querySelector(sel);
          const out = [];
          if (root.scrollWidth > root.clientWidth + 1) out.push(`sidebar ${root.scrollWidth}>${root.clientWidth}`);
          const right = root.getBoundingClientRect().right;
          for (const el of root.querySelectorAll('*')) {
            const r = el.getBoundingClientRect();
            if (r.width > 0 && r.right > right + 1 && getComputedStyle(el).overflow !== 'hidden') {
              out.push(`${el.className || el.tagName} right ${Math.round(r.right)} > ${Math.round(right)}`);
            }
          }
          return out;
        }""",
        SIDEBAR,
    )
    return result


def test_the_browser_loads_the_extension_that_was_built(page: Any) -> None:
    config = json.loads(page.locator("#jupyter-config-data").text_content())
    (ext,) = [e for e in config["federated_extensions"] if e["name"] == "det-jupyter"]
    built = ROOT / "det_jupyter" / "labextension" / ext["load"]
    assert built.exists(), (
        f"the page loads {ext['load']}, which det_jupyter/labextension does not hold: rebuild"
    )


def test_sidebar_opens_from_its_icon_at_its_default_width(page: Any) -> None:
    assert page.viewport_size == {"width": 1400, "height": 900}
    tab = page.locator(f'.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="{SIDEBAR[1:]}"]')
    tab.wait_for(state="visible")
    assert tab.locator("svg").count() == 1  # our LabIcon
    assert not page.locator(SIDEBAR).is_visible()
    tab.click()
    sidebar = page.locator(SIDEBAR)
    sidebar.wait_for(state="visible")
    assert sidebar.locator(".jp-DetSidebar-title").text_content() == "Experiments"
    sidebar.locator(".jp-DetSidebar-cluster").wait_for(state="visible")
    width = sidebar.bounding_box()["width"]
    assert 200 <= width <= 300, width  # JupyterLab's default, not widened by the test
    shot(page, "sidebar-open")


def test_a_running_experiment_fits_the_default_width_with_its_best_trial_starred(
    page: Any, running_experiment: Experiment, store: Store, wait_for: Callable[..., object]
) -> None:
    _open_sidebar(page)
    exp_id = running_experiment.id
    row = _row(page, exp_id)
    row.wait_for(state="visible")
    name = row.locator(".jp-DetSidebar-experimentName")
    assert "browser-slow-with-a-rather-long-experiment-name" in name.inner_text()
    # cut with an ellipsis, the full name in the header's tooltip
    assert (
        name.evaluate("e => e.scrollWidth > e.clientWidth && getComputedStyle(e).textOverflow") == "ellipsis"
    )
    assert "browser-slow-with-a-rather-long-experiment-name" in row.locator(
        ".jp-DetSidebar-experimentHeader"
    ).get_attribute("title")
    assert row.locator(".jp-DetSidebar-description").inner_text().startswith("two slow trials")
    assert row.locator(".jp-DetSidebar-label").all_inner_texts() == ["browser", "grid"]
    # the stats are one line: progress, percent, created/planned trials, best
    stats = row.locator(".jp-DetSidebar-experimentStats")
    line = stats.evaluate("e => parseFloat(getComputedStyle(e).lineHeight) || 18")
    assert stats.bounding_box()["height"] < 1.8 * line
    assert "/2 trials" in stats.inner_text()
    wait_for(lambda: len(store.list_trials(exp_id)) == 2, 60, what="both trials in the store")
    _expand(page, exp_id)
    page.wait_for_function(
        """id => document.querySelectorAll(
             `#det-jupyter-sidebar li[data-experiment-id="${id}"] tr.jp-DetSidebar-trial`).length === 2""",
        arg=exp_id,
    )
    shown = row.locator("tr.jp-DetSidebar-trial").evaluate_all(
        "rows => rows.map(r => Number(r.dataset.trialId))"
    )
    assert shown == [t.id for t in store.list_trials(exp_id)]
    # a validation arrives: the best trial (x=0.1) gets the star, in its row and in the stats line
    best_row = row.locator('tr.jp-DetSidebar-trial[data-best="true"]')
    best_row.wait_for(timeout=UI_TIMEOUT_MS)
    assert "★" in best_row.inner_text()
    best_id = int(best_row.get_attribute("data-trial-id"))
    assert store.get_trial(best_id).hparams["x"] == 0.1
    assert "★" in row.locator(".jp-DetSidebar-best").inner_text()
    assert row.get_attribute("data-state") == "ACTIVE"
    assert _overflow(page) == []
    shot(page, "sidebar-running")


def test_clicking_a_trial_shows_its_live_log(
    page: Any, running_experiment: Experiment, store: Store, wait_for: Callable[..., object]
) -> None:
    _open_sidebar(page)
    row = _expand(page, running_experiment.id)
    trial = row.locator("tr.jp-DetSidebar-trial").first
    trial_id = int(trial.get_attribute("data-trial-id"))
    trial.click()
    panel = page.locator(f'.jp-DetTrial-body[data-trial-id="{trial_id}"]')
    panel.wait_for(state="visible")
    logs = panel.locator(".jp-DetTrial-logs")
    logs.wait_for(state="visible")
    page.wait_for_function("e => /step \\d+ loss/.test(e.textContent)", arg=logs.element_handle())
    # live: a line printed after the panel opened shows up without a click
    seen = len(store.logs(trial_id))
    wait_for(lambda: len(store.logs(trial_id)) >= seen + 2, 60, what="two more log lines in the store")
    newest = store.logs(trial_id)[-1].line
    page.wait_for_function("([e, t]) => e.textContent.includes(t)", arg=[logs.element_handle(), newest])
    assert panel.locator(".jp-DetTrial-hparams").inner_text().count("x") >= 1
    panel.locator(".jp-DetChart").first.wait_for(state="visible")
    assert panel.locator(".jp-DetTrial-checkpoints").is_visible()
    shot(page, "sidebar-trial-panel")


def test_kill_from_the_sidebar_leaves_progress_under_100_percent(
    page: Any, running_experiment: Experiment, store: Store, wait_for: Callable[..., object]
) -> None:
    _open_sidebar(page)
    exp_id = running_experiment.id
    row = _expand(page, exp_id)
    row.locator('.jp-DetSidebar-experimentHeader .jp-DetSidebar-badge[data-state="ACTIVE"]').wait_for()
    # destructive actions sit apart from the harmless ones
    assert row.locator('.jp-DetSidebar-actions button[data-action="kill"]').count() == 0
    assert row.locator('.jp-DetSidebar-actions button[data-action="insert-code"]').count() == 1
    row.locator('.jp-DetSidebar-danger button[data-action="kill"]').click()
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
    assert {t.state for t in store.list_trials(exp_id)} == {TrialState.CANCELED}
    assert (
        store.get_experiment(exp_id).progress == 1.0
    )  # what the engine writes; the sidebar must not show it
    pct = row.locator(".jp-DetSidebar-pct").inner_text()
    assert pct.endswith("%") and int(pct[:-1]) < 100, pct
    assert int(row.locator('[role="progressbar"]').get_attribute("aria-valuenow")) < 100
    assert row.locator(".jp-DetSidebar-pending").count() == 0  # no stale "kill requested"
    assert "2 canceled" in row.locator('[data-role="trial-counts"]').inner_text()
    assert row.locator('.jp-DetSidebar-danger button[data-action="delete"]').count() == 1


def test_state_changes_live_to_completed_with_a_notification(
    page: Any, store: Store, dask_client: Any
) -> None:
    _open_sidebar(page)
    exp = det_jupyter.create_experiment(
        _config("browser-quick", 0.1, 30, [0.2, 0.05]), slow_trial, cluster=dask_client, store=store
    )
    row = _row(page, exp.id)
    header_badge = row.locator(".jp-DetSidebar-experimentHeader .jp-DetSidebar-badge")
    row.locator('.jp-DetSidebar-experimentHeader .jp-DetSidebar-badge[data-state="ACTIVE"]').wait_for()
    assert header_badge.inner_text() == "ACTIVE"
    row.locator('.jp-DetSidebar-experimentHeader .jp-DetSidebar-badge[data-state="COMPLETED"]').wait_for()
    assert exp.wait(timeout=60) == ExperimentState.COMPLETED
    assert "0.08333" in row.locator(".jp-DetSidebar-best").inner_text()  # 0.05 + 1/30, smaller is better
    assert row.locator(".jp-DetSidebar-pct").inner_text() == "100%"
    toast = page.locator(".Toastify__toast", has_text=f"Experiment {exp.id} (browser-quick) completed")
    toast.wait_for(state="visible")
    assert "0.08333" in toast.inner_text()
    shot(page, "sidebar-completed")


def test_the_insert_command_is_in_the_palette_and_never_rebinds_user_names(
    page: Any, store: Store, wait_for: Callable[..., object]
) -> None:
    exp_id = store.list_experiments(limit=1)[0].id
    page.locator('.jp-LauncherCard[data-category="Notebook"]').first.click()
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    editor = notebook.locator(".jp-Cell.jp-mod-active .cm-content")
    editor.wait_for(state="visible")
    editor.click()
    page.keyboard.type("exp = 'mine'")
    page.keyboard.press("Escape")
    _open_sidebar(page)
    _expand(page, exp_id)  # the selected experiment
    page.locator(".lm-MenuBar-itemLabel", has_text="View").click()
    page.locator(".lm-Menu-itemLabel", has_text="Activate Command Palette").click()
    palette = page.locator("#command-palette")
    palette.wait_for(state="visible")
    palette.locator(".lm-CommandPalette-input").fill("Insert code to load the best checkpoint")
    item = palette.locator('.lm-CommandPalette-item[data-command="det-jupyter:insert-load-code"]')
    item.wait_for(state="visible")
    shot(page, "sidebar-palette")
    item.click()
    expected = (
        f"import det_jupyter\n\nexp_{exp_id} = det_jupyter.get_experiment({exp_id})\n"
        f"model_{exp_id}_best = exp_{exp_id}.best_checkpoint().load()"
    )

    def cells() -> list[str]:
        return notebook.locator(".jp-Cell .jp-InputArea-editor").evaluate_all(
            "es => es.map(e => Array.from(e.querySelectorAll('.cm-line')).map(l => l.textContent).join('\\n'))"
        )

    wait_for(lambda: len(cells()) == 2, 30, what=f"a new cell below (cells: {cells()!r})")
    assert cells() == ["exp = 'mine'", expected]
    shot(page, "sidebar-insert-code")


def test_screenshots_light_and_dark(page: Any, store: Store, dask_client: Any) -> None:
    """The README's pictures: the sidebar at its default width beside a trial panel, in both themes."""
    exp = det_jupyter.create_experiment(
        _config(
            "iris-grid",
            0.3,
            400,
            [0.4, 0.2, 0.1],
            description="grid over x; the best trial is starred",
            labels=["demo"],
        ),
        slow_trial,
        cluster=dask_client,
        store=store,
    )
    try:
        sidebar = _open_sidebar(page)
        row = _expand(page, exp.id)
        row.locator('tr.jp-DetSidebar-trial[data-best="true"]').wait_for(timeout=UI_TIMEOUT_MS)
        row.locator('tr.jp-DetSidebar-trial[data-best="true"]').click()
        page.locator(".jp-DetTrial-body .jp-DetChart").first.wait_for(state="visible")
        sidebar.locator('.jp-DetSidebar-cluster[data-source="experiment"]').wait_for()
        assert _overflow(page) == []
        paths = {"light": shot(page, "sidebar-light")}
        page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
        page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
        page.locator(".lm-Menu").get_by_text("JupyterLab Dark", exact=True).click()
        page.wait_for_function("document.body.dataset.jpThemeLight === 'false'")
        page.wait_for_function(
            "getComputedStyle(document.querySelector('#det-jupyter-sidebar')).backgroundColor !== 'rgb(255, 255, 255)'"
        )
        paths["dark"] = shot(page, "sidebar-dark")
        if os.environ.get("DET_JUPYTER_DOCS_IMAGES"):
            images = ROOT / "docs" / "images"
            images.mkdir(parents=True, exist_ok=True)
            for theme, path in paths.items():
                shutil.copy(path, images / f"sidebar-{theme}.png")
        assert all(p.stat().st_size > 10_000 for p in paths.values())
        assert ARTIFACTS.exists()
    finally:
        exp.kill()
        exp.wait(timeout=60)
