"""``ExperimentWidget``: a live view of an experiment in the notebook, read from the store.

Listening and drawing are apart, as in distributed's progress bar: a
:class:`~det_jupyter.notebook.widget.model.WidgetModel` reads the store (incrementally) and says what changed;
the ``_draw_*`` methods here update only those widgets. A daemon thread calls :meth:`refresh` every
``refresh_interval`` seconds (at most 2 Hz), so the kernel is never blocked and curves grow while
other cells run; once the experiment has ended it draws the final state and stops.

What it shows: a header (state, searcher, duration and ETA, trials created of planned with each
outcome counted apart), a progress bar of the work done with its percentage, pause / activate / kill,
chart controls (metric per chart, x-axis, log y, smoothing), the training and validation charts
(:class:`~det_jupyter.notebook.widget.figures.TrialFigure`: one line per trial, hover with trial id,
hyperparameters and value; they fit their output area, follow JupyterLab's light or dark theme
and come back after a page reload), the trial table (:mod:`~det_jupyter.notebook.widget.table`: sort
by a header, click a row to pick a trial: its line is highlighted and its detail opens: hyperparameters,
checkpoints with the line that loads each, its live log tail), failures, the hyperparameter analysis
(:mod:`~det_jupyter.notebook.widget.analysis`: parallel coordinates and metric-vs-hparam scatter, drawn
once two trials have a metric; ranges brushed on the parallel axes filter the trial table), for ASHA
searches the rungs (:mod:`~det_jupyter.notebook.widget.rungs`: who was promoted or stopped where, and
why), and the load-and-predict line. :meth:`to_dataframe` / :meth:`to_csv`
export the metrics; ``_repr_mimebundle_`` carries a static HTML copy for nbviewer / GitHub.

Controls' clicks reach the kernel as comm messages; the widget routes those comms to a kernel
subshell (:mod:`det_jupyter.notebook.kernel_comm`, ipykernel >= 7.4) so they are handled while another
cell runs. The widget holds no state of its own beyond what it drew: after a kernel restart or in
another notebook, ``det_jupyter.get_experiment(ID)`` (displayed) or ``%det attach ID`` shows it again.

Example:
    >>> exp = det_jupyter.get_experiment(3)          # doctest: +SKIP
    >>> exp                                           # displays ExperimentWidget(exp)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from det_jupyter.notebook.kernel_comm import quiet_kernel_status, route_to_subshell
from det_jupyter.notebook.widget import analysis, export
from det_jupyter.notebook.widget.bridge import page_bridge
from det_jupyter.notebook.widget.figures import (
    SPARE_CHUNK,
    TrialFigure,
    base_layout,
    figure_widget,
)
from det_jupyter.notebook.widget.html import (
    errors_html,
    header_html,
    load_hint_html,
    progress_text,
    trial_detail_html,
    trial_table_html,
)
from det_jupyter.notebook.widget.model import SORT_KEYS, TRAINING, VALIDATION, Changes, WidgetModel
from det_jupyter.notebook.widget.rungs import asha_rungs, rungs_html
from det_jupyter.notebook.widget.table import table_payload, trial_table
from det_jupyter.notebook.widget.theme import LIGHT, plotly_template
from det_jupyter.states import ControlAction, ExperimentState

if TYPE_CHECKING:
    import pandas as pd

    from det_jupyter.experiment import Experiment

__all__ = ["MIN_REFRESH_INTERVAL", "ExperimentWidget", "display_experiment", "in_kernel"]

log = logging.getLogger(__name__)

MIN_REFRESH_INTERVAL = 0.5
"""Seconds between two refreshes at least (the widget reads the store and redraws at most at 2 Hz)."""
ANALYSIS_INTERVAL = 5.0
"""Seconds between two redraws of the hyperparameter analysis while the search runs."""
TABLE_INTERVAL = 2.0
"""Seconds between two redraws of the trial table while the search runs, once it has more than
``LARGE_TABLE`` trials (1,000 rows re-sent at 2 Hz were most of the kernel's CPU and comm bytes)."""
LARGE_TABLE = 100
LOG_TAIL = 40
"""Lines of the picked trial's log shown in its detail."""


def _chart_box(figure: Any, layout: Any) -> Any:
    import ipywidgets as w

    box = w.Box([figure], layout=layout)
    box.add_class("det-chart")  # the page bridge's CSS makes the figure fill it
    return box


def _descendants(widget: Any) -> list[Any]:
    """A widget and every widget inside it (boxes' children, recursively)."""
    out, pending = [], [widget]
    while pending:
        part = pending.pop()
        out.append(part)
        pending.extend(getattr(part, "children", ()))
    return out


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where widgets render); False in a terminal IPython or a script."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return getattr(get_ipython(), "kernel", None) is not None


