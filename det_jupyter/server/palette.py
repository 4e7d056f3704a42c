"""One palette and one number format for every det_jupyter surface (sidebar, notebook widget, reports).

The sidebar gets these as constants in the generated ``labextension/src/wire.ts``
(``STATE_COLORS``; :mod:`det_jupyter.server.wire_types` writes them), the notebook widget imports
them from here, so a COMPLETED trial is the same green, and ``0.08333`` the same text, everywhere.
Colours are JupyterLab's own theme variables, with the hex values the light and dark themes give
them, for drawings that cannot read CSS variables (Plotly figures).

This module imports nothing of det_jupyter but the state enums and the wire shapes: it is cheap to
import from a kernel (``det_jupyter.server`` loads its service only when Jupyter asks for it).

Example:
    >>> STATE_COLORS["COMPLETED"]["light"], STATE_COLORS["COMPLETED"]["css"]
    ('#388e3c', 'var(--jp-success-color1)')
    >>> state_color("ERROR", dark=True)
    '#f44336'
    >>> format_metric(1 / 12), format_metric(123456.0), format_metric(None)
    ('0.08333', '1.23e+5', '–')
    >>> format_duration(3725)
    '1h 2m'
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

from det_jupyter.server.wire_models import StateColorModel
from det_jupyter.states import ExperimentState, TrialState

__all__ = [
    "BEST_MARK",
    "NO_VALUE",
    "STATE_COLORS",
    "format_duration",
    "format_metric",
    "format_percent",
    "state_color",
]


def _color(var: str, light: str, dark: str) -> StateColorModel:
    return {"css": f"var({var})", "light": light, "dark": dark}


_GREY = _color("--jp-layout-color4", "#757575", "#757575")
_BLUE = _color("--jp-brand-color1", "#1976d2", "#2196f3")
_GREEN = _color("--jp-success-color1", "#388e3c", "#4caf50")
_CYAN = _color("--jp-info-color1", "#0097a7", "#00bcd4")
_ORANGE = _color("--jp-warn-color1", "#f57c00", "#ff9800")
_RED = _color("--jp-error-color1", "#d32f2f", "#f44336")

#: Colour of every experiment and trial state (text on them: white).
STATE_COLORS: dict[str, StateColorModel] = {
    ExperimentState.ACTIVE.value: _BLUE,
    ExperimentState.PAUSED.value: _GREY,
    ExperimentState.STOPPING_CANCELED.value: _ORANGE,
    ExperimentState.COMPLETED.value: _GREEN,
    ExperimentState.CANCELED.value: _ORANGE,
    ExperimentState.ERROR.value: _RED,
    TrialState.QUEUED.value: _GREY,
    TrialState.STOPPED.value: _CYAN,
}

#: Marks the best trial (and its experiment's best metric) in every view.
BEST_MARK = "★"
#: Written for a missing value (no validation yet, NaN, infinite).
NO_VALUE = "–"


def state_color(state: str, *, dark: bool = False) -> str:
    """The hex colour of ``state`` (an experiment or trial state value) in the light or dark theme."""
    return STATE_COLORS.get(state, _GREY)["dark" if dark else "light"]


def format_metric(value: float | None) -> str:
    """A metric in 4 significant digits; exponent form (``1.23e-5``) below 1e-3 or from 1e4; ``–`` for none.

    The same text as JavaScript's ``toPrecision(4)`` / ``toExponential(2)`` (the sidebar's
    ``formatMetric`` in ``labextension/src/wire.ts``), so the sidebar and the widget agree.

    >>> [format_metric(v) for v in (1.0, 0.5, 1234.5, -2e-4, 0.0, float("nan"))]
    ['1.000', '0.5000', '1235', '-2.00e-4', '0.000', '–']
    """
    if value is None or isinstance(value, bool) or not math.isfinite(value):
        return NO_VALUE
    exact = Decimal(value)  # JavaScript rounds the exact binary value half away from zero: so do we
    if abs(value) >= 1e4 or (value != 0 and abs(value) < 1e-3):
        mantissa = _significant(exact, 3)
        digits, exponent = f"{mantissa:.2E}".split("E")
        return f"{digits}e{'-' if exponent[0] == '-' else '+'}{int(exponent[1:])}"
    return f"{_significant(exact, 4):f}"


def _significant(value: Decimal, digits: int) -> Decimal:
    if value == 0:
        return Decimal(0).quantize(Decimal(1).scaleb(1 - digits))
    rounded = value.quantize(Decimal(1).scaleb(value.adjusted() + 1 - digits), rounding=ROUND_HALF_UP)
    if rounded.adjusted() != value.adjusted():  # 9.9996 -> 10.000: one digit too many
        rounded = rounded.quantize(Decimal(1).scaleb(rounded.adjusted() + 1 - digits), rounding=ROUND_HALF_UP)
    return rounded


def format_percent(fraction: float | None) -> str:
    """A fraction in [0, 1] as a whole percentage, floored so that unfinished work never reads 100 %.

    >>> format_percent(0.999), format_percent(1.0), format_percent(0.106), format_percent(None)
    ('99%', '100%', '10%', '–')
    """
    if fraction is None or not math.isfinite(fraction):
        return NO_VALUE
    return f"{math.floor(max(0.0, min(1.0, fraction)) * 100 + 1e-9)}%"


def format_duration(seconds: float | None) -> str:
    """A duration in its two largest units: ``45s``, ``3m 20s``, ``1h 2m``, ``2d 3h``; ``–`` for none.

    >>> [format_duration(s) for s in (0.4, 45, 200, 3725, 183600, None)]
    ['0s', '45s', '3m 20s', '1h 2m', '2d 3h', '–']
    """
    if seconds is None or not math.isfinite(seconds):
        return NO_VALUE
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"
