"""Hyperparameter analysis: parallel coordinates and metric-vs-hyperparameter scatter plots.

Pure functions of a :class:`~det_jupyter.notebook.widget.model.WidgetModel` (and the experiment's
hyperparameter space) that return Plotly data; the widget draws them during and after a search.

Axes follow how each hyperparameter was searched: a ``log`` hyperparameter is drawn on a log axis
(parallel coordinates plot ``log10`` of the value with tick labels in real values; the scatter uses a
log x-axis), a ``categorical`` one on a categorical axis in the order of its ``vals`` (also when the
values are numbers, like batch sizes 8 / 16 / 32), ``int`` / ``double`` on linear axes. Only
hyperparameters the config searches get an axis (else those that vary across trials, else all). The first axis
of the parallel coordinates is the trial id; lines are coloured by the searcher metric (brighter is
better) and the best trial's line is red.

Example:
    >>> hparam_types({"lr": {"type": "log", "minval": -4, "maxval": -1}, "bs": {"type": "categorical", "vals": [8, 16]}})
    {'bs': 'categorical', 'lr': 'log'}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from det_jupyter.hparams import HParamSpace, parse_hyperparameters
from det_jupyter.notebook.widget.html import format_hparams, format_value
from det_jupyter.notebook.widget.model import WidgetModel, flatten_hparams
from det_jupyter.searcher.ranking import is_rankable
from det_jupyter.store import TrialRow

__all__ = [
    "BEST_COLOR",
    "brushed_trials",
    "hparam_types",
    "keep_brushes",
    "parallel_data",
    "scatter_data",
    "scored_trials",
]

BEST_COLOR = "#EF553B"
COLORSCALE = [[0.0, "#440154"], [0.45, "#21918c"], [0.85, "#fde725"], [0.851, BEST_COLOR], [1.0, BEST_COLOR]]
"""Viridis up to 0.85 for the metric (brighter is better), then red for the best trial (1.0)."""


def hparam_types(raw: dict[str, Any] | HParamSpace) -> dict[str, str]:
    """Dotted hyperparameter name -> its search type (``const``, ``int``, ``double``, ``log``, ``categorical``)."""
    space = raw if isinstance(raw, HParamSpace) else parse_hyperparameters(raw)
    out: dict[str, str] = {}
    for name, p in space:
        if isinstance(p, HParamSpace):
            out.update({f"{name}.{k}": v for k, v in hparam_types(p).items()})
        else:
            out[name] = str(getattr(p, "type", "const"))
    return out


def _categories(space: HParamSpace, name: str) -> list[Any] | None:
    node: Any = space
    for part in name.split("."):
        try:
            node = node[part]
        except (KeyError, TypeError):
            return None
    vals = getattr(node, "vals", None)
    return list(vals) if vals is not None else None


def scored_trials(model: WidgetModel) -> list[TrialRow]:
    """Trials with a rankable best metric, by id."""
    return sorted((t for t in model.trials if is_rankable(t.best_validation)), key=lambda t: t.id)


def _axes(model: WidgetModel, trials: list[TrialRow]) -> list[tuple[str, str, list[Any]]]:
    """``(name, type, values)`` per varying hyperparameter; non-number values make an axis categorical."""
    types = hparam_types(model.config.hparam_space)
    flat = [flatten_hparams(t.hparams) for t in trials]
    names = list(dict.fromkeys(k for f in flat for k in f))
    searched = [n for n in names if types.get(n, "const") != "const"]  # fixed by the config: stable panels
    varying = searched or [n for n in names if len({repr(f.get(n)) for f in flat}) > 1] or names
    out = []
    for name in varying:
        values = [f.get(name) for f in flat]
        kind = types.get(name, "const")
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if not numeric:
            kind = "categorical"
        elif kind == "log" and not all(float(v or 0) > 0 for v in values):
            kind = "double"
        out.append((name, kind, values))
    return out


def _quality(model: WidgetModel, trials: list[TrialRow]) -> list[float]:
    """Line colour values: 0..0.85 by metric (better is higher), 1.0 for the best trial."""
    values = [float(t.best_validation) for t in trials]  # type: ignore[arg-type]  # scored: all rankable
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    best = model.best_trial_id
    out = []
    for t, v in zip(trials, values, strict=True):
        good = (hi - v) / span if model.smaller_is_better else (v - lo) / span
        out.append(1.0 if t.id == best else 0.85 * good)
    return out


def _log_ticks(exponents: list[float]) -> tuple[list[float], list[str]]:
    lo, hi = math.floor(min(exponents)), math.ceil(max(exponents))
    ticks = [float(e) for e in range(lo, hi + 1)]
    if len(ticks) < 3:  # less than a decade: label the trials' own values instead
        ticks = sorted(set(exponents))[:8]
    return ticks, [f"{10**e:.3g}" for e in ticks]


def parallel_data(model: WidgetModel) -> dict[str, Any] | None:
    """A ``go.Parcoords`` as a dict (``dimensions``, ``line``), or ``None`` before two trials have a metric."""
    trials = scored_trials(model)
    if len(trials) < 2:
        return None
    space = model.config.hparam_space
    ids = [t.id for t in trials]
    dims: list[dict[str, Any]] = [{"label": "trial", "values": ids}]
    if len(ids) <= 24:
        dims[0].update(tickvals=ids, ticktext=[str(i) for i in ids])
    for name, kind, values in _axes(model, trials):
        if kind == "log":
            exps = [math.log10(v) for v in values]
            tickvals, ticktext = _log_ticks(exps)
            dims.append(
                {"label": f"{name} (log)", "values": exps, "tickvals": tickvals, "ticktext": ticktext}
            )
        elif kind == "categorical":
            order = _categories(space, name) or []
            labels = [format_value(v) for v in order]
            for v in values:
                if format_value(v) not in labels:
                    labels.append(format_value(v))
            code = {label: i for i, label in enumerate(labels)}
            dims.append({"label": name, "values": [code[format_value(v)] for v in values],
                         "tickvals": list(code.values()), "ticktext": labels})  # fmt: skip
        else:
            dims.append({"label": name, "values": [float(v) for v in values]})
    metric = [float(t.best_validation) for t in trials]  # type: ignore[arg-type]
    dims.append({"label": model.validation_metric, "values": metric})
    line = {"color": _quality(model, trials), "colorscale": COLORSCALE, "cmin": 0.0, "cmax": 1.0}
    return {"dimensions": dims, "line": line}


def scatter_data(model: WidgetModel) -> list[dict[str, Any]]:
    """One panel per varying hyperparameter: ``name``, ``axis`` (``log`` / ``category`` / ``linear``),
    ``x``, ``y`` (the best metric), ``text`` (hover: trial id and hparams) and ``best`` (the best's index).
    """
    trials = scored_trials(model)
    if not trials:
        return []
    y = [float(t.best_validation) for t in trials]  # type: ignore[arg-type]
    text = [f"trial {t.id}: {format_hparams(t.hparams)}" for t in trials]
    best = next((i for i, t in enumerate(trials) if t.id == model.best_trial_id), None)
    panels = []
    for name, kind, values in _axes(model, trials):
        axis = {"log": "log", "categorical": "category"}.get(kind, "linear")
        x = [format_value(v) for v in values] if axis == "category" else list(values)
        panels.append({"name": name, "axis": axis, "x": x, "y": y, "text": text, "best": best})
    return panels


def _get(dimension: Any, key: str) -> Any:
    return dimension.get(key) if isinstance(dimension, dict) else getattr(dimension, key, None)


def _ranges(constraint: Any) -> list[tuple[float, float]]:
    """Plotly's ``constraintrange``: ``[lo, hi]`` or a list of them (several brushes on one axis)."""
    if not constraint:
        return []
    first = constraint[0]
    pairs = constraint if isinstance(first, (list, tuple)) else [constraint]
    return [(float(min(p)), float(max(p))) for p in pairs if len(p) == 2]


def brushed_trials(dimensions: Sequence[Any]) -> set[int] | None:
    """The trial ids inside every brushed range of the parallel coordinates; ``None`` when none is brushed.

    ``dimensions`` as :func:`parallel_data` made them (the first holds the trial ids), with the
    ``constraintrange`` s the page set when the user dragged along an axis (plotly dicts or objects).

    >>> dims = [{"values": [1, 2, 3]}, {"values": [0.1, 0.5, 0.9], "constraintrange": [0.0, 0.6]}]
    >>> sorted(brushed_trials(dims))
    [1, 2]
    >>> brushed_trials([{"values": [1, 2]}, {"values": [3, 4]}]) is None
    True
    """
    if not dimensions:
        return None
    ids = [int(v) for v in _get(dimensions[0], "values") or ()]
    keep = set(range(len(ids)))
    brushed = False
    for dimension in dimensions:
        ranges = _ranges(_get(dimension, "constraintrange"))
        if not ranges:
            continue
        brushed = True
        values = list(_get(dimension, "values") or ())
        keep = {i for i in keep if i < len(values) and any(lo <= values[i] <= hi for lo, hi in ranges)}
    return {ids[i] for i in keep} if brushed else None


def keep_brushes(new: list[dict[str, Any]], drawn: Sequence[Any]) -> list[dict[str, Any]]:
    """``new`` dimensions with the brushed ranges of the ``drawn`` ones carried over (matched by label),
    so a redraw during the search does not clear what the user selected."""
    ranges = {_get(d, "label"): _get(d, "constraintrange") for d in drawn}
    out = []
    for dimension in new:
        constraint = ranges.get(dimension.get("label"))
        out.append({**dimension, "constraintrange": constraint} if constraint else dimension)
    return out
