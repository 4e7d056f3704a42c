"""``ExperimentWidget``: a live view of an experiment in the notebook, read from the store.

Listening and drawing are apart, as in distributed's progress bar: a
:class:`~det_jupyter.notebook.widget.model.WidgetModel` reads the store (incrementally) and says what changed;
the ``_draw_*`` methods here update only those widgets. A daemon thread calls :meth:`refresh` every
``refresh_interval`` seconds (at most 2 Hz), so the kernel is never blocked and curves grow while
other cells run; once the experiment has ended it draws the final state (with the
parallel-coordinates plot and the load-and-predict line) and stops.

Figures are Plotly ``FigureWidget`` s (:class:`~det_jupyter.notebook.widget.figures.TrialFigure`), one line
per trial (trace ``trial N``): at most one batched update per figure per refresh, whole ``x``/``y``
arrays assigned once inside ``batch_update()``, and at most 8 comm messages per figure per second.

Buttons: pause / activate / kill write control requests into the store (``exp.pause()`` ...), which
the controller acts on wherever it runs. Their clicks reach the kernel as comm messages; to have
them handled while the kernel is busy with another cell, the widget routes its controls' comms to a
kernel subshell (:mod:`det_jupyter.notebook.kernel_comm`, ipykernel >= 7.4). Elsewhere a click waits for
the running cell to end; ``%det kill ID`` in another notebook or ``det-jupyter experiment kill ID``
in a terminal act at once.

The widget holds no state of its own beyond what it drew: after a kernel restart or in another
notebook, ``det_jupyter.get_experiment(ID)`` (displayed) or ``%det attach ID`` shows it again.

Example:
    >>> exp = det_jupyter.get_experiment(3)          # doctest: +SKIP
    >>> exp                                           # displays ExperimentWidget(exp)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from det_jupyter.notebook.widget.figures import SPARE_CHUNK, TrialFigure, figure_widget
from det_jupyter.notebook.widget.html import errors_html, header_html, load_hint_html, trial_table_html
from det_jupyter.notebook.widget.model import SORT_KEYS, TRAINING, VALIDATION, Changes, WidgetModel
from det_jupyter.states import ControlAction, ExperimentState

if TYPE_CHECKING:
    from det_jupyter.experiment import Experiment

__all__ = ["MIN_REFRESH_INTERVAL", "ExperimentWidget", "display_experiment", "in_kernel"]

log = logging.getLogger(__name__)

MIN_REFRESH_INTERVAL = 0.5
"""Seconds between two refreshes at least (the widget reads the store and redraws at most at 2 Hz)."""


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
    """A live widget for one experiment: header, progress, curves, trial table, errors, controls.

    Args:
        experiment: the :class:`~det_jupyter.experiment.Experiment` handle.
        refresh_interval: seconds between store reads (>= 0.5, i.e. at most 2 Hz).
        training_metric: the training metric to plot (default: ``loss`` or the first loss-like one).

    Attributes:
        model: the :class:`WidgetModel` it draws (read it in tests).
        training_figure, validation_figure: Plotly ``FigureWidget`` s, one trace ``trial N`` per trial
            plus a marker trace ``ASHA stop`` where early-stopped trials ended.
        parallel_figure: the parallel-coordinates ``FigureWidget`` once the experiment has ended.
        figures: the two :class:`~det_jupyter.notebook.widget.figures.TrialFigure` s behind those figures.
        pause_button, activate_button, kill_button, sort_by, descending: the controls.
        controls_concurrent: True when the controls' clicks are handled while the kernel runs another
            cell (their comms go to a kernel subshell, see :mod:`det_jupyter.notebook.kernel_comm`).

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
        self.refreshes = 0

        self.header = w.HTML()
        self.progress = w.FloatProgress(
            min=0.0, max=1.0, description="progress", layout=w.Layout(width="320px")
        )
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

        spares = self.model.searcher.max_trials or SPARE_CHUNK
        self.figures = {
            TRAINING: TrialFigure(TRAINING, training_metric, spares=spares),
            VALIDATION: TrialFigure(VALIDATION, self.model.validation_metric, spares=spares),
        }
        self.training_figure = self.figures[TRAINING].figure
        self.validation_figure = self.figures[VALIDATION].figure
        self.parallel_figure: Any = None
        labels = {
            "id": "trial id",
            "state": "state",
            "steps": "steps",
            "best": "best metric",
            "restarts": "restarts",
        }
        self.sort_by = w.Dropdown(
            options=[(labels[k], k) for k in SORT_KEYS],
            value="id",
            description="sort by",
            layout=w.Layout(width="220px"),
        )
        self.descending = w.ToggleButton(value=False, description="descending", icon="sort-amount-desc")
        self.sort_by.observe(lambda _c: self._redraw_table(), names="value")
        self.descending.observe(lambda _c: self._redraw_table(), names="value")
        self.table = w.HTML()
        self.errors = w.HTML(layout=w.Layout(display="none"))
        self.parallel_box = w.VBox()
        self.footer = w.HTML()
        half = w.Layout(width="50%")
        self.widget = w.VBox(
            [
                self.header,
                w.HBox(
                    [self.progress, self.pause_button, self.activate_button, self.kill_button, self.status]
                ),
                w.HBox(
                    [w.Box([self.training_figure], layout=half), w.Box([self.validation_figure], layout=half)]
                ),
                w.HBox([self.sort_by, self.descending]),
                self.table,
                self.errors,
                self.parallel_box,
                self.footer,
            ]
        )
        from det_jupyter.notebook.kernel_comm import route_to_subshell

        self.controls_concurrent = route_to_subshell(
            [self.pause_button, self.activate_button, self.kill_button, self.sort_by, self.descending]
        )
        self.refresh()

    # --- display and the refresh thread --------------------------------------------------------

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
        self.start()

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
        delay = self.refresh_interval
        while not self._stop.is_set():
            self._wake.wait(delay)
            self._wake.clear()
            if self._stop.is_set():
                break
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
            self._draw_header()
            self._draw_controls()
            best_changed = self.model.best_trial_id != self._drawn_best
            self._drawn_best = self.model.best_trial_id
            for kind, figure in self.figures.items():
                figure.mark(changes.series[kind], restyle=best_changed)
                if changes.trials or figure.pending(self.model):
                    self._draw_figure(kind)
            if changes.trials:
                self._redraw_table()
                self._draw_errors()
            if self.model.terminal and not self._final_drawn:
                self._draw_final()
                self._final_drawn = True
            # done once the final state is read and every figure has caught up with it
            self._finished = self._final_drawn and not self.pending
            return changes

    @property
    def pending(self) -> bool:
        """True while some figure updates wait for the message budget (drawn at the next refresh)."""
        return any(figure.pending(self.model) for figure in self.figures.values())

    def _request(self, action: ControlAction) -> None:
        {ControlAction.PAUSE: self.experiment.pause, ControlAction.ACTIVATE: self.experiment.activate,
         ControlAction.KILL: self.experiment.kill}[action]()  # fmt: skip
        self.status.value = f"<i>{action.value.lower()} requested at {time.strftime('%H:%M:%S')}</i>"
        self._wake.set()  # show the effect at the next refresh, not a full interval later

    # --- drawing -------------------------------------------------------------------------------

    def _draw_header(self) -> None:
        self.header.value = header_html(self.model)
        self.progress.value = self.model.experiment.progress
        styles = {ExperimentState.COMPLETED: "success", ExperimentState.ERROR: "danger",
                  ExperimentState.CANCELED: "warning"}  # fmt: skip
        self.progress.bar_style = styles.get(self.model.state, "")

    def _draw_controls(self) -> None:
        state = self.model.state
        self.pause_button.disabled = state != ExperimentState.ACTIVE
        self.activate_button.disabled = state != ExperimentState.PAUSED
        self.kill_button.disabled = state.is_terminal or state == ExperimentState.STOPPING_CANCELED

    def _draw_figure(self, kind: str) -> None:
        self.figures[kind].draw(self.model)

    def _redraw_table(self) -> None:
        with self._lock:
            rows = self.model.table_rows(str(self.sort_by.value), bool(self.descending.value))
            html = trial_table_html(rows, self.model.validation_metric)
            if html != self.table.value:
                self.table.value = html

    def _draw_errors(self) -> None:
        errors = self.model.errors()
        html = errors_html(errors)
        if html != self.errors.value:
            self.errors.value = html
        self.errors.layout.display = None if errors else "none"

    def _draw_final(self) -> None:
        import plotly.graph_objects as go

        dims = self.model.parallel_coordinates()
        if dims and self.parallel_figure is None:
            metric = dims[-1].values
            line = {"color": list(metric), "colorscale": "Viridis", "showscale": True,
                    "reversescale": self.model.smaller_is_better}  # fmt: skip
            dimensions: list[dict[str, Any]] = []
            for d in dims:
                dim: dict[str, Any] = {"label": d.label, "values": list(d.values)}
                if d.tickvals is not None and d.ticktext is not None:
                    dim.update(tickvals=list(d.tickvals), ticktext=list(d.ticktext))
                dimensions.append(dim)
            self.parallel_figure = figure_widget(
                data=[go.Parcoords(line=line, dimensions=dimensions)],
                layout={
                    "title": {"text": f"hyperparameters vs {self.model.validation_metric}"},
                    "height": 360,
                },
            )
            self.parallel_box.children = (self.parallel_figure,)
        has_checkpoint = bool(self.model.store.checkpoints(experiment_id=self.model.experiment_id))
        self.footer.value = load_hint_html(self.model, has_checkpoint)
