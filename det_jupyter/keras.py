"""Keras support: ``from det_jupyter.keras import KerasTrial, DetCallback``; see :mod:`det_jupyter.frameworks.keras`.

Example:
    >>> from det_jupyter.keras import FORMAT, DetCallback, KerasTrial, load_model, save_model
    >>> FORMAT
    'keras-model'
"""

from __future__ import annotations

from det_jupyter.frameworks.keras import FORMAT, DetCallback, KerasTrial, load_model, save_model

__all__ = ["FORMAT", "DetCallback", "KerasTrial", "load_model", "save_model"]
