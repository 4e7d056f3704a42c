"""The ``%%det_experiment`` widget in a real browser: a notebook run through JupyterLab's UI by Debian's
Chromium (Playwright), its kernel started by a real ``jupyter lab`` (``DET_JUPYTER_HOME`` = a temp dir),
a random search of 3 Core-API trials on the kernel's embedded Dask cluster.

What the page must show: the Plotly charts (training and validation), validation curves drawn while
the experiment is ACTIVE, then the validation chart ending with exactly one drawn line per trial (the
widget pre-creates empty placeholder traces: only traces with points count, read both from the figure
data Plotly keeps on its graph div and from the SVG paths it drew), the header's state turning
COMPLETED, and the 3 trials in the table.

The trials hold at step ``HOLD_AT`` until the test has seen them mid-run in the page (a gate file), so
the live check does not race the experiment: the widget's first paint comes seconds after the
experiment starts (~8 s on a 2-core machine: a fresh kernel builds its first Plotly ``FigureWidget`` in
~3 s, and each one carries plotly's ~5 MB JavaScript bundle to the page in its model state).

Every wait is on a condition. Screenshots go to ``test-artifacts/`` (``widget_render-*.png``, on
failure too), with ``widget_render-timeline.txt``: what the page showed, when. With
``DET_JUPYTER_DOCS_IMAGES=1`` the test also writes the README's ``docs/images/widget-light.png`` and
``widget-dark.png``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from det_jupyter.states import ExperimentState
from det_jupyter.store import Store

from .conftest import ARTIFACTS, ROOT, require_browser, shot

pytestmark = pytest.mark.slow

require_browser()

NOTEBOOK = "widget_render.ipynb"
TRIALS, STEPS, HOLD_AT = 3, 20, 10
VIEWPORT = {"width": 1400, "height": 900}
DOCS_IMAGES = ROOT / "docs" / "images"

TRAIN_SOURCE = '''\
import math
import time
from pathlib import Path

GATE = Path({gate!r})  # the test creates it once it has seen the trials mid-run
HOLD_AT = {hold_at}


def train(ctx):
    """A stand-in for a training loop: loss decays at the trial's learning rate, a bit of wiggle."""
    lr, width = ctx.hparams["learning_rate"], ctx.hparams["width"]
    for step in range(1, ctx.searcher.max_time + 1):
        while step > HOLD_AT and not GATE.exists() and not ctx.should_stop():
            time.sleep(0.05)
        time.sleep(0.3)
        loss = 1.6 * math.exp(-lr * step) + 8.0 / width + 0.03 * math.sin(step * width)
        ctx.report_training_metrics(step, {{"loss": loss}})
        ctx.report_validation_metrics(step, {{"val_loss": 1.1 * loss + 0.05 + 0.02 * math.cos(step)}})
        if step % 5 == 0:
            print(f"trial log: step {{step}} loss {{loss:.4f}}")
        if ctx.should_stop():
            return
