"""Plotly templates built from JupyterLab's theme: the charts look like the rest of the page, light or dark.

The page bridge (:mod:`det_jupyter.notebook.widget.bridge`) reads JupyterLab's CSS variables in the
browser (``--jp-layout-color0``, ``--jp-ui-font-color1``, ``--jp-border-color2``, ...) and sends them
to the kernel whenever the theme changes; :func:`plotly_template` turns them into a Plotly template.
Values that are not plain CSS colours (a missing variable, ``var(...)``) fall back to the light or
dark default, so a theme with odd variables still draws.

Example:
    >>> t = plotly_template({"light": False, "background": "#111111", "font": "rgba(255,255,255,1)"})
    >>> t["layout"]["paper_bgcolor"], t["layout"]["font"]["color"]
    ('#111111', 'rgba(255,255,255,1)')
    >>> plotly_template({"background": "var(--nope)"})["layout"]["paper_bgcolor"]
    '#ffffff'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["DARK", "LIGHT", "PALETTE", "is_color", "plotly_template", "theme_colors"]

PALETTE = ("#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3", "#FF6692", "#B6E880",
           "#FF97FF", "#FECB52")  # fmt: skip
"""Trial line colours (Plotly's qualitative palette: readable on light and dark backgrounds)."""

_FONT = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"
LIGHT: dict[str, Any] = {
    "light": True,
    "background": "#ffffff",
    "panel": "#eeeeee",
    "font": "rgba(0, 0, 0, 0.87)",
    "muted": "rgba(0, 0, 0, 0.54)",
    "grid": "#e0e0e0",
    "line": "#bdbdbd",
    "font_family": _FONT,
}
"""JupyterLab Light's values (the fallbacks before the page has said anything)."""
DARK: dict[str, Any] = {
    "light": False,
    "background": "#111111",
    "panel": "#212121",
    "font": "rgba(255, 255, 255, 1)",
    "muted": "rgba(255, 255, 255, 0.7)",
    "grid": "#424242",
    "line": "#616161",
    "font_family": _FONT,
}
"""JupyterLab Dark's values."""

_COLOR = re.compile(
    r"^(#[0-9a-fA-F]{3,8}|(rgb|rgba|hsl|hsla)\(\s*[-\d.%]+(\s*[,\s/]\s*[-\d.%]+){2,3}\s*\)|[a-zA-Z]{3,20})$"
)
_FAMILY = re.compile(r"^[\w\s,'\"-]{1,200}$")


def is_color(value: Any) -> bool:
    """True for a plain CSS colour Plotly accepts (hex, ``rgb()``/``rgba()``/``hsl()``, a name).

    Example:
        >>> is_color("rgba(0, 0, 0, 0.87)"), is_color("var(--jp-layout-color0)"), is_color("")
        (True, False, False)
    """
    return isinstance(value, str) and bool(_COLOR.match(value.strip()))


def theme_colors(theme: Mapping[str, Any]) -> dict[str, Any]:
    """The page's theme values, each checked; anything unusable replaced by the light/dark default."""
    base = LIGHT if theme.get("light", True) is not False else DARK
    out = dict(base)
    for key in ("background", "panel", "font", "muted", "grid", "line"):
        value = theme.get(key)
        if is_color(value):
            out[key] = str(value).strip()
    family = theme.get("font_family")
    if isinstance(family, str) and _FAMILY.match(family.strip()):
        out["font_family"] = family.strip()
    return out


def plotly_template(theme: Mapping[str, Any]) -> dict[str, Any]:
    """A Plotly template (as a dict) for the page's theme: backgrounds, fonts, grid, hover labels."""
    c = theme_colors(theme)
    axis = {"gridcolor": c["grid"], "linecolor": c["line"], "zerolinecolor": c["line"], "automargin": True,
            "title": {"font": {"color": c["muted"]}}}  # fmt: skip
    font = {"color": c["font"], "family": c["font_family"]}
    return {
        "layout": {
            "paper_bgcolor": c["background"],
            "plot_bgcolor": c["background"],
            "font": font,
            "colorway": list(PALETTE),
            "xaxis": axis,
            "yaxis": axis,
            "legend": {"bgcolor": "rgba(0,0,0,0)", "font": {"color": c["font"]}},
            "hoverlabel": {"bgcolor": c["panel"], "bordercolor": c["line"], "font": {"color": c["font"]}},
            "title": {"font": {"color": c["font"]}},
        },
        "data": {
            "parcoords": [
                {
                    "labelfont": {"color": c["font"], "shadow": "none"},
                    "tickfont": {"color": c["font"], "shadow": "none"},
                    "rangefont": {"color": c["muted"], "shadow": "none"},
                }
            ],
        },
    }
