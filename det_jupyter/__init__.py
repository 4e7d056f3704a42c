"""det_jupyter: Determined-style experiments on Dask, from inside JupyterLab."""

from __future__ import annotations

__version__ = "0.1.0"