def display_experiment(experiment: Experiment) -> None:
    """Display an experiment: the live widget in a notebook, its ``repr`` line elsewhere."""
    if in_kernel():
        from IPython.display import display

        display(ExperimentWidget(experiment))
    else:
        print(repr(experiment))


class ExperimentWidget:
    """A live widget for one experiment (see the module docstring for what it shows).

    Args:
        experiment: the :class:`~det_jupyter.experiment.Experiment` handle.
        refresh_interval: seconds between store reads (>= 0.5, i.e. at most 2 Hz).
        training_metric: the training metric to plot (default: ``loss`` or the first loss-like one).

    Attributes:
        model: the :class:`WidgetModel` it draws (read it in tests).
        training_figure, validation_figure: Plotly ``FigureWidget`` s, one trace ``trial N`` per trial
            plus a marker trace ``ASHA stop`` where early-stopped trials ended.
        parallel_figure, scatter_figure: the hyperparameter analysis (``None`` until two trials have a metric).
        figures: the two :class:`~det_jupyter.notebook.widget.figures.TrialFigure` s behind those figures.
        table: the trial table (``sort_by``, ``descending``, ``selected``: set them or click).
        detail: the picked trial's detail (HTML).
        pause_button, activate_button, kill_button, training_metric_picker, validation_metric_picker,
        x_axis, log_y, smoothing: the controls. bridge: the page bridge (size and theme).
        controls_concurrent: True when the controls' clicks are handled while the kernel runs another cell.

    Example:
        >>> w = ExperimentWidget(det_jupyter.get_experiment(3))   # doctest: +SKIP
        >>> w                                                     # shows it and starts refreshing  # doctest: +SKIP
    """

    def __init__(
        self, experiment: Experiment, *, refresh_interval: float = 0.5, training_metric: str | None = None
    ) -> None:
        import ipywidgets as w

        if refresh_interval < MIN_REFRESH_INTERVAL:
            raise ValueError(
                f"refresh_interval={refresh_interval} is below {MIN_REFRESH_INTERVAL}s: the widget reads the "
                f"store at most twice a second; pass refresh_interval >= {MIN_REFRESH_INTERVAL}"
            )
        self.experiment = experiment
        self.refresh_interval = refresh_interval
        self.model = WidgetModel(experiment.store, experiment.id, training_metric=training_metric)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._drawn_best: int | None = None
        self._final_drawn = False
        self._finished = False
        self._analysis_at = 0.0
        self._table_at = 0.0
        self._table_due = False
        self._drawn_scores: Any = None
        self._theme: dict[str, Any] = dict(LIGHT)
        self._drawing_pickers = False  # the pickers' options are being set: not a user's pick
        self._loading_shown = False  # the status line says reports are being read
        self.refreshes = 0

        self.header = w.HTML()
        self.progress = w.FloatProgress(
            min=0.0, max=1.0, description="progress", layout=w.Layout(width="300px")
        )
        self.progress_label = w.HTML()
        self.pause_button = w.Button(
            description="Pause", icon="pause", tooltip="checkpoint and stop all trials"
        )
        self.activate_button = w.Button(
            description="Activate", icon="play", tooltip="resume a paused experiment"
        )
        self.kill_button = w.Button(
            description="Kill", icon="stop", button_style="danger", tooltip="stop the experiment for good"
        )
        self.status = w.HTML()
        self.pause_button.on_click(lambda _b: self._request(ControlAction.PAUSE))
        self.activate_button.on_click(lambda _b: self._request(ControlAction.ACTIVATE))
        self.kill_button.on_click(lambda _b: self._request(ControlAction.KILL))

        small = w.Layout(width="auto")
        self.training_metric_picker = w.Dropdown(options=[], description="training", layout=small)
        self.validation_metric_picker = w.Dropdown(
            options=[self.model.validation_metric], value=self.model.validation_metric,
            description="validation", layout=small,
        )  # fmt: skip
        self.x_axis = w.Dropdown(
            options=[(self.model.time_metric, "steps"), ("seconds", "time")], value="steps",
            description="x-axis", layout=small,
        )  # fmt: skip
        self.log_y = w.ToggleButton(value=False, description="log y", tooltip="logarithmic y-axis")
        self.smoothing = w.FloatSlider(
            value=0.0, min=0.0, max=0.99, step=0.01, description="smoothing", continuous_update=False
        )
        self.training_metric_picker.observe(lambda c: self._pick_metric(TRAINING, c["new"]), names="value")
        self.validation_metric_picker.observe(
            lambda c: self._pick_metric(VALIDATION, c["new"]), names="value"
        )
        self.x_axis.observe(lambda c: self._set_view(x=c["new"]), names="value")
        self.log_y.observe(lambda c: self._set_view(log_y=bool(c["new"])), names="value")
        self.smoothing.observe(lambda c: self._set_view(smoothing=float(c["new"])), names="value")

        spares = self.model.searcher.max_trials or SPARE_CHUNK
        x_label = self.model.time_metric
        self.figures = {
            TRAINING: TrialFigure(TRAINING, training_metric, spares=spares, x_label=x_label),
            VALIDATION: TrialFigure(VALIDATION, self.model.validation_metric, spares=spares, x_label=x_label),
        }
        self.training_figure = self.figures[TRAINING].figure
        self.validation_figure = self.figures[VALIDATION].figure
        self.parallel_figure: Any = None
        self.scatter_figure: Any = None
        self.table = trial_table()
        self.table_note = w.HTML()
        self.brushed: set[int] | None = None  # trials inside the parallel coordinates' brushed ranges
        self.table.observe(lambda _c: self._redraw_table(), names=["sort_by", "descending"])
        self.table.observe(lambda c: self._pick_trial(int(c["new"])), names="selected")
        self.detail = w.HTML(layout=w.Layout(display="none"))
        self.errors = w.HTML(layout=w.Layout(display="none"))
        self.analysis_box = w.VBox()
        self.rungs = w.HTML(layout=w.Layout(display="none"))
        self.footer = w.HTML()
        self.bridge = page_bridge()
        self.bridge.observe(lambda c: self._apply_theme(dict(c["new"])), names="theme")
        chart = w.Layout(flex="1 1 420px", min_width="320px", overflow="hidden")
        self.widget = w.VBox(
            [
                self.header,
                w.HBox([self.progress, self.progress_label, self.pause_button, self.activate_button,
                        self.kill_button, self.status], layout=w.Layout(flex_flow="row wrap", align_items="center")),
                w.HBox([self.training_metric_picker, self.validation_metric_picker, self.x_axis, self.log_y,
                        self.smoothing], layout=w.Layout(flex_flow="row wrap")),
                w.HBox([_chart_box(self.training_figure, chart), _chart_box(self.validation_figure, chart)],
                       layout=w.Layout(flex_flow="row wrap", width="100%")),
                self.table_note,
                self.table,
                self.detail,
                self.errors,
                self.analysis_box,
                self.rungs,
                self.footer,
                self.bridge,
            ],
            layout=w.Layout(width="100%"),
        )  # fmt: skip
        self.widget.add_class("det-jupyter-widget")
        quiet_kernel_status(_descendants(self.widget))  # figures report each redraw: not the kernel's status
        self.controls_concurrent = route_to_subshell(
            [self.pause_button, self.activate_button, self.kill_button, self.training_metric_picker,
             self.validation_metric_picker, self.x_axis, self.log_y, self.smoothing, self.table, self.bridge]
        )  # fmt: skip
        self.refresh()

    # --- display and the refresh thread --------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The live widget, with a static HTML copy for renderers without a kernel (nbviewer, GitHub)."""
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["text/html"] = self.static_html()
        bundle["text/plain"] = repr(self.experiment)
        return bundle

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)
        self.start()

    def static_html(self) -> str:
        """What the widget shows as static HTML (charts load plotly.js from its CDN); see :mod:`.export`."""
        with self._lock:
            parts = [self.header.value, f"<div>{progress_text(self.model)}</div>",
                     trial_table_html(self.model.table_rows(), self.model.validation_metric),
                     self.errors.value, self.footer.value]  # fmt: skip
            figures = [self.training_figure, self.validation_figure]
            figures += [f for f in (self.parallel_figure, self.scatter_figure) if f is not None]
            return export.static_html(parts, figures)

    def to_dataframe(self, kind: str | None = None) -> pd.DataFrame:
        """Every report of the experiment (``trial_id, run_id, kind, steps, reported_at`` + one column per metric).

        Args:
            kind: ``"training"`` or ``"validation"`` to keep one kind.
        """
        return self.experiment.metrics(kind)

    def to_csv(self, path: str | os.PathLike[str], kind: str | None = None) -> str:
        """Write :meth:`to_dataframe` as CSV to ``path`` (atomically); returns the path."""
        return export.write_csv(self.to_dataframe(kind), path)

    def start(self) -> None:
        """Refresh in a daemon thread until the experiment ends (idempotent; no-op once it has ended)."""
        with self._lock:
            if self._finished or (self._thread is not None and self._thread.is_alive()):
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"det-jupyter-widget-exp{self.model.experiment_id}", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop refreshing (the widget keeps what it shows)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def refreshing(self) -> bool:
        """True while the background thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """Stop refreshing and close this widget's parts (they disappear from the page)."""
        self.stop()
        pending = [self.widget]
        while pending:
            part = pending.pop()
            pending.extend(getattr(part, "children", ()))
            part.close()

    def _run(self) -> None:
        # Refreshes start on a fixed rate (every ``refresh_interval`` from the previous *start*), not a
        # fixed pause after each one: a report then waits at most one interval for the read that finds
        # it, however long the refresh before took (at 1,000 trials the table and the analysis redraws
        # took up to 0.3 s, which the old pause added to every wait).
        delay = self.refresh_interval
        started = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(max(0.0, started + delay - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                break
            started = time.monotonic()
            try:
                changes = self.refresh()
            except Exception as exc:  # the store is busy or gone: keep the widget, retry more slowly
                log.warning("experiment widget refresh failed: %s", exc)
                self.status.value = f"<i>refresh failed: {exc}; retrying</i>"
                delay = min(delay * 2, 10.0)
                continue
            if self._finished:
                break
            paused_and_quiet = not changes and self.model.state == ExperimentState.PAUSED
            delay = min(delay * 2, 2.0) if paused_and_quiet else self.refresh_interval

    # --- listening -----------------------------------------------------------------------------

    def refresh(self) -> Changes:
        """Read the store and redraw what changed; safe to call from any thread (tests call it directly)."""
        with self._lock:
            changes = self.model.refresh()
            self.refreshes += 1
            best_changed = self.model.best_trial_id != self._drawn_best
            self._drawn_best = self.model.best_trial_id
            loading = self.model.loading  # a big experiment's reports are still being read, in chunks
            for kind, figure in self.figures.items():  # the curves first: report -> pixel is the goal
                figure.mark(changes.series[kind], restyle=best_changed)
                if not loading and (changes.trials or figure.pending(self.model)):
                    self._draw_figure(kind)  # (while loading, each curve would be sent again per chunk)
            if loading or self._loading_shown:
                self._loading_shown = loading
                self.status.value = (
                    f"<i>reading reports: {self.model.reports_read:,} so far; curves follow</i>"
                    if loading
                    else ""
                )
            self._draw_header()
            self._draw_controls()
            self._draw_pickers()
            if changes.trials:
                self._table_due = True
                self._draw_errors()
            now = time.monotonic()
            if self._table_due and (
                len(self.model.trials) <= LARGE_TABLE
                or self.model.terminal
                or now - self._table_at >= TABLE_INTERVAL
            ):
                self._table_due, self._table_at = False, now
                self._redraw_table()
            if self.table.selected >= 0:
                self._draw_detail()
            if changes.trials or (self.model.terminal and not self._final_drawn):
                self._draw_analysis(force=self.model.terminal)
            if self.model.terminal and not self._final_drawn:
                self._draw_final()
                self._final_drawn = True
            # done once the final state is read and every figure has caught up with it
            self._finished = self._final_drawn and not self.pending
            return changes

    @property
    def pending(self) -> bool:
        """True while reports wait to be read, or figure updates wait for the message budget (both done
        at the next refreshes)."""
        return self.model.loading or any(figure.pending(self.model) for figure in self.figures.values())

    def _request(self, action: ControlAction) -> None:
        {ControlAction.PAUSE: self.experiment.pause, ControlAction.ACTIVATE: self.experiment.activate,
         ControlAction.KILL: self.experiment.kill}[action]()  # fmt: skip
        self.status.value = f"<i>{action.value.lower()} requested at {time.strftime('%H:%M:%S')}</i>"
        self._wake.set()  # show the effect at the next refresh, not a full interval later

    # --- controls ------------------------------------------------------------------------------

    def _pick_metric(self, kind: str, metric: str | None) -> None:
        if self._drawing_pickers or not metric or metric == self.model.metrics[kind]:
            return
        with self._lock:
            self.figures[kind].mark(self.model.set_metric(kind, metric), restyle=True)
            self._draw_views()

    def _set_view(self, **view: Any) -> None:
        with self._lock:
            for figure in self.figures.values():
                figure.set_view(**view)
            self._draw_views()

    def _pick_trial(self, trial_id: int) -> None:
        with self._lock:
            selected = trial_id if trial_id >= 0 else None
            for figure in self.figures.values():
                figure.set_view(selected=selected)
            self._draw_views()
            self._draw_detail()

    def _draw_views(self) -> None:
        """Draw a view change now; what the message budget holds back follows within a second."""
        for kind in self.figures:
            self._draw_figure(kind)
        if self.pending and not self.refreshing:
            timer = threading.Timer(1.0, lambda: self._draw_views() if not self.refreshing else None)
            timer.daemon = True
            timer.start()

    def _apply_theme(self, theme: dict[str, Any]) -> None:
        with self._lock:
            self._theme = theme
            for figure in self.figures.values():
                figure.apply_theme(theme)
            template = plotly_template(theme)
            for fig in (self.parallel_figure, self.scatter_figure):
                if fig is not None:
                    fig.layout.template = template

    # --- drawing -------------------------------------------------------------------------------

    def _draw_header(self) -> None:
        self.header.value = header_html(self.model)
        self.progress.value = self.model.progress()
        self.progress_label.value = progress_text(self.model)
        styles = {ExperimentState.COMPLETED: "success", ExperimentState.ERROR: "danger",
                  ExperimentState.CANCELED: "warning"}  # fmt: skip
        self.progress.bar_style = styles.get(self.model.state, "")

    def _draw_controls(self) -> None:
        state = self.model.state
        self.pause_button.disabled = state != ExperimentState.ACTIVE
        self.activate_button.disabled = state != ExperimentState.PAUSED
        self.kill_button.disabled = state.is_terminal or state == ExperimentState.STOPPING_CANCELED

    def _draw_pickers(self) -> None:
        for kind, picker in (
            (TRAINING, self.training_metric_picker),
            (VALIDATION, self.validation_metric_picker),
        ):
            names = self.model.metric_names(kind)
            current = self.model.metrics[kind]
            if current and current not in names:
                names.insert(0, current)
            self._drawing_pickers = True
            try:
                if tuple(names) != tuple(picker.options):
                    picker.options = names
                if current and picker.value != current:
                    picker.value = current
            finally:
                self._drawing_pickers = False

    def _draw_figure(self, kind: str) -> None:
        self.figures[kind].draw(self.model)

    def _redraw_table(self) -> None:
        with self._lock:
            sort_by = str(self.table.sort_by) if self.table.sort_by in SORT_KEYS else "id"
            columns, rows = table_payload(self.model, sort_by, bool(self.table.descending), only=self.brushed)
            if columns != self.table.columns or rows != self.table.rows:
                with self.table.hold_sync():
                    self.table.columns, self.table.rows = columns, rows
            note = ""
            if self.brushed is not None:
                note = (f"<i>{len(rows)} of {len(self.model.trials)} trials: those inside the ranges brushed on "
                        "the parallel coordinates (click an axis outside its range to clear)</i>")  # fmt: skip
            if note != self.table_note.value:
                self.table_note.value = note

    def _draw_detail(self) -> None:
        trial_id = int(self.table.selected)
        if trial_id < 0:
            self.detail.layout.display = "none"
            return
        store = self.model.store
        html = trial_detail_html(
            self.model, trial_id, store.checkpoints(trial_id=trial_id), store.logs(trial_id, tail=LOG_TAIL)
        )
        if html != self.detail.value:
            self.detail.value = html
        self.detail.layout.display = None

    def _draw_errors(self) -> None:
        errors = self.model.errors()
        html = errors_html(errors)
        if html != self.errors.value:
            self.errors.value = html
        self.errors.layout.display = None if errors else "none"

    def _draw_analysis(self, *, force: bool = False) -> None:
        """Parallel coordinates and the scatter panels, at most every ``ANALYSIS_INTERVAL`` while running."""
        scores = [(t.id, t.best_validation, t.state) for t in self.model.trials]
        now = time.monotonic()
        if scores == self._drawn_scores or (not force and now - self._analysis_at < ANALYSIS_INTERVAL):
            return
        self._draw_rungs()
        parallel = analysis.parallel_data(self.model)
        if parallel is None:
            return
        self._analysis_at, self._drawn_scores = now, scores
        self._draw_parallel(parallel)
        self._draw_scatter(analysis.scatter_data(self.model))
        children = tuple(f for f in (self.parallel_figure, self.scatter_figure) if f is not None)
        if children != self.analysis_box.children:
            self.analysis_box.children = children

    def _draw_parallel(self, parallel: dict[str, Any]) -> None:
        import plotly.graph_objects as go

        title = (
            f"hyperparameters vs {self.model.validation_metric} (red: best trial {self.model.best_trial_id})"
        )
        if self.parallel_figure is None:
            self.parallel_figure = figure_widget(
                data=[go.Parcoords(**parallel)],
                layout=base_layout(title, self._theme, margin={"l": 60, "r": 60, "t": 95, "b": 30}),
            )
            self.parallel_figure.data[0].on_change(self._on_brush, "dimensions")
            quiet_kernel_status([self.parallel_figure])
            return
        dimensions = analysis.keep_brushes(parallel["dimensions"], self.parallel_figure.data[0].dimensions)
        with self.parallel_figure.batch_update():
            self.parallel_figure.data[0].dimensions = dimensions
            self.parallel_figure.data[0].line = parallel["line"]
            self.parallel_figure.layout.title.text = title

    def _on_brush(self, _trace: Any, dimensions: Any) -> None:
        """A range brushed (or cleared) on the parallel coordinates: the table keeps the trials inside."""
        with self._lock:
            brushed = analysis.brushed_trials(dimensions)
            if brushed != self.brushed:
                self.brushed = brushed
                self._redraw_table()

    def _draw_rungs(self) -> None:
        rungs = asha_rungs(self.model)
        html = rungs_html(rungs or [], self.model.validation_metric, self.model.time_metric,
                          self.model.best_trial_id)  # fmt: skip
        if html != self.rungs.value:
            self.rungs.value = html
        self.rungs.layout.display = None if html else "none"

    def _draw_scatter(self, panels: list[dict[str, Any]]) -> None:
        import plotly.graph_objects as go

        if not panels:
            return
        marker = {"size": 9, "color": "#636efa"}
        if self.scatter_figure is None or len(self.scatter_figure.data) != len(panels):
            from plotly.subplots import make_subplots

            cols = min(4, len(panels))
            rows = -(-len(panels) // cols)
            fig = make_subplots(rows=rows, cols=cols, shared_yaxes=True, subplot_titles=[p["name"] for p in panels],
                                horizontal_spacing=0.04, vertical_spacing=0.18)  # fmt: skip
            for i, p in enumerate(panels):
                fig.add_trace(go.Scatter(mode="markers", showlegend=False, hoverinfo="text", marker=marker),
                              row=i // cols + 1, col=i % cols + 1)  # fmt: skip
                fig.update_xaxes(type=p["axis"], row=i // cols + 1, col=i % cols + 1)
            layout = fig.to_dict()["layout"]
            layout.update(base_layout(f"{self.model.validation_metric} by hyperparameter", self._theme,
                                      height=max(260, 240 * rows), showlegend=False))  # fmt: skip
            layout.update(
                {k: v for k, v in fig.to_dict()["layout"].items() if k.startswith(("xaxis", "yaxis"))}
            )
            layout["yaxis"] = {**layout.get("yaxis", {}), "title": {"text": self.model.validation_metric}}
            self.scatter_figure = figure_widget(data=fig.to_dict()["data"], layout=layout)
            quiet_kernel_status([self.scatter_figure])
        with self.scatter_figure.batch_update():
            for trace, p in zip(self.scatter_figure.data, panels, strict=True):
                sizes = [16 if i == p["best"] else 9 for i in range(len(p["x"]))]
                colors = ["#EF553B" if i == p["best"] else "#636efa" for i in range(len(p["x"]))]
                trace.x, trace.y, trace.hovertext = p["x"], p["y"], p["text"]
                trace.marker.size, trace.marker.color = sizes, colors

    def _draw_final(self) -> None:
        has_checkpoint = bool(self.model.store.checkpoints(experiment_id=self.model.experiment_id))
        self.footer.value = load_hint_html(self.model, has_checkpoint)
