"""``TrialFigure``: a Plotly ``FigureWidget`` with one line per trial, kept in step with a ``WidgetModel``.

Drawing rules (see ENVIRONMENT.md for plotly 7's ``batch_update`` pitfall):

- one *figure operation* per refresh: every changed trace gets its whole ``x``/``y`` assigned once
  inside ``batch_update()``, built beforehand (nothing is read inside the block);
- a figure operation is one comm message (plotly's four merged: ``PersistentFigureWidget``); a
  figure spends at most ``OPS_PER_SECOND`` of them per rolling second. What does not fit waits for
  the next refresh;
- new trials take *spare* traces (empty, unnamed, out of the legend) that were part of the figure's
  initial state, so a new line is named and filled in the same batched update as the others;
  only when the spares run out is a chunk of new ones added (one more operation);
- the best trial is drawn thick and opaque, the others thin; a trial picked in the table is drawn
  thick and the others faded; an ``ASHA stop`` marker trace shows where early-stopped trials ended;
- at scale (issue 12: 1,000 trials x 1,000 points) every trace is downsampled (min/max per bucket,
  first and newest point kept: :func:`~det_jupyter.notebook.widget.model.downsample`) to
  ``MAX_POINTS``; beyond ``TOP_K`` trials only the ``TOP_K`` best by the searcher metric keep that
  resolution and full colour, the rest are thinned to ``THIN_POINTS`` and faded; a figure made for
  ``WEBGL_TRIALS`` trials or more draws WebGL traces (``scattergl``), which the browser renders
  without one SVG path per line;
- hovering a point names the trial, its hyperparameters, the x value with its unit and the metric.

Figures fit their output area: no fixed width (``autosize`` with Plotly's ``responsive`` config; the
page bridge tells them when the area changes size), the legend below the plot. Their full widget
state always carries the figure as drawn now (:func:`figure_widget`), so a page reload (F5) or a
second view shows the curves, not the empty figure they started as.

Example:
    >>> fig = TrialFigure("validation", "val_loss", spares=4)      # doctest: +SKIP
    >>> fig.mark({trial_id}); fig.draw(model)                      # doctest: +SKIP
"""

from __future__ import annotations

import functools
import html
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from det_jupyter.notebook.widget.html import format_value
from det_jupyter.notebook.widget.model import TRAINING, WidgetModel, downsample, flatten_hparams, smooth
from det_jupyter.notebook.widget.plotly_bundle import figure_esm, plotly_library
from det_jupyter.notebook.widget.theme import LIGHT, PALETTE, plotly_template, theme_colors

__all__ = [
    "MAX_POINTS",
    "OPS_PER_SECOND",
    "STOP_TRACE",
    "THIN_POINTS",
    "TOP_K",
    "WEBGL_TRIALS",
    "FigureView",
    "TrialFigure",
    "figure_widget",
]

OPS_PER_SECOND = 4
"""Figure operations a figure may send per rolling second: an update is one comm message here (plotly 7
sends 4: :func:`figure_widget`), adding spare traces 4 (rare: one chunk per draw at most), so a second
holds at most 7 messages; refreshes at 2 Hz never wait for this budget."""

STOP_TRACE = "ASHA stop"
SPARE_CHUNK = 8
MAX_INITIAL_SPARES = 32
WIDTH, BEST_WIDTH, OPACITY, FADED = 1.5, 4.0, 0.55, 0.15
THIN_WIDTH, THIN_OPACITY = 1.0, 0.2
MAX_POINTS = 500
"""Points per trace at most (downsampled beyond: a 1,000-point curve in ~500 keeps its shape on screen)."""
THIN_POINTS = 100
"""Points per trace of a trial outside the top ``TOP_K`` when there are more trials than that."""
TOP_K = 10
"""Trials drawn at full resolution and colour when there are more (the best by the searcher metric)."""
WEBGL_TRIALS = 50
"""A figure made for this many trials or more draws ``scattergl`` traces (WebGL) instead of SVG."""
HEIGHT = 360

ANYWIDGET_MISSING = (
    "the experiment widget draws Plotly FigureWidgets, which need the `anywidget` package "
    "(a det_jupyter dependency that is missing here): pip install anywidget"
)
PLOTLY_CONFIG = {"responsive": True, "displaylogo": False}
"""Plotly's ``config`` for every figure: ``responsive`` resizes it with its output area."""


