"""The live experiment widget: ``model`` (pure: store rows → traces, table, best trial), ``figures``
(Plotly), ``html`` (header and table), ``widget`` (``ExperimentWidget``, the refresh thread).

Example:
    >>> from det_jupyter.notebook.widget import ExperimentWidget
    >>> ExperimentWidget.__name__
    'ExperimentWidget'
"""

from __future__ import annotations

from det_jupyter.notebook.widget.widget import (
    MIN_REFRESH_INTERVAL,
    ExperimentWidget,
    display_experiment,
    in_kernel,
)

__all__ = ["MIN_REFRESH_INTERVAL", "ExperimentWidget", "display_experiment", "in_kernel"]
