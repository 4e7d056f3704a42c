"""One exception hierarchy for det_jupyter.

Every error a user can cause says which call or field broke which rule, with the offending value and
the fix. Config errors collect *all* problems found, each with its dotted field path.

Example:
    >>> from det_jupyter.errors import ConfigError, FieldError
    >>> err = ConfigError([FieldError("searcher.max_trials", "must be >= 1 (got 0)", "set it to 1 or more")])
    >>> print(err)
    invalid experiment config:
      searcher.max_trials: must be >= 1 (got 0). Fix: set it to 1 or more
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CheckpointError",
    "ClusterError",
    "ConfigError",
    "ConfigWarning",
    "DetJupyterError",
    "DetJupyterWarning",
    "FieldError",
    "NotFoundError",
    "StoreError",
    "TrialError",
]


class DetJupyterError(Exception):
    """Base class of every error det_jupyter raises on purpose."""


@dataclass(frozen=True)
class FieldError:
    """One problem in an experiment config.

    Attributes:
        path: dotted path of the field, e.g. ``searcher.max_length.epochs`` or ``hyperparameters.lr.minval``.
        message: what is wrong, including the value found.
        fix: how to fix it, or ``None`` when the message says it all.
        line: 1-based line number in the YAML source, when known.
    """

    path: str
    message: str
    fix: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path or '<config>'}"
        if self.line is not None:
            where += f" (line {self.line})"
        text = f"{where}: {self.message}"
        if self.fix:
            text += f". Fix: {self.fix}"
        return text


class ConfigError(DetJupyterError, ValueError):
    """An experiment config is invalid; ``errors`` lists every problem found."""

    def __init__(self, errors: list[FieldError] | FieldError | str) -> None:
        if isinstance(errors, str):
            errors = [FieldError("", errors)]
        elif isinstance(errors, FieldError):
            errors = [errors]
        self.errors: list[FieldError] = list(errors)
        super().__init__(self._format())

    def _format(self) -> str:
        lines = ["invalid experiment config:"]
        lines += [f"  {e}" for e in self.errors]
        return "\n".join(lines)

    @property
    def paths(self) -> list[str]:
        """The dotted paths of all fields in error (handy in tests and UIs)."""
        return [e.path for e in self.errors]


class NotFoundError(DetJupyterError, LookupError):
    """An experiment, trial or checkpoint id that the store does not hold."""


class StoreError(DetJupyterError):
    """The experiment store cannot be opened or migrated."""


class CheckpointError(DetJupyterError):
    """A checkpoint cannot be saved, found, downloaded or loaded."""


class ClusterError(DetJupyterError):
    """The Dask cluster cannot run what was asked (e.g. no worker offers the slots a trial needs)."""


class TrialError(DetJupyterError):
    """A trial's user code failed; the message carries the worker's traceback."""


class DetJupyterWarning(UserWarning):
    """Base class of every warning det_jupyter emits on purpose: it runs, but probably not as meant."""


class ConfigWarning(DetJupyterWarning):
    """A valid experiment config that is probably not what was meant (e.g. ``log`` bounds written as values).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     _ = __import__("det_jupyter").load_config({
        ...         "hyperparameters": {"lr": {"type": "log", "minval": 0.0001, "maxval": 0.1}},
        ...         "searcher": {"name": "single", "metric": "loss", "max_length": {"batches": 5}}})
        >>> caught[0].category.__name__
        'ConfigWarning'
    """
