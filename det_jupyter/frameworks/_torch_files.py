"""The files a torch checkpoint holds, and how a module's structure is written apart from its weights.

One format for :func:`det_jupyter.torch.save_model` and :class:`~det_jupyter.torch.TorchTrial`'s own
checkpoints, so each writes the weights once:

- ``state_dict.pt``: the weights (``model.state_dict()``), readable with ``weights_only=True``;
- ``module.pkl``: the module's structure pickled by value (cloudpickle), each parameter and buffer
  replaced by a reference to its ``state_dict`` key, so it is small;
- ``model.pt``: the older whole module by value (weights included), still read by ``load_model``.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from det_jupyter.errors import CheckpointError

STATE_DICT_FILE = "state_dict.pt"
MODEL_FILE = "model.pt"
MODULE_FILE = "module.pkl"
"""The module's structure; its tensors are in ``state_dict.pt``."""

_TENSOR_REF = "det_jupyter.state_dict"  # persistent id of a tensor module.pkl takes from state_dict.pt


def save_module(model: nn.Module, file: Path | io.BytesIO) -> None:
    """Pickle the whole module *by value* (cloudpickle), weights included: the older ``model.pt``."""
    import cloudpickle

    torch.save(model, file, pickle_module=cloudpickle)


def save_structure(model: nn.Module, file: Path | IO[bytes]) -> None:
    """Pickle ``model`` by value with each state_dict tensor replaced by a reference to its key.

    ``file`` is a path (written atomically) or a binary stream. The weights are *not* written: pair
    the result with ``torch.save(model.state_dict(), ...)`` of the same module.
    """
    import cloudpickle

    keys: dict[int, str] = {}
    for key, tensor in model.state_dict(keep_vars=True).items():
        keys.setdefault(id(tensor), key)  # tied weights: one key, one object again on load

    class StructurePickler(cloudpickle.Pickler):  # type: ignore[misc]
        def persistent_id(self, obj: Any) -> Any:
            if type(obj) is nn.Parameter or type(obj) is torch.Tensor:
                key = keys.get(id(obj))
                if key is not None:
                    return (_TENSOR_REF, key, type(obj) is nn.Parameter, bool(obj.requires_grad))
            return None

    if not isinstance(file, Path):
        StructurePickler(file, protocol=pickle.HIGHEST_PROTOCOL).dump(model)
        return
    temp = file.with_name(file.name + ".tmp")
    try:
        with open(temp, "wb") as out:
            StructurePickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(model)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    os.replace(temp, file)


def load_structure(file: Path, weights: dict[str, torch.Tensor]) -> Any:
    """Unpickle ``module.pkl``, taking each referenced tensor from ``weights`` (``state_dict.pt``)."""
    made: dict[str, torch.Tensor] = {}

    class StructureUnpickler(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            if not (isinstance(pid, tuple) and len(pid) == 4 and pid[0] == _TENSOR_REF):
                raise pickle.UnpicklingError(f"{file.name}: unknown persistent id {pid!r}")
            _, key, is_parameter, requires_grad = pid
            if key not in made:
                if key not in weights:
                    raise CheckpointError(f"{file.name} refers to {key!r}, which {STATE_DICT_FILE} lacks")
                tensor = weights[key]
                made[key] = nn.Parameter(tensor, requires_grad=requires_grad) if is_parameter else tensor
            return made[key]

    with open(file, "rb") as source:
        return StructureUnpickler(source).load()