@functools.cache
def _figure_class() -> type:
    """``go.FigureWidget`` whose *full* state is the figure as it is now (made once, on first use)."""
    import plotly.graph_objects as go

    class PersistentFigureWidget(go.FigureWidget):  # type: ignore[misc]
        """A ``FigureWidget`` that a page reload redraws as it is, not as it was built.

        Its ``_esm`` is a small loader of plotly's widget code, which the page gets once per kernel
        (:mod:`det_jupyter.notebook.widget.plotly_bundle`), not ~5 MB of it per figure.

        Plotly syncs ``_widget_data`` / ``_widget_layout`` only at construction and sends every later
        change as a one-off restyle / relayout message. A reloaded page asks the kernel for each
        widget's full state and got the construction-time figure (empty traces, the first title).
        Here a full-state request (``key=None``: a reload, a new view) carries the current figure.
        """

        _esm = figure_esm()

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            config: dict[str, Any] = dict(getattr(self, "_config", None) or {})  # what plotly's __init__ set
            self._config = {**config, **PLOTLY_CONFIG}

        @staticmethod
        def _remove_overlapping_props(
            input_data: Any, delta_data: Any, prop_path: tuple[Any, ...] = ()
        ) -> list[Any]:
            # After each render the page reports the figure's computed defaults, and plotly then drops
            # every property we set whose value equals its default ("name": "trial 1" once plotly.js
            # shows it so) from ``_data`` / ``_layout`` and the page model, keeping it only in
            # ``_prop_defaults``. The full state below is built from ``_data``: a reload then drew
            # unnamed traces without their widths. Keep what was set.
            return []

        def _send_update_msg(
            self,
            restyle_data: Any,
            relayout_data: Any,
            trace_indexes: Any = None,
            source_view_id: Any = None,
        ) -> None:
            # plotly sends one update as 4 comm messages (each edit id, the update, then the update
            # trait reset to None); here it is one message carrying the three, and the reset is not
            # sent (the page applies an update on its change and reads the edit ids from the update)
            if self._holding_sync:  # inside an outer hold_sync only the final state is sent: plotly's way
                super()._send_update_msg(restyle_data, relayout_data, trace_indexes, source_view_id)
                return
            trace_indexes = self._normalize_trace_indexes(trace_indexes)
            with self.hold_sync():
                self._last_trace_edit_id += 1
                self._last_layout_edit_id += 1
                self._trace_edit_in_process = True
                self._layout_edit_in_process = True
                self._py2js_update = {
                    "style_data": restyle_data,
                    "layout_data": relayout_data,
                    "style_traces": trace_indexes,
                    "trace_edit_id": self._last_trace_edit_id,
                    "layout_edit_id": self._last_layout_edit_id,
                    "source_view_id": source_view_id,
                }
            self._trait_values["_py2js_update"] = None  # as plotly leaves it, without a message

        def get_state(self, key: Any = None, drop_defaults: bool = False) -> dict[str, Any]:
            state: dict[str, Any] = super().get_state(key, drop_defaults)
            if key is None and "_layout_obj" in self.__dict__:  # (plotly opens the comm before building them)
                for name, value in (
                    ("_widget_data", self._data),
                    ("_widget_layout", self._layout_obj._props),
                ):
                    to_json = self.trait_metadata(name, "to_json", self._trait_to_json)
                    state[name] = to_json(value, self)
            return state

    return PersistentFigureWidget


def figure_widget(**kwargs: Any) -> Any:
    """A Plotly ``FigureWidget(**kwargs)`` that fits its output area and survives a page reload.

    Since plotly 6 a ``FigureWidget`` is an anywidget; without the package plotly fails late and
    vaguely, so the widget checks first.

    Raises:
        ImportError: ``anywidget`` is missing; the message says ``pip install anywidget``.

    Example:
        >>> fig = figure_widget(layout={"height": 300})           # doctest: +SKIP
        >>> fig.get_state()["_widget_layout"]["height"]           # doctest: +SKIP
        300
    """
    try:
        import anywidget  # noqa: F401  # imported only to check it is there (see the docstring)
    except ImportError as exc:
        raise ImportError(ANYWIDGET_MISSING) from exc
    plotly_library()  # plotly's code reaches the page first (once per kernel), then the figure
    return _figure_class()(**kwargs)


def base_layout(title: str, theme: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """The layout every chart starts from: themed, no fixed width, the legend below the plot."""
    layout: dict[str, Any] = {
        "template": plotly_template(theme or LIGHT),
        "title": {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 14}},
        "autosize": True,
        "height": HEIGHT,
        "margin": {"l": 55, "r": 15, "t": 40, "b": 40, "autoexpand": True},
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": -0.2, "yanchor": "top",
                   "font": {"size": 10}},
    }  # fmt: skip
    layout.update(extra)
    return layout


