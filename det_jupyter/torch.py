"""PyTorch support: ``from det_jupyter.torch import TorchTrial``; see :mod:`det_jupyter.frameworks.torch`.

Example:
    >>> from det_jupyter.torch import FORMAT, TorchTrial, load_model, save_model
    >>> FORMAT
    'torch-module'
"""

from __future__ import annotations

from det_jupyter.frameworks.torch import FORMAT, TorchTrial, load_model, save_model

__all__ = ["FORMAT", "TorchTrial", "load_model", "save_model"]
