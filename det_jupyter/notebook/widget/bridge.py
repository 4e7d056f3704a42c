"""The page bridge: a tiny invisible anywidget that tells the kernel about the page the widget sits in.

Two things only the browser knows:

- **its size**: Plotly figures with the ``responsive`` config resize on the window's ``resize``
  event, but a JupyterLab panel changes size without one (a sidebar opens, the panel is split).
  The bridge watches the experiment widget's box with a ``ResizeObserver`` and, when its width
  changes or a figure has just rendered, dispatches one ``resize`` event (at most one per frame),
  so every chart re-fits its output area, legend and full x-range included;
- **the theme**: it reads JupyterLab's CSS variables (``--jp-layout-color0``, ``--jp-ui-font-color1``,
  ...) and sends them as :attr:`theme` whenever ``data-jp-theme-name`` changes on ``<body>``; the
  widget turns them into a Plotly template (:mod:`det_jupyter.notebook.widget.theme`).

Its comm is routed to det_jupyter's kernel subshell (:mod:`det_jupyter.notebook.kernel_comm`), so a
theme switch restyles the charts while a cell runs.

Example:
    >>> bridge = page_bridge()              # doctest: +SKIP
    >>> bridge.observe(print, names="theme")  # doctest: +SKIP
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["BRIDGE_CSS", "BRIDGE_ESM", "page_bridge"]

BRIDGE_ESM = r"""
const VARS = {
  background: '--jp-layout-color0', panel: '--jp-layout-color2', font: '--jp-ui-font-color1',
  muted: '--jp-ui-font-color2', grid: '--jp-border-color2', line: '--jp-border-color1',
  font_family: '--jp-ui-font-family',
};

function readTheme() {
  const style = getComputedStyle(document.body);
  const theme = {
    light: document.body.dataset.jpThemeLight !== 'false',
    name: document.body.dataset.jpThemeName || '',
  };
  for (const [key, name] of Object.entries(VARS)) theme[key] = style.getPropertyValue(name).trim();
  return theme;
}

function whenAttached(el, fn, frames = 600) {
  if (el.isConnected || frames <= 0) fn();
  else requestAnimationFrame(() => whenAttached(el, fn, frames - 1));
}

export default {
  render({ model, el }) {
    el.style.display = 'none';
    el.classList.add('det-jupyter-bridge');
    let frame = 0;
    let width = -1;
    let root = null;
    const resize = () => {
      if (frame) return;
      frame = requestAnimationFrame(() => {
        frame = 0;
        window.dispatchEvent(new Event('resize'));
      });
    };
    const sendTheme = () => {
      const theme = readTheme();
      if (JSON.stringify(theme) !== JSON.stringify(model.get('theme'))) {
        model.set('theme', theme);
        model.save_changes();
      }
    };
    const sizes = new ResizeObserver(entries => {
      const w = Math.round(entries[entries.length - 1].contentRect.width);
      if (w !== width) {
        width = w;
        resize();
      }
    });
    const rendered = event => {
      if (root && event.detail && root.contains(event.detail.element)) resize();
    };
    const themes = new MutationObserver(() => requestAnimationFrame(sendTheme));
    whenAttached(el, () => {
      root = el.closest('.det-jupyter-widget') || el.parentElement;
      if (root) sizes.observe(root);
      resize();
    });
    document.addEventListener('plotlywidget-after-render', rendered);
    themes.observe(document.body, { attributes: true, attributeFilter: ['data-jp-theme-name', 'data-jp-theme-light'] });
    sendTheme();
    return () => {
      sizes.disconnect();
      themes.disconnect();
      document.removeEventListener('plotlywidget-after-render', rendered);
    };
  },
};
"""


BRIDGE_CSS = """
.det-jupyter-widget .det-chart { display: flex; min-width: 0; }
.det-jupyter-widget .det-chart > * { flex: 1 1 auto; min-width: 0; width: 100%; }
.det-jupyter-widget .det-chart .js-plotly-plot { width: 100%; }
"""
"""Chart boxes: a figure fills its box (a flex item would otherwise keep Plotly's 700 px), never wider."""


@functools.cache
def _bridge_class() -> type:
    import anywidget
    import traitlets

    class PageBridge(anywidget.AnyWidget):  # type: ignore[misc]
        """Sizes and theme from the page (see the module docstring)."""

        _esm = BRIDGE_ESM
        _css = BRIDGE_CSS
        theme = traitlets.Dict().tag(sync=True)

    return PageBridge


def page_bridge() -> Any:
    """A new page bridge widget (put it inside the experiment widget's box, class ``det-jupyter-widget``)."""
    return _bridge_class()()
