"""Pre-submit check: can the entrypoint, and everything it captures, be shipped to the workers?

An experiment's entrypoint is cloudpickled *by value* (see :mod:`det_jupyter.engine.definition`): a notebook
function or class carries every global it reads, every closure cell and every class attribute with
it. One unpicklable object among them (a lock, an open file, a Dask client) makes the whole pickle
fail with an error that does not say which object it was; one huge object (a dataset read into a
global) is copied into every trial. This module walks what cloudpickle would capture, the same way
cloudpickle does (the ``LOAD_GLOBAL``-family names of each code object, recursively, plus closures
and class dicts), so the error can name the culprit and the warning the heavy ones.

Example:
    >>> import threading
    >>> lock = threading.Lock()
    >>> def train(ctx):
    ...     with lock:
    ...         pass
    >>> check_shippable(train)  # doctest: +SKIP
    Traceback (most recent call last):
    TypeError: cannot ship entrypoint train to workers: global `lock` (a _thread.lock) cannot be pickled ...
"""

from __future__ import annotations

import dis
import inspect
import site
import sys
import sysconfig
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, FunctionType, ModuleType
from typing import TYPE_CHECKING, Any

import cloudpickle

from det_jupyter.errors import ConfigError, FieldError

if TYPE_CHECKING:
    from det_jupyter.config.experiment import ExperimentConfig

__all__ = [
    "LARGE_GLOBAL_BYTES",
    "Capture",
    "Captured",
    "LargeGlobalWarning",
    "check_config_fits",
    "check_shippable",
    "walk_entrypoint",
]

LARGE_GLOBAL_BYTES = 50 * 2**20
"""Captured objects larger than this (pickled) draw a :class:`LargeGlobalWarning`."""

_GLOBAL_OPS = {"LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL"}

