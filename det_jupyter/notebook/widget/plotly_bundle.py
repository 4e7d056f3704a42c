"""Plotly's widget JavaScript sent to the page once per kernel, not once per figure.

Since plotly 6 a ``FigureWidget`` is an anywidget whose ``_esm`` state is plotly's whole widget
bundle (~5 MB of JavaScript, plotly.js inside). Every figure carried it: the experiment widget's four
figures put ~20 MB into the page at display, and ~20 MB into the one ``update_states`` reply with
which JupyterLab restores every widget after a page reload (F5). JupyterLab waits 4 s for that reply
(ipywidgets' ``CONTROL_COMM_TIMEOUT``) before it falls back to one ``request_state`` per widget; on a
busy machine the 20 MB missed the deadline and the fallback took half a minute or more.

Here the bundle travels once: :func:`plotly_library` is one hidden anywidget per kernel whose
``bundle`` state holds it; its ``initialize`` (run when the page creates the model, displayed or not)
imports it and publishes the module on ``globalThis`` under the plotly version. Each figure's
``_esm`` is :data:`FIGURE_ESM`, a few hundred bytes that wait for that module and hand its widget
factory to anywidget, so a figure renders as plotly's own would. The browser keeps one module per
plotly version, shared by every figure of every notebook in the page.

Example:
    >>> "globalThis" in FIGURE_ESM and "globalThis" in LIBRARY_ESM
    True
    >>> plotly_library().version == plotly_version()   # doctest: +SKIP
    True
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

__all__ = ["FIGURE_ESM", "LIBRARY_ESM", "figure_esm", "plotly_library", "plotly_version"]

_SLOT = r"""
const KEY = '__det_jupyter_plotly_widget__';
function slot(version) {
  const all = (globalThis[KEY] = globalThis[KEY] || {});
  if (!all[version]) {
    const entry = { started: false };
    entry.promise = new Promise((resolve, reject) => {
      entry.resolve = resolve;
      entry.reject = reject;
    });
    all[version] = entry;
  }
  return all[version];
}
"""

LIBRARY_ESM = (
    _SLOT
    + r"""
export default {
  async initialize({ model }) {
    const entry = slot(model.get('version'));
    if (entry.started) return;  // another kernel in this page loaded the same plotly already
    entry.started = true;
    const url = URL.createObjectURL(new Blob([model.get('bundle')], { type: 'text/javascript' }));
    try {
      entry.resolve(await import(/* webpackIgnore: true */ url));
    } catch (err) {
      entry.started = false;
      console.error('det_jupyter: loading plotly\'s widget bundle failed', err);
      entry.reject(err);
    } finally {
      URL.revokeObjectURL(url);
    }
  },
  render({ el }) {
    el.style.display = 'none';
  },
};
"""
)
"""The library widget's code: import the bundle it carries once, publish the module."""

FIGURE_ESM = (
    _SLOT
    + r"""
const VERSION = '__VERSION__';
const WAIT_MS = 120000;

export default async () => {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(
      `det_jupyter: plotly ${VERSION}'s widget code never reached this page (its library widget is ` +
      'missing); run the cell that shows the experiment again')), WAIT_MS);
  });
  try {
    const mod = await Promise.race([slot(VERSION).promise, late]);
    return mod.default();
  } finally {
    clearTimeout(timer);
  }
};
"""
)
"""A figure's code (``__VERSION__`` filled in by :func:`figure_esm`): plotly's own widget, once loaded."""


@functools.cache
def plotly_version() -> str:
    """The installed plotly's version (the key of its module in the page)."""
    import plotly

    return str(plotly.__version__)


@functools.cache
def figure_esm() -> str:
    """:data:`FIGURE_ESM` for the installed plotly."""
    return FIGURE_ESM.replace("__VERSION__", plotly_version().replace("'", ""))


@functools.cache
def _bundle() -> str:
    import plotly.basewidget

    esm = plotly.basewidget.BaseFigureWidget._esm  # a Path in plotly 6/7; a str would be the code itself
    return Path(esm).read_text(encoding="utf-8") if isinstance(esm, Path) else str(esm)


@functools.cache
def _library_class() -> type:
    import anywidget
    import traitlets

    class PlotlyLibrary(anywidget.AnyWidget):  # type: ignore[misc]
        """Plotly's widget bundle, sent once; every figure's code waits for it (see the module docstring)."""

        _esm = LIBRARY_ESM
        version = traitlets.Unicode().tag(sync=True)
        bundle = traitlets.Unicode().tag(sync=True)

    return PlotlyLibrary


_lock = threading.Lock()
_LIBRARY: dict[str, Any] = {}  # the kernel's one library widget: the page needs exactly one


def plotly_library() -> Any:
    """This kernel's library widget, made on first use (and again if it was closed).

    Every figure made by :func:`~det_jupyter.notebook.widget.figures.figure_widget` calls it first,
    so the page creates the library's model before any figure's; it is never displayed and belongs
    to no experiment widget (closing one leaves it alone).
    """
    with _lock:
        widget = _LIBRARY.get("widget")
        if widget is None or getattr(widget, "comm", None) is None:
            widget = _library_class()(version=plotly_version(), bundle=_bundle())
            _LIBRARY["widget"] = widget
        return widget