@dataclass
class FigureView:
    """How the curves are shown: what the x-axis is, a log y-axis, smoothing, the picked trial."""

    x: str = "steps"
    log_y: bool = False
    smoothing: float = 0.0
    selected: int | None = None


def _hover(model: WidgetModel, trial_id: int, metric: str, x_label: str) -> str:
    row = model.trial(trial_id)
    hparams = flatten_hparams(row.hparams) if row else {}
    lines = [f"<b>trial {trial_id}</b>"]
    lines += [f"{_text(k)}: {_text(_short(v))}" for k, v in list(hparams.items())[:8]]
    lines += [f"{_text(x_label)}: %{{x}}", f"{_text(metric)}: %{{y:.4g}}"]
    return "<br>".join(lines) + "<extra></extra>"


def _text(value: str) -> str:
    """Text for a hover template: HTML-escaped, and no ``%{`` that Plotly would read as a placeholder."""
    return html.escape(value).replace("%{", "% {")


def _short(value: Any) -> str:
    return format_value(value)[:40]


class TrialFigure:
    """One metric of every trial: a ``FigureWidget`` and what is still to be drawn on it.

    Not thread-safe: the owning widget calls :meth:`mark`, :meth:`set_view` and :meth:`draw` under its lock.

    Args:
        kind: ``training`` or ``validation``: which reports it plots.
        metric: the metric's name (``None`` for a training metric not known yet; set at the first draw).
        spares: empty traces to start with (about the number of trials expected).
        x_label: the unit of steps (the searcher's time metric: batches, epochs, records).
    """

    def __init__(
        self,
        kind: str,
        metric: str | None,
        *,
        spares: int = SPARE_CHUNK,
        x_label: str = "batches",
        webgl: bool | None = None,
    ) -> None:
        import plotly.graph_objects as go

        self.kind = kind
        self.webgl = spares >= WEBGL_TRIALS if webgl is None else webgl
        self._drawn_top: set[int] = set()
        self.x_label = x_label
        self.view = FigureView()
        self.theme: dict[str, Any] = dict(LIGHT)
        self.traces: dict[int, Any] = {}  # trial id -> its trace
        self._drawn_metric = metric
        self._drawn_axes: tuple[str, bool] = ("steps", False)
        self._pending: set[int] = set()
        self._restyle = False
        self._drawn_stops: Any = ([], [], [])  # what the stop-marker trace shows: none yet
        self._ops: deque[float] = deque()
        stop = go.Scatter(
            x=[], y=[], name=STOP_TRACE, mode="markers", hoverinfo="text",
            marker={"symbol": "x", "size": 11, "color": LIGHT["font"]},
        )  # fmt: skip
        count = max(1, min(spares, MAX_INITIAL_SPARES))
        self.figure = figure_widget(
            data=[stop, *(self._spare() for _ in range(count))],
            layout=base_layout(
                self._title(metric),
                xaxis={"title": {"text": x_label}},
                yaxis={"title": {"text": metric or ""}},
            ),
        )
        self._spares: list[Any] = list(self.figure.data[1:])

    def _title(self, metric: str | None) -> str:
        return f"{self.kind} {metric or ''}".strip()

    def _axis_label(self) -> str:
        return "seconds since start" if self.view.x == "time" else self.x_label

    def _spare(self) -> Any:
        import plotly.graph_objects as go

        mode = "lines" if self.kind == TRAINING else "lines+markers"
        trace = go.Scattergl if self.webgl else go.Scatter
        return trace(x=[], y=[], name="", mode=mode, showlegend=False, hoverinfo="skip")

    def mark(self, trial_ids: set[int], *, restyle: bool = False) -> None:
        """Note trials whose series changed (and whether the best trial changed)."""
        self._pending |= trial_ids
        self._restyle = self._restyle or restyle

    def set_view(self, **changes: Any) -> None:
        """Change how curves are shown (``x``, ``log_y``, ``smoothing``, ``selected``); drawn at the next draw."""
        for name, value in changes.items():
            setattr(self.view, name, value)
        self._pending |= set(self.traces)
        self._restyle = True

    def apply_theme(self, theme: dict[str, Any]) -> None:
        """Restyle the figure for the page's theme now (one relayout; the theme changes rarely)."""
        self.theme = dict(theme)
        template = plotly_template(theme)
        with self.figure.batch_update():
            self.figure.layout.template = template
            self.figure.data[0].marker.color = theme_colors(theme)["font"]

    def pending(self, model: WidgetModel) -> bool:
        """True while something is still to be drawn (e.g. held back by the message budget)."""
        return bool(self._pending) or self._restyle or self._metric(model) != self._drawn_metric

    def _metric(self, model: WidgetModel) -> str | None:
        return model.metrics[self.kind]

    def _style(self, trial_id: int, best: int | None, top: set[int] | None) -> tuple[float, float]:
        selected = self.view.selected
        if selected is not None and selected in self.traces:
            return (BEST_WIDTH, 1.0) if trial_id == selected else (WIDTH, FADED)
        if trial_id == best:
            return BEST_WIDTH, 1.0
        return (WIDTH, OPACITY) if top is None or trial_id in top else (THIN_WIDTH, THIN_OPACITY)

    def _top(self, model: WidgetModel) -> set[int] | None:
        """The trials drawn in full (``None``: all of them, there are ``TOP_K`` or fewer)."""
        if len(model.trials) <= TOP_K:
            return None
        return model.top_trials(TOP_K)

    def _points(self, model: WidgetModel, trial_id: int, top: set[int] | None) -> tuple[Any, Any]:
        xs, ys = model.trial_series(self.kind, trial_id, x=self.view.x)
        ys = smooth(ys, self.view.smoothing) if self.view.smoothing else ys
        full = top is None or trial_id in top or trial_id == self.view.selected
        xs, ys = downsample(xs, ys, MAX_POINTS if full else THIN_POINTS)
        # numpy arrays: plotly checks them in one step (a list is checked value by value, most of a
        # draw's time at scale) and sends float ones as binary buffers (8 bytes a value, not JSON text)
        return np.asarray(xs), np.asarray(ys, dtype=float)

    def draw(self, model: WidgetModel) -> None:
        """Bring the figure up to date with ``model`` within the message budget."""
        now = time.monotonic()
        while self._ops and self._ops[0] <= now - 1.0:
            self._ops.popleft()
        free = OPS_PER_SECOND - len(self._ops)
        fig, traces, spares, best = self.figure, self.traces, self._spares, model.best_trial_id
        new = sorted(t for t in self._pending if t not in traces)
        if len(new) > len(spares) and free > 0:  # out of spare traces: add a chunk of them
            first = len(fig.data)
            fig.add_traces([self._spare() for _ in range(max(SPARE_CHUNK, len(new) - len(spares)))])
            spares.extend(fig.data[first:])
            self._ops.append(now)
            free -= 1
        top = self._top(model)
        if (top or set()) != self._drawn_top:  # trials in or out of the top k: new resolution and style
            self._pending |= ((top or set()) ^ self._drawn_top) & set(traces)
            self._restyle = True
        stops = model.stopped_points(self.kind, x=self.view.x)
        stops_changed = stops != self._drawn_stops
        metric = self._metric(model)
        axes = (self.view.x, self.view.log_y)
        relabel = metric != self._drawn_metric or axes != self._drawn_axes
        if free <= 0 or not (self._pending or self._restyle or stops_changed or relabel):
            return
        fresh = set(new[: len(spares)])  # new trials that take a spare trace now
        for trial_id in sorted(fresh):
            traces[trial_id] = spares.pop(0)
        changed = sorted(t for t in self._pending if t in traces)
        updates = [(traces[t], t, *self._points(model, t, top)) for t in changed]
        styles = [
            (trace, *self._style(t, best, top)) for t, trace in traces.items() if self._restyle or t in fresh
        ]
        hovers = [
            (traces[t], _hover(model, t, metric or "", self._axis_label()))
            for t in traces
            if t in fresh or relabel
        ]
        stop_trace = fig.data[0]
        with fig.batch_update():  # everything is built above; only assignments in here
            for trace, trial_id, xs, ys in updates:
                trace.x, trace.y = xs, ys
                if trial_id in fresh:
                    trace.name = trace.legendgroup = f"trial {trial_id}"
                    trace.showlegend = True
                    trace.line.color = PALETTE[trial_id % len(PALETTE)]
            for trace, hover in hovers:
                trace.hovertemplate, trace.hoverinfo = hover, None
            for trace, width, opacity in styles:
                trace.line.width, trace.opacity = width, opacity
            if stops_changed:
                stop_trace.x, stop_trace.y = stops[0], stops[1]
                stop_trace.hovertext = [f"trial {t} stopped early" for t in stops[2]]
            if relabel:
                fig.layout.title.text = self._title(metric)
                fig.layout.yaxis.title.text = metric or ""
                fig.layout.yaxis.type = "log" if self.view.log_y else "linear"
                fig.layout.xaxis.title.text = self._axis_label()
        self._ops.append(now)
        self._pending -= set(changed)
        self._restyle = False
        self._drawn_stops = stops
        self._drawn_top = top or set()
        self._drawn_metric = metric
        self._drawn_axes = axes