'''

MAGIC_SOURCE = f"""\
%%det_experiment train -o exp
name: widget-render
hyperparameters:
  learning_rate: {{type: log, base: 10, minval: -1.3, maxval: -0.5}}
  width: {{type: int, minval: 8, maxval: 64}}
searcher:
  name: random
  metric: val_loss
  max_trials: {TRIALS}
  time_metric: batches
  max_time: {STEPS}
"""

# What the widget output shows, read in the page: every Plotly chart (title, the traces of its figure
# data with their point counts, the lines its SVG draws), the header's text, the table's rows, errors.
READ_WIDGET = """
output => {
  const charts = Array.from(output.querySelectorAll('.js-plotly-plot')).map(gd => ({
    title: (gd.layout && gd.layout.title && gd.layout.title.text) || '',
    types: (gd.data || []).map(t => t.type || 'scatter'),
    traces: (gd.data || [])
      .filter(t => (t.x || []).length > 0 && (t.name || '').startsWith('trial '))
      .map(t => ({name: t.name, points: t.x.length})),
    drawnLines: Array.from(gd.querySelectorAll('.scatterlayer .trace path.js-line'))
      .filter(p => /L/.test(p.getAttribute('d') || '')).length,
  }));
  const header = output.querySelector('.widget-vbox .widget-html .widget-html-content');
  const heads = Array.from(output.querySelectorAll('.det-jupyter-table thead th')).map(th => th.textContent);
  const rows = Array.from(output.querySelectorAll('.det-jupyter-table tbody tr'))
    .map(tr => Array.from(tr.children).map(td => td.textContent.trim()));
  return {charts, header: header ? header.textContent : '', heads, rows};
}
"""


def _write_notebook(path: Path, gate: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext det_jupyter"),
        nbformat.v4.new_code_cell(TRAIN_SOURCE.format(gate=str(gate), hold_at=HOLD_AT)),
        nbformat.v4.new_code_cell(MAGIC_SOURCE),
        nbformat.v4.new_code_cell("exp.wait()"),  # keeps the kernel busy while the test clicks the widget
    ]
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def gate(lab: dict[str, Any]) -> Iterator[Path]:
    """The file that lets the trials go on past ``HOLD_AT``; created at the latest when the test ends."""
    path = lab["root"].parent / "gate"
    yield path
    path.touch()


@pytest.fixture(scope="module")
def notebook(lab: dict[str, Any], gate: Path) -> Path:
    """The notebook in the server's root dir, written before the page loads (the file browser lists it)."""
    path = lab["root"] / NOTEBOOK
    _write_notebook(path, gate)
    return path


def _chart(state: dict[str, Any], title: str) -> dict[str, Any] | None:
    return next((c for c in state["charts"] if c["title"] == title), None)


def _column(state: dict[str, Any], name: str) -> int:
    """The index of the table column whose header is ``name`` (its sort arrow aside)."""
    return [h.rstrip(" ▲▼") for h in state["heads"]].index(name)


def test_the_experiment_widget_renders_live_curves_and_completes(
    notebook: Path, gate: Path, page: Any, store: Store, wait_for: Callable[..., object]
) -> None:
    try:
        _run_and_check(page, gate, store, wait_for)
    except BaseException:
        shot(page, "widget_render-failure")
        raise


def _run_and_check(page: Any, gate: Path, store: Store, wait_for: Callable[..., object]) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size(VIEWPORT)  # the screen, with the file browser open beside the notebook
    page.locator(".jp-DirListing-itemText", has_text=NOTEBOOK).dblclick()
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    panel.locator(".jp-Cell").nth(2).locator(".cm-content").wait_for(state="visible")
    page.locator("#jp-left-stack").wait_for(state="visible")
    # the kernel is up: its name and state in the status bar (the toolbar's indicator says idle sooner)
    page.locator("#jp-main-statusbar", has_text="Python 3 (ipykernel) | Idle").wait_for()
    panel.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').wait_for()

    page.locator(".lm-MenuBar-item", has_text="Run").click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    # the cells run, or JupyterLab asks which kernel (when it had not attached the session yet): accept
    ran = panel.locator(".jp-Cell").first.locator(".jp-InputPrompt", has_text="[1]")
    select_kernel = page.locator(".jp-Dialog", has_text="Select Kernel")
    ran.or_(select_kernel).first.wait_for()
    if select_kernel.is_visible():
        shot(page, "widget_render-select-kernel")
        select_kernel.locator("button.jp-mod-accept").click()
        ran.wait_for()

    output = panel.locator(".jp-Cell").nth(2).locator(".jp-OutputArea")
    stderr = panel.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')

    timeline: list[str] = []  # what the page showed, each time it changed (-> test-artifacts)
    started = time.monotonic()

    def widget() -> dict[str, Any]:
        """The widget as the page shows it; fails at once when a cell raised (JupyterLab shows it as stderr)."""
        for text in stderr.all_inner_texts():
            if "Error" in text:
                raise AssertionError(f"a notebook cell failed:\n{text[-3000:]}")
        state: dict[str, Any] = {"charts": [], "header": "", "heads": [], "rows": []}
        if output.locator(".widget-vbox").count():
            state = dict(output.evaluate(READ_WIDGET))
        prompt = panel.locator(".jp-Cell").nth(2).locator(".jp-InputPrompt").inner_text()
        seen = json.dumps([prompt, state["header"].split(" · ")[2:5], [c["traces"] for c in state["charts"]]])
        if not timeline or not timeline[-1].endswith(seen):
            timeline.append(f"{time.monotonic() - started:6.2f}s {seen}")
            (ARTIFACTS / "widget_render-timeline.txt").write_text("\n".join(timeline) + "\n")
        return state

    # live: the charts exist and show every running trial's curve, held at HOLD_AT of STEPS points
    def held_mid_run() -> bool:
        state = widget()
        chart = _chart(state, "validation val_loss")
        running = [row[_column(state, "state")] for row in state["rows"]].count("ACTIVE")
        return bool(
            _chart(state, "training loss")
            and chart
            and " · ACTIVE · " in state["header"]
            and 0 < running == len(chart["traces"]) == chart["drawnLines"]
            and all(t["points"] == HOLD_AT for t in chart["traces"])
        )

    wait_for(
        held_mid_run, 120, interval=0.1, what="the running trials' curves in the widget (see the timeline)"
    )
    widget_box = output.locator(".widget-vbox").first
    widget_box.screenshot(path=str(ARTIFACTS / "widget_render-running.png"))
    _click_while_busy(page, output, wait_for)
    gate.touch()

    # the end: COMPLETED, one full line per trial, the table, the parallel-coordinates chart
    def completed() -> bool:
        chart = _chart(state := widget(), "validation val_loss")
        return bool(
            " · COMPLETED · " in state["header"]
            and chart
            and len(chart["traces"]) == TRIALS
            and all(t["points"] == STEPS for t in chart["traces"])
            and chart["drawnLines"] == TRIALS
            and len(state["rows"]) == TRIALS
            and any(c["types"] == ["parcoords"] for c in state["charts"])
        )

    wait_for(completed, 120, interval=0.2, what=f"the widget showing {TRIALS} COMPLETED trials")
    final = widget()
    widget_box.screenshot(path=str(ARTIFACTS / "widget_render-completed.png"))
    shot(page, "widget_render-page")

    (exp,) = store.list_experiments()
    assert exp.state == ExperimentState.COMPLETED
    trial_ids = [t.id for t in store.list_trials(exp.id)]
    assert len(trial_ids) == TRIALS
    assert f"experiment {exp.id} · COMPLETED · random" in final["header"]
    assert f"trials: {TRIALS} of {TRIALS} created ({TRIALS} completed, 0 running)" in final["header"]

    training, validation = _chart(final, "training loss"), _chart(final, "validation val_loss")
    assert training is not None and validation is not None, [c["title"] for c in final["charts"]]
    assert sorted(t["name"] for t in validation["traces"]) == [f"trial {i}" for i in sorted(trial_ids)]
    assert [t["points"] for t in validation["traces"]] == [STEPS] * TRIALS
    assert validation["drawnLines"] == TRIALS
    assert len(training["traces"]) == TRIALS and training["drawnLines"] == TRIALS

    rows = final["rows"]
    assert [int(row[0].rstrip(" ★")) for row in rows] == trial_ids  # sorted by id
    assert [row[_column(final, "state")] for row in rows] == ["COMPLETED"] * TRIALS
    assert [row[_column(final, "batches")] for row in rows] == [str(STEPS)] * TRIALS
    assert sum(row[0].endswith("★") for row in rows) == 1  # the best trial is starred

    _check_charts_fit(page, output, wait_for, "sidebar open")
    _screenshot_docs(page, widget_box, "widget-light")
    page.keyboard.press("Control+b")  # close the file browser: the charts widen with the panel
    page.locator("#jp-left-stack").wait_for(state="hidden")
    _check_charts_fit(page, output, wait_for, "sidebar closed")

    # pick a trial in the table: its detail opens with its log tail, its line is highlighted
    picked = trial_ids[1]
    output.locator(f'.det-jupyter-table tbody tr[data-trial="{picked}"]').click()
    detail = output.locator(f'.det-trial-detail[data-trial="{picked}"]')
    detail.locator(".det-trial-log", has_text=f"trial log: step {STEPS} loss").wait_for()
    assert "load this one" in detail.inner_text() or "no checkpoint yet" in detail.inner_text()

    def picked_is_thick() -> bool:
        widths = output.evaluate(CHART_STYLE)
        return bool(widths) and all(w.get(f"trial {picked}") == 4 for w in widths)

    wait_for(picked_is_thick, 30, what=f"trial {picked}'s line drawn thick in both charts")

    # dark theme: the charts follow JupyterLab's CSS variables
    _switch_theme(page, "JupyterLab Dark")
    wait_for(lambda: _chart_backgrounds(output, dark=True), 60, what="dark chart backgrounds")
    _screenshot_docs(page, widget_box, "widget-dark")


def test_the_curves_come_back_after_a_page_reload(page: Any, wait_for: Callable[..., object]) -> None:
    """Runs after the test above (same page, same kernel): save, reload, the curves are drawn again.

    JupyterLab restores every widget model from the live kernel with one ``update_states`` reply it
    waits 4 s for; plotly's widget code travels in it once (``notebook/widget/plotly_bundle.py``),
    not once per figure, so the reply is ~5 MB, not ~20 MB. The page's console goes to
    ``widget_render-reload-console.txt``.
    """
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    output = panel.locator(".jp-Cell").nth(2).locator(".jp-OutputArea")
    before = output.evaluate(ALL_TRACES)
    page.keyboard.press("Control+s")
    page.locator(".lm-TabBar-tab.jp-mod-dirty").wait_for(state="detached")
    console: list[str] = []
    t0 = time.monotonic()
    page.on("console", lambda m: console.append(f"{time.monotonic() - t0:7.2f} {m.type}: {m.text[:2000]}"))
    page.reload()
    page.wait_for_selector("#jp-main-dock-panel", state="visible")

    def curves_back() -> bool:
        state: dict[str, Any] = {"charts": [], "rows": []}
        if output.locator(".widget-vbox").count():
            output.locator(".widget-vbox").first.scroll_into_view_if_needed()  # as a user scrolls to it
            state = dict(output.evaluate(READ_WIDGET))
        traces = output.evaluate(ALL_TRACES)
        (ARTIFACTS / "widget_render-reload.json").write_text(json.dumps([state, before, traces], indent=1))
        chart = _chart(state, "validation val_loss")
        train = _chart(state, "training loss")
        return bool(
            chart
            and train
            and [t["points"] for t in chart["traces"]] == [STEPS] * TRIALS
            and chart["drawnLines"] == TRIALS
            and len(train["traces"]) == TRIALS
            and len(state["rows"]) == TRIALS
        )

    try:
        wait_for(
            curves_back,
            90,
            interval=0.5,
            what="the curves after a page reload (see widget_render-reload.json)",
        )
        wait_for(lambda: _chart_backgrounds(output, dark=True), 60, what="dark charts after the reload")
    finally:
        shot(page, "widget_render-reloaded")
        (ARTIFACTS / "widget_render-reload-console.txt").write_text("\n".join(console) + "\n")


# Every trace of the first two charts: name, visible, showlegend, points, line width.
ALL_TRACES = """
output => Array.from(output.querySelectorAll('.js-plotly-plot')).slice(0, 2).map(gd =>
  (gd.data || []).map(t => [t.name, t.visible, t.showlegend, (t.x || []).length, t.line && t.line.width]))
"""

# Per chart: its layout size and box, the x range against the last step, where the legend items are.
CHART_FIT = """
output => Array.from(output.querySelectorAll('.js-plotly-plot')).slice(0, 2).map(gd => {
  const box = gd.getBoundingClientRect();
  const area = output.getBoundingClientRect();
  const items = Array.from(gd.querySelectorAll('.legend .traces')).map(t => t.getBoundingClientRect());
  const full = gd._fullLayout || {};
  return {
    title: (full.title && full.title.text) || '',
    width: full.width, boxWidth: box.width, parentWidth: gd.parentElement.getBoundingClientRect().width,
    right: box.right, areaRight: area.right, viewport: window.innerWidth,
    xmax: full.xaxis ? full.xaxis.range[1] : null,
    legend: items.map(r => ({left: r.left, right: r.right, top: r.top, bottom: r.bottom})),
    top: box.top, bottom: box.bottom,
  };
})
"""

CHART_STYLE = """
output => Array.from(output.querySelectorAll('.js-plotly-plot')).slice(0, 2).map(gd =>
  Object.fromEntries((gd.data || []).filter(t => (t.name || '').startsWith('trial '))
    .map(t => [t.name, (t.line && t.line.width) || 0])))
"""

CHART_BACKGROUNDS = """
output => ({
  page: getComputedStyle(document.body).getPropertyValue('--jp-layout-color0').trim(),
  light: document.body.dataset.jpThemeLight,
  charts: Array.from(output.querySelectorAll('.js-plotly-plot')).map(gd =>
    getComputedStyle(gd.querySelector('.main-svg')).backgroundColor),
})
"""


def _check_charts_fit(page: Any, output: Any, wait_for: Callable[..., object], when: str) -> None:
    """Both charts as wide as their box (not plotly's 700 px), inside the output area and the window,
    the x-axis reaching the last step, every trial's legend item inside the chart."""
    seen: list[Any] = []

    def fit() -> bool:
        charts = output.evaluate(CHART_FIT)
        seen[:] = [charts]
        (ARTIFACTS / f"widget_render-fit-{when.replace(' ', '-')}.json").write_text(
            json.dumps(charts, indent=1)
        )
        return len(charts) == 2 and all(
            abs(c["width"] - c["parentWidth"]) <= 2
            and c["right"] <= c["areaRight"] + 1
            and c["right"] <= c["viewport"]
            and c["xmax"] is not None
            and c["xmax"] >= STEPS
            and len(c["legend"]) == TRIALS
            and all(
                c["right"] - c["boxWidth"] <= item["left"]
                and item["right"] <= c["right"]
                and c["top"] <= item["top"]
                and item["bottom"] <= c["bottom"]
                for item in c["legend"]
            )
            for c in charts
        )

    wait_for(fit, 30, what=f"charts that fit their output area ({when}); see widget_render-fit-*.json")


Y_AXES = "output => Array.from(output.querySelectorAll('.js-plotly-plot')).slice(0, 2).map(gd => gd._fullLayout.yaxis.type)"


def _click_while_busy(page: Any, output: Any, wait_for: Callable[..., object]) -> None:
    """While cell 4 (``exp.wait()``) runs, a click on "log y" is handled at once (a kernel subshell) and
    the kernel's status stays Busy: JupyterLab once flipped it to Idle on the click's status messages."""
    status = page.locator("#jp-main-statusbar")
    assert "| Busy" in status.inner_text(), status.inner_text()
    for want in ("log", "linear"):
        output.locator("button.widget-toggle-button", has_text="log y").click()
        seen: list[str] = []

        def drawn(want: str = want, seen: list[str] = seen) -> bool:
            seen.append(status.inner_text())
            return bool(output.evaluate(Y_AXES) == [want, want])

        wait_for(drawn, 30, interval=0.05, what=f"both charts' y-axis {want} while a cell runs")
        deadline = time.monotonic() + 1.0  # the click's idle status may come after the redraw
        while time.monotonic() < deadline:
            seen.append(status.inner_text())
            time.sleep(0.05)
        assert all("| Busy" in text for text in seen), sorted(set(seen))


def _switch_theme(page: Any, name: str) -> None:
    page.locator(".lm-MenuBar-item", has_text="Settings").click()
    page.locator(".lm-Menu-itemLabel", has_text="Theme").first.click()
    page.get_by_role("menuitem", name=name, exact=True).click()
    page.locator(f'body[data-jp-theme-name="{name}"]').wait_for(state="attached")


def _chart_backgrounds(output: Any, *, dark: bool) -> bool:
    """Every chart's background is the page's ``--jp-layout-color0``, and dark (or light) as the theme."""
    state = output.evaluate(CHART_BACKGROUNDS)
    if not state["charts"] or state["light"] != ("false" if dark else "true"):
        return False

    def luminance(css: str) -> float:
        r, g, b = (float(x) for x in css[css.index("(") + 1 : css.index(")")].split(",")[:3])
        return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255

    return all((luminance(c) < 0.25) == dark for c in state["charts"])


def _screenshot_docs(page: Any, widget_box: Any, name: str) -> None:
    """The whole widget (a tall window for the picture, so the notebook does not clip it), then back."""
    page.set_viewport_size({"width": VIEWPORT["width"], "height": 2200})
    try:
        widget_box.screenshot(path=str(ARTIFACTS / f"widget_render-{name}.png"))
        if os.environ.get("DET_JUPYTER_DOCS_IMAGES") == "1":
            widget_box.screenshot(path=str(DOCS_IMAGES / f"{name}.png"))
    finally:
        page.set_viewport_size(VIEWPORT)


BRUSH_AREAS = """
gd => Array.from(gd.querySelectorAll('.axis-brush .background')).map(r => {
  const b = r.getBoundingClientRect();
  return [b.x, b.y, b.width, b.height];
})
"""
TABLE_ROWS = "o => Array.from(o.querySelectorAll('.det-jupyter-table tbody tr')).map(tr => tr.dataset.trial)"


def test_brushing_a_parallel_axis_filters_the_table(page: Any, wait_for: Callable[..., object]) -> None:
    """Runs after the reload (same page): drag along the metric's axis over its better half; the table keeps
    the trials inside (the best at least, never the worst); a click on the axis outside the range clears."""
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    output = panel.locator(".jp-Cell").nth(2).locator(".jp-OutputArea")
    parcoords = output.locator(".js-plotly-plot").nth(2)
    parcoords.scroll_into_view_if_needed()
    wait_for(lambda: len(parcoords.evaluate(BRUSH_AREAS)) >= 3, 30, what="the parallel axes' brush areas")
    x, y, w, h = parcoords.evaluate(BRUSH_AREAS)[-1]  # the last axis: the searcher metric, best at the bottom
    try:
        page.mouse.move(x + w / 2, y + h * 0.55)
        page.mouse.down()
        page.mouse.move(x + w / 2, y + h * 0.8, steps=8)
        page.mouse.move(x + w / 2, y + h * 0.99, steps=8)
        page.mouse.up()
        wait_for(
            lambda: 1 <= len(output.evaluate(TABLE_ROWS)) < TRIALS, 30, what="the table filtered by the brush"
        )
        output.locator("i", has_text="brushed on the parallel coordinates").wait_for()
        shot(page, "widget_render-brushed")
        page.mouse.click(x + w / 2, y + h * 0.1)  # on the axis, outside the brushed range
        wait_for(
            lambda: len(output.evaluate(TABLE_ROWS)) == TRIALS, 30, what="every trial back after clearing"
        )
    except BaseException:
        shot(page, "widget_render-brush-failure")
        raise
