"""Export: the widget's metrics as a DataFrame / CSV, and a static HTML view for nbviewer and GitHub.

A live widget is only drawn where its kernel is; a saved notebook opened in nbviewer or on GitHub
shows an output's ``text/html`` instead. :func:`static_html` writes what the widget shows as plain
HTML (header, progress, trial table, failures, the load line) with the Plotly figures as static
HTML that loads plotly.js from its CDN (nbviewer draws them; GitHub, which runs no scripts, shows the
rest). The widget offers it next to its live view (``_repr_mimebundle_``) as it is when displayed; a
widget displayed after the end (``%det attach ID``, ``det_jupyter.get_experiment(ID)``) carries the
final state. (Updating the output at the end would make JupyterLab draw the figures again from
plotly's front-end copy of their data, which misses batched updates.)

Example:
    >>> frame = widget.to_dataframe()                 # doctest: +SKIP
    >>> widget.to_csv("metrics.csv")                  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable
from typing import Any

__all__ = ["figure_html", "static_html", "write_csv"]


def figure_html(figure: Any, *, first: bool) -> str:
    """One figure as an HTML fragment; the first one also loads plotly.js from the CDN."""
    import plotly.io as pio

    data = _lists(figure.to_dict() if hasattr(figure, "to_dict") else figure)
    layout = data.setdefault("layout", {})
    layout.pop("width", None)
    return str(
        pio.to_html(
            data,
            include_plotlyjs="cdn" if first else False,
            full_html=False,
            config={"responsive": True, "displaylogo": False},
            default_width="100%",
            default_height=f"{layout.get('height', 360)}px",
            validate=False,
        )
    )


def _lists(value: Any) -> Any:
    """``value`` with the live figures' numpy arrays, which ``to_dict`` writes as base64 typed arrays
    (``{"dtype", "bdata"}``), as lists: plain numbers in the page's source."""
    if isinstance(value, dict):
        if set(value) == {"dtype", "bdata"}:
            import numpy as np

            return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value


def static_html(parts: Iterable[str], figures: Iterable[Any]) -> str:
    """The widget as one static HTML block: ``parts`` (HTML fragments) then the figures side by side."""
    figs = [figure_html(f, first=i == 0) for i, f in enumerate(figures)]
    boxes = "".join(f'<div style="flex:1 1 420px;min-width:320px">{f}</div>' for f in figs)
    body = "".join(parts)
    return (
        f'<div class="det-jupyter-static">{body}<div style="display:flex;flex-wrap:wrap">{boxes}</div></div>'
    )


def write_csv(frame: Any, path: str | os.PathLike[str]) -> str:
    """Write ``frame`` as CSV to ``path`` atomically (temp name, then ``os.replace``); returns the path."""
    target = os.fspath(path)
    tmp = f"{target}.tmp-{os.getpid()}"
    frame.to_csv(tmp, index=False)
    os.replace(tmp, target)
    return target
