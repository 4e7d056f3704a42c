"""The ``custom`` searcher: a user's search method, written against det_jupyter's pure searcher contract.

A config names the class with ``searcher.search_method`` (``my_module:MySearch``, or a class defined
in the notebook) and may pass it keyword arguments with ``searcher.options``::

    searcher:
      name: custom
      metric: val_loss
      search_method: my_search:HalvingSearch
      options: {trials: 8}

The class subclasses :class:`~det_jupyter.searcher.base.SearchMethod` (events in, operations out:
``initial_operations``, ``on_validation_completed``, ``on_trial_exited``, ``progress``,
``state_dict``, ``load_state_dict``) and is built as ``Cls(space, seed=seed, **options)``: ``space``
is the parsed :class:`~det_jupyter.hparams.HParamSpace` (``space.sample(rng)``), ``seed`` the
experiment seed. It must stay pure (no I/O, clocks or global randomness), so a resumed experiment
continues exactly. Determined's own ``custom`` searcher (a Python ``SearchMethod`` driven through
its master's API) was retired; this is the same idea without a master.

Where the controller runs in the det-jupyter master (the default), the class is imported there: a
``module:Class`` must be importable in that process (an installed package, or a module on its
``PYTHONPATH``); a class defined in a notebook needs ``create_experiment(..., master="inprocess")``.

Example:
    >>> from det_jupyter.config import load_config
    >>> cfg = load_config({"searcher": {"name": "custom", "metric": "loss",
    ...                                 "search_method": "det_jupyter.searcher.random:RandomSearch",
    ...                                 "options": {"max_trials": 2, "max_concurrent_trials": 1, "max_time": None}},
    ...                    "hyperparameters": {"lr": 0.1}})
    >>> make_custom_searcher(cfg.searcher, cfg.hparam_space, seed=0).initial_operations()
    [Create(request_id=1, hparams={'lr': 0.1})]
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from det_jupyter.config.formatting import closest
from det_jupyter.errors import ConfigError, FieldError
from det_jupyter.searcher.base import SearchMethod

if TYPE_CHECKING:
    from det_jupyter.config.searcher import SearcherConfig
    from det_jupyter.hparams import HParamSpace

__all__ = ["make_custom_searcher", "resolve_search_method"]

_PATH = "searcher.search_method"
_CONTRACT = "a subclass of det_jupyter.searcher.SearchMethod, built as Cls(space, seed=..., **options)"


def resolve_search_method(reference: str, namespace: Mapping[str, Any] | None = None) -> type[SearchMethod]:
    """The class ``reference`` names: ``module:Class`` imported, or a name looked up in ``namespace``
    (the notebook's: ``__main__``'s globals by default).

    Raises:
        ConfigError: it cannot be found or is not a :class:`SearchMethod` subclass (the error names
            ``searcher.search_method`` and the fix).

    Example:
        >>> resolve_search_method("det_jupyter.searcher.grid:GridSearch").__name__
        'GridSearch'
        >>> resolve_search_method("json:dumps")
        Traceback (most recent call last):
        ...
        det_jupyter.errors.ConfigError: invalid experiment config:
          searcher.search_method: 'json:dumps' is a function, not a SearchMethod class. Fix: name a subclass of det_jupyter.searcher.SearchMethod, built as Cls(space, seed=..., **options)
    """
    found: Any
    if ":" in reference:
        module_name, _, attr = reference.partition(":")
        try:
            found = importlib.import_module(module_name)
            for part in attr.split("."):
                found = getattr(found, part)
        except ImportError as exc:
            fix = "check the module name; it must be importable where the controller runs (the det-jupyter master)"
            raise ConfigError(FieldError(_PATH, f"cannot import {module_name!r} ({exc})", fix)) from None
        except AttributeError:
            raise ConfigError(
                FieldError(_PATH, f"{module_name!r} has no attribute {attr!r}", "check the class name")
            ) from None
    else:
        ns = namespace if namespace is not None else vars(sys.modules["__main__"])
        if reference not in ns:
            near = closest(reference, [k for k, v in ns.items() if isinstance(v, type)])
            fix = (
                f"did you mean {near!r}?"
                if near
                else "define the class in the notebook and submit with master='inprocess', "
                "or write it as module:Class in a module the controller can import"
            )
            raise ConfigError(FieldError(_PATH, f"{reference!r} is not defined in the notebook", fix))
        found = ns[reference]
    if not (isinstance(found, type) and issubclass(found, SearchMethod)):
        kind = "a class" if isinstance(found, type) else f"a {type(found).__name__}"
        message = f"{reference!r} is {kind}, not a SearchMethod class"
        raise ConfigError(FieldError(_PATH, message, "name " + _CONTRACT))
    return found


def make_custom_searcher(
    config: SearcherConfig, space: HParamSpace, seed: int, namespace: Mapping[str, Any] | None = None
) -> SearchMethod:
    """Build the ``custom`` searcher a validated config names: ``Cls(space, seed=seed, **options)``.

    Raises:
        ConfigError: the class cannot be resolved, or refuses its arguments (``searcher.options``).
    """
    if not config.search_method:  # validation requires it; a stand-in config may get here
        raise ConfigError(FieldError(_PATH, "is not set", "set `search_method: module:Class`"))
    cls = resolve_search_method(config.search_method, namespace)
    options = dict(config.options or {})
    factory: Callable[..., SearchMethod] = cls  # the contract: Cls(space, seed=..., **options)
    try:
        searcher = factory(space, seed=seed, **options)
    except TypeError as exc:
        fix = f"make searcher.options match {cls.__name__}'s keyword arguments ({_CONTRACT})"
        raise ConfigError(
            FieldError("searcher.options", f"{cls.__name__}(space, seed=..., **options): {exc}", fix)
        ) from None
    return searcher