_INSTALLED = {
    Path(p).resolve()
    for p in (
        *(sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib", "platstdlib")),
        *site.getsitepackages(),
        site.getusersitepackages(),
    )
}


class LargeGlobalWarning(UserWarning):
    """A captured global is large; it is copied to the workers with the entrypoint for every trial."""


@dataclass(frozen=True)
class Captured:
    """One object the entrypoint carries to the workers.

    Attributes:
        label: how the user names it, e.g. ``global `lock``` or ``class attribute `Net.cache```.
        value: the object.
        owner: the function or class (qualified name) that references it.
    """

    label: str
    value: Any
    owner: str

    @property
    def kind(self) -> str:
        """The object's type, as ``module.Class`` (``builtins`` left out)."""
        cls = type(self.value)
        module = cls.__module__
        return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


@dataclass
class Capture:
    """What :func:`walk_entrypoint` found: captured objects, and local modules to ship by value."""

    captured: list[Captured] = field(default_factory=list)
    local_modules: list[ModuleType] = field(default_factory=list)


def is_local_module(module: ModuleType | None) -> bool:
    """True for a module in a file outside the installed packages and the stdlib (a notebook's helper file).

    ``__main__`` (the notebook itself, pickled by value anyway) and det_jupyter's own modules are not local.
    """
    if (
        module is None
        or module.__name__ in ("__main__", "builtins")
        or module.__name__.startswith("det_jupyter")
    ):
        return False
    path = getattr(module, "__file__", None)
    if path is None:
        return False
    resolved = Path(path).resolve()
    if {"site-packages", "dist-packages"} & set(resolved.parts):
        return False
    return not any(resolved.is_relative_to(root) for root in _INSTALLED)


def _by_value(obj: Any) -> bool:
    """Does cloudpickle ship this function or class by value (its code), rather than by import path?"""
    name = getattr(obj, "__module__", None) or ""
    return name == "__main__" or is_local_module(sys.modules.get(name))


def _global_names(code: CodeType) -> Iterator[str]:
    for ins in dis.get_instructions(code):
        if ins.opname in _GLOBAL_OPS and isinstance(ins.argval, str):
            yield ins.argval
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _global_names(const)


def walk_entrypoint(entrypoint: Any) -> Capture:
    """Everything cloudpickle would carry with ``entrypoint``: globals, closure cells, class attributes.

    Functions and classes that are themselves shipped by value (defined in the notebook or in a local
    module) are walked in turn; modules and installed code travel by reference and are not. Local
    modules met on the way are listed so that :func:`~det_jupyter.engine.definition.freeze` ships them by value.

    Example:
        >>> import json
        >>> big = list(range(3))
        >>> def train(ctx):
        ...     return json.dumps(big)
        >>> [c.label for c in walk_entrypoint(train).captured]  # doctest: +SKIP
        ['global `big`']
    """
    out = Capture()
    seen: set[int] = set()

    def add_module(module: ModuleType | None) -> None:
        if module is not None and is_local_module(module) and module not in out.local_modules:
            out.local_modules.append(module)

    def visit_value(label: str, value: Any, owner: str) -> None:
        if isinstance(value, ModuleType):
            add_module(value)
        elif isinstance(value, (FunctionType, type)):
            add_module(sys.modules.get(getattr(value, "__module__", "") or ""))
            if _by_value(value):
                visit(value)
        else:
            out.captured.append(Captured(label, value, owner))

    def visit_function(fn: FunctionType) -> None:
        owner = fn.__qualname__
        for name in dict.fromkeys(_global_names(fn.__code__)):
            if name in fn.__globals__:
                visit_value(f"global `{name}`", fn.__globals__[name], owner)
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell (a name assigned later in the enclosing scope)
                continue
            visit_value(f"variable `{name}` (captured from the enclosing function)", value, owner)

    def visit_class(cls: type) -> None:
        for klass in inspect.getmro(cls):
            add_module(sys.modules.get(klass.__module__))
            if klass is object or not _by_value(klass):
                continue
            if klass is not cls:
                if id(klass) in seen:
                    continue
                seen.add(id(klass))
            for attr, value in vars(klass).items():
                code_like = isinstance(value, (FunctionType, type, staticmethod, classmethod, property))
                if attr.startswith("__") and attr.endswith("__") and not code_like:
                    continue  # __module__, __doc__, __dict__ ...; __init__ and __call__ are walked
                for member in _unwrap(value):
                    if isinstance(member, (FunctionType, type)):
                        visit_value(f"`{klass.__qualname__}.{attr}`", member, klass.__qualname__)
                    elif member is not None:
                        visit_value(
                            f"class attribute `{klass.__qualname__}.{attr}`", member, klass.__qualname__
                        )

    def visit(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, type):
            visit_class(obj)
        elif isinstance(obj, FunctionType):
            visit_function(obj)
        else:  # a callable instance or a builtin: cloudpickle pickles the object itself
            out.captured.append(Captured("the entrypoint", obj, type(obj).__qualname__))

    add_module(sys.modules.get(getattr(entrypoint, "__module__", "") or ""))
    visit(entrypoint)
    return out


def _unwrap(value: Any) -> list[Any]:
    """The functions inside staticmethod / classmethod / property wrappers, or the value itself."""
    if isinstance(value, (staticmethod, classmethod)):
        return [value.__func__]
    if isinstance(value, property):
        return [value.fget, value.fset, value.fdel]
    return [value]


def _name(entrypoint: Any) -> str:
    return str(getattr(entrypoint, "__qualname__", None) or type(entrypoint).__name__)


def check_shippable(entrypoint: Any, *, warn_bytes: int = LARGE_GLOBAL_BYTES) -> list[Captured]:
    """Raise ``TypeError`` naming the first captured object that cannot be pickled; warn about big ones.

    Returns the captured objects larger than ``warn_bytes`` (each also reported as a
    :class:`LargeGlobalWarning`).

    Example:
        >>> def train(ctx):
        ...     ctx.report_validation_metrics(1, {"loss": 0.0})
        >>> check_shippable(train)
        []
    """
    capture = walk_entrypoint(entrypoint)
    for module in capture.local_modules:
        cloudpickle.register_pickle_by_value(module)
    large: list[Captured] = []
    for item in capture.captured:
        if isinstance(getattr(item.value, "nbytes", None), int):
            size: int | None = item.value.nbytes
        else:
            try:
                size = len(cloudpickle.dumps(item.value))
            except Exception as exc:
                named = item.owner == _name(entrypoint) or f"`{item.owner}." in item.label
                used_by = "" if named else f", used by {item.owner}"
                raise TypeError(
                    f"cannot ship entrypoint {_name(entrypoint)} to workers: {item.label} (a {item.kind}{used_by}) "
                    f"cannot be pickled ({type(exc).__name__}: {exc}); create it inside the function (or in the "
                    "trial's __init__) instead of in the notebook"
                ) from exc
        if size is not None and size > warn_bytes:
            large.append(item)
            warnings.warn(
                f"entrypoint {_name(entrypoint)} captures {item.label} (a {item.kind}, "
                f"{size / 2**20:.0f} MB): it is copied to the workers for every trial. Load it inside the "
                "function instead (from a file, or from the experiment's `data:` / DATA_DIR)",
                LargeGlobalWarning,
                stacklevel=3,
            )
    return large


def _needs_length(entrypoint: Any) -> str | None:
    """The framework base class (``TorchTrial`` / ``KerasTrial``) of an entrypoint that trains for the
    searcher's length, or ``None``."""
    if not isinstance(entrypoint, type):
        return None
    for base in entrypoint.__mro__:
        if base.__module__.startswith("det_jupyter.frameworks.") and base.__name__ in (
            "TorchTrial",
            "KerasTrial",
        ):
            return base.__name__
    return None


def check_config_fits(entrypoint: Any, config: ExperimentConfig) -> None:
    """Config problems that only the entrypoint reveals, raised at submission (before any store row).

    * A ``TorchTrial`` / ``KerasTrial`` trains for the searcher's length: a config without one
      (allowed for single, grid and random, where a ``train(ctx)`` function decides) is refused,
      naming the fix.
    * A ``custom`` searcher's ``search_method`` must resolve and build (``searcher.options``).

    Call it from ``create_experiment`` after resolving the entrypoint.

    Raises:
        ConfigError: listing every problem, each naming its field and the fix.

    Example:
        >>> from det_jupyter.config import load_config
        >>> from det_jupyter.frameworks.torch import TorchTrial
        >>> class Net(TorchTrial): ...
        >>> check_config_fits(Net, load_config({"searcher": {"name": "single", "metric": "loss"}}))
        Traceback (most recent call last):
        ...
        det_jupyter.errors.ConfigError: invalid experiment config:
          searcher.max_time: Net is a TorchTrial: TorchTrial / KerasTrial train for a length the searcher gives, and this config gives none. Fix: add `time_metric: epochs` + `max_time: 10` (or `max_length: {epochs: 10}`) to the searcher section, or write the training loop yourself in a function train(ctx)
    """
    from det_jupyter.frameworks._common import NO_LENGTH_FIX, NO_LENGTH_MESSAGE

    errors: list[FieldError] = []
    framework = _needs_length(entrypoint)
    if framework is not None and config.searcher.max_time is None:
        message = f"{entrypoint.__qualname__} is a {framework}: {NO_LENGTH_MESSAGE}"
        errors.append(FieldError("searcher.max_time", message, NO_LENGTH_FIX))
    if config.searcher.name == "custom":
        from det_jupyter.searcher import make_searcher

        try:
            make_searcher(config.searcher, config.hparam_space, seed=0)
        except ConfigError as exc:
            errors += exc.errors
    if errors:
        raise ConfigError(errors)
