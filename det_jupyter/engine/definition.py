"""The model definition: find the entrypoint the user named, and freeze it by value.

An experiment keeps its entrypoint (a ``train(ctx)`` function or a trial class) cloudpickled *by value*
in the store, so workers need no copy of the notebook and ``Checkpoint.load()`` still works after the
notebook's code has changed. Code from local modules (files beside the notebook, not installed
packages) is shipped by value too.

Example:
    >>> def train(ctx):
    ...     ctx.report_validation_metrics(1, {"loss": 0.0})
    >>> blob = freeze(train)
    >>> thaw(blob).__name__
    'train'
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import cloudpickle

from det_jupyter.errors import ConfigError, FieldError

__all__ = ["ACCEPTED", "entrypoint_name", "entrypoint_problem", "freeze", "resolve_entrypoint", "thaw"]


def resolve_entrypoint(
    entrypoint: Any, config_entrypoint: str | Sequence[str] | None, namespace: Mapping[str, Any] | None = None
) -> Any:
    """The entrypoint object: the one given, else the config's ``entrypoint`` looked up by name.

    A name is looked up in ``namespace`` (the notebook's, by default ``__main__``'s globals); a
    ``package.module:attr`` name is imported.

    Example:
        >>> resolve_entrypoint(None, "json:dumps").__name__
        'dumps'
    """
    if entrypoint is not None:
        if not callable(entrypoint):
            raise TypeError(
                f"entrypoint {entrypoint!r} is not callable: pass a function train(ctx) or a trial class"
            )
        problem = entrypoint_problem(entrypoint)
        if problem is not None:
            raise TypeError(f"create_experiment(entrypoint={entrypoint_name(entrypoint)}): {problem}")
        return entrypoint
    if not config_entrypoint:
        raise ConfigError(
            FieldError(
                "entrypoint",
                "no entrypoint given",
                "pass one to create_experiment(config, train) or set `entrypoint: NAME` in the config",
            )
        )
    if not isinstance(config_entrypoint, str):  # a list is a command: create_experiment runs those
        raise ConfigError(
            FieldError(
                "entrypoint",
                f"{list(config_entrypoint)!r} is a command; it runs from a model directory",
                "pass create_experiment(config, context=DIR) (CLI: det-jupyter experiment create CONFIG DIR)",
            )
        )
    name = config_entrypoint.strip()
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                FieldError(
                    "entrypoint", f"cannot import {name!r} ({exc})", "check the module:attribute spelling"
                )
            ) from None
        return obj
    ns = namespace if namespace is not None else vars(sys.modules["__main__"])
    if name not in ns:
        import difflib

        close = difflib.get_close_matches(name, [k for k, v in ns.items() if callable(v)], n=1)
        hint = f"did you mean {close[0]!r}?" if close else "define it in a cell above, or pass it directly"
        raise ConfigError(FieldError("entrypoint", f"{name!r} is not defined in the notebook", hint))
    found = ns[name]
    problem = entrypoint_problem(found) if callable(found) else None
    if problem is not None:
        raise ConfigError(FieldError("entrypoint", f"{name!r}: {problem}"))
    return found


ACCEPTED = (
    "a function train(ctx), a subclass of det_jupyter.torch.TorchTrial or det_jupyter.keras.KerasTrial, "
    "or a class with a classmethod run_trial(ctx)"
)
"""What :func:`resolve_entrypoint` accepts, as error messages say it."""

_DETERMINED_TRIALS = {
    "PyTorchTrial": "det_jupyter.torch.TorchTrial",
    "TFKerasTrial": "det_jupyter.keras.KerasTrial",
    "DeepSpeedTrial": "det_jupyter.torch.TorchTrial",
    "JAXTrial": "a function train(ctx)",
}


def entrypoint_problem(entrypoint: Any) -> str | None:
    """Why a callable cannot be an entrypoint, or ``None`` when it can.

    A class is run as ``Cls.run_trial(ctx)``; a class without ``run_trial`` (a Determined
    ``PyTorchTrial`` subclass, a plain ``class MyTrial:``) would only be instantiated as ``Cls(ctx)``
    and train nothing, so it is refused here, before anything runs. A function must accept one
    positional argument, the trial context.

    Example:
        >>> class MyTrial:
        ...     def __init__(self, context): ...
        >>> print(entrypoint_problem(MyTrial))
        class MyTrial has no run_trial(ctx), so det_jupyter would only call MyTrial(ctx) and train nothing. Fix: pass a function train(ctx), a subclass of det_jupyter.torch.TorchTrial or det_jupyter.keras.KerasTrial, or a class with a classmethod run_trial(ctx)
        >>> entrypoint_problem(lambda ctx: None) is None
        True
    """
    if isinstance(entrypoint, type):
        if callable(getattr(entrypoint, "run_trial", None)):
            return None
        name = entrypoint.__qualname__
        lookalike = next(
            (
                (base, _DETERMINED_TRIALS[base.__name__])
                for base in entrypoint.__mro__[1:]
                if base.__name__ in _DETERMINED_TRIALS
            ),
            None,
        )
        if lookalike is not None:
            base, ours = lookalike
            return (
                f"class {name} subclasses {base.__module__}.{base.__qualname__}, a Determined trial API that "
                f"det_jupyter does not run (it would only call {name}(ctx) and train nothing). Fix: subclass "
                f"{ours} instead (same idea: build_model / build_training_data / build_validation_data), "
                f"or pass {ACCEPTED.split(', ', 1)[0]}"
            )
        return (
            f"class {name} has no run_trial(ctx), so det_jupyter would only call {name}(ctx) and train "
            f"nothing. Fix: pass {ACCEPTED}"
        )
    try:
        signature = inspect.signature(entrypoint)
    except (TypeError, ValueError):  # some builtins have none: let them be
        return None
    try:
        signature.bind(object())
    except TypeError:
        name = getattr(entrypoint, "__name__", None) or type(entrypoint).__name__
        shown = signature.replace(return_annotation=inspect.Signature.empty)
        return (
            f"{name}{shown} cannot be called with the trial context as its one argument. "
            f"Fix: define it as def {name}(ctx): ..."
        )
    return None


def entrypoint_name(entrypoint: Any) -> str:
    """A readable name for an entrypoint (``module.qualname``; a model directory's command or target)."""
    from det_jupyter.worker.command import CommandEntrypoint, DirectoryEntrypoint

    if isinstance(entrypoint, CommandEntrypoint | DirectoryEntrypoint):
        return entrypoint.__name__
    module = getattr(entrypoint, "__module__", None) or ""
    qualname = getattr(entrypoint, "__qualname__", None) or type(entrypoint).__name__
    return f"{module}.{qualname}" if module and module != "__main__" else str(qualname)


def freeze(entrypoint: Any) -> bytes:
    """Cloudpickle an entrypoint by value, including code from local (non-installed) modules.

    Local modules are those of the entrypoint, its base classes and everything it references
    (:func:`~det_jupyter.engine.presubmit.walk_entrypoint`). When pickling fails, the error names the captured
    global that cannot be pickled; a pickle over 50 MB warns, naming the large captured objects.
    """
    from det_jupyter.engine.presubmit import LARGE_GLOBAL_BYTES, check_shippable, walk_entrypoint

    for module in walk_entrypoint(entrypoint).local_modules:
        cloudpickle.register_pickle_by_value(module)
    try:
        blob = bytes(cloudpickle.dumps(entrypoint))
    except Exception as exc:
        check_shippable(entrypoint, warn_bytes=sys.maxsize)  # raises TypeError naming the culprit
        raise TypeError(
            f"cannot ship entrypoint {entrypoint_name(entrypoint)} to workers: {type(exc).__name__}: {exc}. "
            "A global it uses cannot be pickled (an open file, a lock, a client...); create it inside the "
            "function instead"
        ) from exc
    if len(blob) > LARGE_GLOBAL_BYTES:
        check_shippable(entrypoint)  # warns, naming the large captured objects
    return blob


def thaw(blob: bytes) -> Any:
    """Inverse of :func:`freeze`."""
    return cloudpickle.loads(blob)
