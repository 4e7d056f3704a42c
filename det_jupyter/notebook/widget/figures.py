"""``TrialFigure``: a Plotly ``FigureWidget`` with one line per trial, kept in step with a ``WidgetModel``.

Drawing rules (see ENVIRONMENT.md for plotly 7's ``batch_update`` pitfall):

- one *figure operation* per refresh: every changed trace gets its whole ``x``/``y`` assigned once
  inside ``batch_update()``, built beforehand (nothing is read inside the block);
- a figure operation costs plotly 4 comm messages; a figure spends at most ``OPS_PER_SECOND``
  of them per rolling second (<= 8 messages/s). What does not fit waits for the next refresh;
- new trials take *spare* traces (empty, unnamed, out of the legend) that were part of the figure's
  initial state, so a new line is named and filled in the same batched update as the others;
  only when the spares run out is a chunk of new ones added (one more operation);
- the best trial is drawn thick and opaque, the others thin; an ``ASHA stop`` marker trace shows
  where early-stopped trials ended.

Example:
    >>> fig = TrialFigure("validation", "val_loss", spares=4)      # doctest: +SKIP
    >>> fig.mark({trial_id}); fig.draw(model)                      # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from det_jupyter.notebook.widget.model import TRAINING, WidgetModel

__all__ = ["OPS_PER_SECOND", "STOP_TRACE", "TrialFigure", "figure_widget"]

OPS_PER_SECOND = 2
"""Figure operations (4 comm messages each in plotly 7) a figure may send per rolling second."""

STOP_TRACE = "ASHA stop"
SPARE_CHUNK = 8
MAX_INITIAL_SPARES = 32
PALETTE = ("#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3", "#FF6692", "#B6E880",
           "#FF97FF", "#FECB52")  # fmt: skip
WIDTH, BEST_WIDTH, OPACITY = 1.5, 4.0, 0.55

ANYWIDGET_MISSING = (
    "the experiment widget draws Plotly FigureWidgets, which need the `anywidget` package "
    "(a det_jupyter dependency that is missing here): pip install anywidget"
)


def figure_widget(**kwargs: Any) -> Any:
    """A Plotly ``go.FigureWidget(**kwargs)``, failing clearly when ``anywidget`` is not installed.

    Since plotly 6 a ``FigureWidget`` is an anywidget; without the package plotly fails late and
    vaguely, so the widget checks first.

    Raises:
        ImportError: ``anywidget`` is missing; the message says ``pip install anywidget``.

    Example:
        >>> fig = figure_widget(layout={"height": 300})           # doctest: +SKIP
        >>> type(fig).__name__                                     # doctest: +SKIP
        'FigureWidget'
    """
    try:
        import anywidget  # noqa: F401  # imported only to check it is there (see the docstring)
    except ImportError as exc:
        raise ImportError(ANYWIDGET_MISSING) from exc
    import plotly.graph_objects as go

    return go.FigureWidget(**kwargs)


class TrialFigure:
    """One metric of every trial: a ``FigureWidget`` and what is still to be drawn on it.

    Not thread-safe: the owning widget calls :meth:`mark` and :meth:`draw` under its lock.

    Args:
        kind: ``training`` or ``validation``: which reports it plots.
        metric: the metric's name (``None`` for a training metric not known yet; set at the first draw).
        spares: empty traces to start with (about the number of trials expected).
    """

    def __init__(self, kind: str, metric: str | None, *, spares: int = SPARE_CHUNK) -> None:
        import plotly.graph_objects as go

        self.kind = kind
        self.traces: dict[int, Any] = {}  # trial id -> its trace
        self._drawn_metric = metric
        self._pending: set[int] = set()
        self._restyle = False
        self._drawn_stops: Any = ([], [], [])  # what the stop-marker trace shows: none yet
        self._ops: deque[float] = deque()
        stop = go.Scatter(
            x=[], y=[], name=STOP_TRACE, mode="markers", hoverinfo="text",
            marker={"symbol": "x", "size": 11, "color": "black"},
        )  # fmt: skip
        count = max(1, min(spares, MAX_INITIAL_SPARES))
        self.figure = figure_widget(
            data=[stop, *(self._spare() for _ in range(count))],
            layout={
                "title": {"text": f"{kind} {metric or ''}".strip()},
                "xaxis": {"title": {"text": "steps"}},
                "yaxis": {"title": {"text": metric or ""}},
                "height": 340,
                "margin": {"l": 50, "r": 10, "t": 40, "b": 40},
                "legend": {"font": {"size": 10}},
            },
        )
        self._spares: list[Any] = list(self.figure.data[1:])

    def _spare(self) -> Any:
        import plotly.graph_objects as go

        mode = "lines" if self.kind == TRAINING else "lines+markers"
        return go.Scatter(x=[], y=[], name="", mode=mode, showlegend=False, hoverinfo="skip")

    def mark(self, trial_ids: set[int], *, restyle: bool = False) -> None:
        """Note trials whose series changed (and whether the best trial changed)."""
        self._pending |= trial_ids
        self._restyle = self._restyle or restyle

    def pending(self, model: WidgetModel) -> bool:
        """True while something is still to be drawn (e.g. held back by the message budget)."""
        return bool(self._pending) or self._restyle or self._metric(model) != self._drawn_metric

    def _metric(self, model: WidgetModel) -> str | None:
        return model.training_metric if self.kind == TRAINING else model.validation_metric

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
        stops = model.stopped_points(self.kind)
        stops_changed = stops != self._drawn_stops
        metric = self._metric(model)
        retitle = metric != self._drawn_metric
        if free <= 0 or not (self._pending or self._restyle or stops_changed or retitle):
            return
        fresh = set(new[: len(spares)])  # new trials that take a spare trace now
        for trial_id in sorted(fresh):
            traces[trial_id] = spares.pop(0)
        changed = sorted(t for t in self._pending if t in traces)
        updates = [(traces[t], t, *model.trial_series(self.kind, t)) for t in changed]
        styles = [(trace, t == best) for t, trace in traces.items() if self._restyle or t in fresh]
        stop_trace = fig.data[0]
        with fig.batch_update():  # everything is built above; only assignments in here
            for trace, trial_id, xs, ys in updates:
                trace.x, trace.y = xs, ys
                if trial_id in fresh:
                    trace.name = trace.legendgroup = f"trial {trial_id}"
                    trace.showlegend, trace.hoverinfo = True, "x+y+name"
                    trace.line.color = PALETTE[trial_id % len(PALETTE)]
            for trace, is_best in styles:
                trace.line.width = BEST_WIDTH if is_best else WIDTH
                trace.opacity = 1.0 if is_best else OPACITY
            if stops_changed:
                stop_trace.x, stop_trace.y = stops[0], stops[1]
                stop_trace.hovertext = [f"trial {t} stopped early" for t in stops[2]]
            if retitle:
                fig.layout.title.text = f"{self.kind} {metric or ''}".strip()
                fig.layout.yaxis.title.text = metric or ""
        self._ops.append(now)
        self._pending -= set(changed)
        self._restyle = False
        self._drawn_stops = stops
        self._drawn_metric = metric
