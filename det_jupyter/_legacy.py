"""Old module paths keep working: ``det_jupyter.context`` is ``det_jupyter.worker.context``, etc.

Experiments in a store hold their entrypoint cloudpickled, and a pickle names every det_jupyter class
or function it does not carry by value by its *module path at the time it was pickled*. Before the
package was split into subpackages those paths were flat (``det_jupyter.context.TrialContext``,
``det_jupyter.storage``, ``det_jupyter.widgets`` ...). A meta path finder maps each old name to the
module that now holds the code, so such pickles (and user code written against the old paths) load.
The alias is the same module object: ``det_jupyter.context.TrialContext is
det_jupyter.worker.context.TrialContext``.

Example:
    >>> import det_jupyter.context, det_jupyter.worker.context
    >>> det_jupyter.context is det_jupyter.worker.context
    True
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["MOVED_MODULES", "install"]

#: old module path -> the module that holds its code now
MOVED_MODULES: dict[str, str] = {
    "det_jupyter.config_sections": "det_jupyter.config.sections",
    "det_jupyter.config_searcher": "det_jupyter.config.searcher",
    "det_jupyter.config_errors": "det_jupyter.config.formatting",
    "det_jupyter.ibm": "det_jupyter.config.ibm",
    "det_jupyter.preview": "det_jupyter.searcher.preview",
    "det_jupyter.controller": "det_jupyter.engine.controller",
    "det_jupyter.cluster": "det_jupyter.engine.cluster",
    "det_jupyter.gpu": "det_jupyter.worker.gpu",
    "det_jupyter.definition": "det_jupyter.engine.definition",
    "det_jupyter.presubmit": "det_jupyter.engine.presubmit",
    "det_jupyter.runtime": "det_jupyter.worker.runtime",
    "det_jupyter.context": "det_jupyter.worker.context",
    "det_jupyter.storage": "det_jupyter.checkpoints",
    "det_jupyter.magics": "det_jupyter.notebook.magics",
    "det_jupyter.reports": "det_jupyter.notebook.reports",
    "det_jupyter.kernel_comm": "det_jupyter.notebook.kernel_comm",
    "det_jupyter.widget_model": "det_jupyter.notebook.widget.model",
    "det_jupyter.widget_figures": "det_jupyter.notebook.widget.figures",
    "det_jupyter.widget_html": "det_jupyter.notebook.widget.html",
    "det_jupyter.widgets": "det_jupyter.notebook.widget.widget",
}

# Old module names that are also attributes of the package (``det_jupyter.cluster()`` is a function):
# importing the alias through the finder would rebind the attribute to the module, so these are
# registered in sys.modules up front (their targets are imported by ``det_jupyter/__init__`` anyway).
_EAGER = ("det_jupyter.cluster",)


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self._target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self._target)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """The target module ran when it was imported; undo the import system's ``__spec__`` rebinding."""
        module.__spec__ = self._spec


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        new = MOVED_MODULES.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


def install() -> None:
    """Register the old paths (idempotent; ``import det_jupyter`` calls it)."""
    if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
    for old in _EAGER:
        if old not in sys.modules:
            sys.modules[old] = importlib.import_module(MOVED_MODULES[old])
