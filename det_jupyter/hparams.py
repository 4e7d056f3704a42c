"""Hyperparameter spaces: const, int, double, log, categorical and nested; sampling and grids.

The syntax and semantics follow Determined's ``hyperparameters`` section
(``master/pkg/schemas/expconf/hyperparameters_config.go``, ``schemas/expconf/v0/hyperparameter*.json``,
``master/pkg/searcher/hyperparameters.go`` and ``grid.go``):

* ``{type: const, val: x}``, or any value that is not a mapping (a bare scalar or list), is a constant.
* ``{type: int|double, minval, maxval, count?}``: ``minval < maxval``; ``count`` (>= 1) is needed only
  by the grid searcher.
* ``{type: log, minval, maxval, base?, count?}``: ``minval``/``maxval`` are *exponents*; samples are
  ``base ** U(minval, maxval)``. Determined requires ``base``; we default it to 10.
* ``{type: categorical, vals: [...]}``: any values, at least one.
* A mapping without ``type`` is a nested space. Like Determined, explicit ``type: object`` is *not*
  accepted (Determined: "if a hyperparameter object's type is set, it must be one of int, double, log,
  const or categorical").

Grid points, as Determined's ``getGridAxes``: ``count`` values evenly spaced from ``minval`` to
``maxval`` with both ends included, and ``count: 1`` gives the midpoint. Int values are rounded half
away from zero (Go's ``math.Round``) after ``count`` is clamped to ``maxval - minval + 1`` (so the
values are distinct). Log grids space the *exponents* evenly. Names are visited in sorted order at
every level and the grid is the cartesian product with the first name varying slowest.

Example:
    >>> import random
    >>> space = parse_hyperparameters({
    ...     "batch_size": 32,
    ...     "lr": {"type": "log", "minval": -3, "maxval": -1, "count": 3},
    ...     "optimizer": {"name": {"type": "categorical", "vals": ["sgd", "adam"]}},
    ... })
    >>> space.names
    ['batch_size', 'lr', 'optimizer.name']
    >>> space.grid_size()
    6
    >>> sorted(space.sample(random.Random(0)))
    ['batch_size', 'lr', 'optimizer']
"""

from __future__ import annotations

import copy
import itertools
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from det_jupyter.errors import ConfigError, FieldError

__all__ = [
    "CategoricalHParam",
    "ConstHParam",
    "DoubleHParam",
    "HParam",
    "HParamSpace",
    "IntHParam",
    "LogHParam",
    "parse_hyperparameters",
]

_TYPES = ("const", "int", "double", "log", "categorical")
_COUNT_FIX = "add `count: N` (N >= 1): the grid takes N values evenly spaced from minval to maxval"


def _round_half_away(x: float) -> int:
    """Round like Go's ``math.Round`` (half away from zero), not Python's banker's rounding."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


@dataclass(frozen=True)
class ConstHParam:
    """A fixed value (any JSON value)."""

    val: Any
    type: ClassVar[str] = "const"

    def sample(self, rng: random.Random) -> Any:
        return copy.deepcopy(self.val)

    def grid_values(self) -> list[Any]:
        return [copy.deepcopy(self.val)]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "const", "val": copy.deepcopy(self.val)}


def _range_to_dict(self: Any) -> dict[str, Any]:
    """``to_dict`` of int, double and log: the type, then every field except an unset ``count``."""
    return {"type": self.type, **{k: v for k, v in asdict(self).items() if k != "count" or v is not None}}


@dataclass(frozen=True)
class IntHParam:
    """Integers uniformly drawn from ``[minval, maxval]`` (both included)."""

    minval: int
    maxval: int
    count: int | None = None
    type: ClassVar[str] = "int"

    def sample(self, rng: random.Random) -> int:
        return rng.randint(self.minval, self.maxval)

    def grid_values(self) -> list[Any]:
        count = min(_need_count(self.count), self.maxval - self.minval + 1)
        if count == 1:
            return [_round_half_away((self.minval + self.maxval) / 2.0)]
        span = self.maxval - self.minval
        values = [_round_half_away(self.minval + i * span / (count - 1)) for i in range(count)]
        return list(dict.fromkeys(values))  # distinct already after the clamp; kept as a guard

    to_dict = _range_to_dict


@dataclass(frozen=True)
class DoubleHParam:
    """Floats uniformly drawn from ``[minval, maxval)``."""

    minval: float
    maxval: float
    count: int | None = None
    type: ClassVar[str] = "double"

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.minval, self.maxval)

    def grid_values(self) -> list[Any]:
        return _linspace(self.minval, self.maxval, _need_count(self.count))

    to_dict = _range_to_dict


@dataclass(frozen=True)
class LogHParam:
    """``base ** e`` with the exponent ``e`` uniform in ``[minval, maxval)``."""

    minval: float
    maxval: float
    base: float = 10.0
    count: int | None = None
    type: ClassVar[str] = "log"

    def sample(self, rng: random.Random) -> float:
        return float(self.base ** rng.uniform(self.minval, self.maxval))

    def grid_values(self) -> list[Any]:
        exponents = _linspace(self.minval, self.maxval, _need_count(self.count))
        return [float(self.base**e) for e in exponents]

    to_dict = _range_to_dict


@dataclass(frozen=True)
class CategoricalHParam:
    """One of ``vals``, uniformly."""

    vals: tuple[Any, ...]
    type: ClassVar[str] = "categorical"

    def sample(self, rng: random.Random) -> Any:
        return copy.deepcopy(self.vals[rng.randrange(len(self.vals))])

    def grid_values(self) -> list[Any]:
        return [copy.deepcopy(v) for v in self.vals]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "categorical", "vals": copy.deepcopy(list(self.vals))}


class _MissingCount(Exception):
    """Raised by ``grid_values`` when ``count`` is unset; turned into a ConfigError by the space."""


def _need_count(count: int | None) -> int:
    if count is None:
        raise _MissingCount
    return count


def _linspace(lo: float, hi: float, count: int) -> list[float]:
    # Same expression order as Determined's grid.go, so the floats match bit for bit.
    if count == 1:
        return [(lo + hi) / 2.0]
    return [lo + i * (hi - lo) / (count - 1) for i in range(count)]


Leaf = ConstHParam | IntHParam | DoubleHParam | LogHParam | CategoricalHParam


@dataclass(frozen=True)
class HParamSpace:
    """An immutable hyperparameter space; build it with :func:`parse_hyperparameters`.

    Attributes:
        params: ``(name, hparam)`` pairs sorted by name; an hparam is a leaf or a nested ``HParamSpace``.

    Example:
        >>> space = parse_hyperparameters({"units": {"type": "int", "minval": 32, "maxval": 128, "count": 3}})
        >>> space.grid()
        [{'units': 32}, {'units': 80}, {'units': 128}]
        >>> parse_hyperparameters(space.to_dict()) == space
        True
    """

    params: tuple[tuple[str, HParam], ...] = ()

    def __iter__(self) -> Iterator[tuple[str, HParam]]:
        return iter(self.params)

    def __getitem__(self, name: str) -> HParam:
        for key, value in self.params:
            if key == name:
                return value
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        """Leaf names, dotted for nested ones (``optimizer.lr``), in sorted order."""
        out: list[str] = []
        for name, p in self.params:
            if isinstance(p, HParamSpace):
                out += [f"{name}.{sub}" for sub in p.names]
            else:
                out.append(name)
        return out

    def sample(self, rng: random.Random) -> dict[str, Any]:
        """Draw one point; names are visited in sorted order so a seeded ``rng`` is reproducible.

        Example:
            >>> space = parse_hyperparameters({"n": {"type": "int", "minval": 1, "maxval": 3}})
            >>> space.sample(random.Random(1)) == space.sample(random.Random(1))
            True
        """
        return {name: p.sample(rng) for name, p in self.params}

    def _axes(self, route: tuple[str, ...], missing: list[str]) -> list[tuple[tuple[str, ...], list[Any]]]:
        axes: list[tuple[tuple[str, ...], list[Any]]] = []
        for name, p in self.params:
            sub = (*route, name)
            if isinstance(p, HParamSpace):
                if not p.params:  # an empty nested space stays in every point as {}
                    axes.append((sub, [{}]))
                else:
                    axes += p._axes(sub, missing)
                continue
            try:
                axes.append((sub, p.grid_values()))
            except _MissingCount:
                missing.append(".".join(sub))
        return axes

    def _checked_axes(self, path: str) -> list[tuple[tuple[str, ...], list[Any]]]:
        missing: list[str] = []
        axes = self._axes((), missing)
        if missing:
            raise ConfigError(
                [
                    FieldError(
                        f"{path}.{name}.count", "the grid searcher needs `count` (got none)", _COUNT_FIX
                    )
                    for name in missing
                ]
            )
        return axes

    def grid(self, path: str = "hyperparameters") -> list[dict[str, Any]]:
        """All grid points: the cartesian product of every hparam's values, first name slowest.

        Args:
            path: field path used in error messages.

        Raises:
            ConfigError: an int, double or log hparam has no ``count`` (each one is listed).
        """
        axes = self._checked_axes(path)
        points = []
        for combo in itertools.product(*(values for _, values in axes)):
            point: dict[str, Any] = {}
            for (route, _), value in zip(axes, combo):
                node = point
                for key in route[:-1]:
                    node = node.setdefault(key, {})
                node[route[-1]] = copy.deepcopy(value)
            points.append(point)
        return points

    def grid_size(self, path: str = "hyperparameters") -> int:
        """Number of grid points, without building them. Raises like :meth:`grid`."""
        return math.prod(len(values) for _, values in self._checked_axes(path))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe normalised form: every leaf as ``{type: ...}``, nested spaces as plain mappings."""
        return {name: p.to_dict() for name, p in self.params}


HParam = Leaf | HParamSpace
"""A leaf hyperparameter or a nested space."""


def parse_hyperparameters(raw: Mapping[str, Any] | None, path: str = "hyperparameters") -> HParamSpace:
    """Parse and validate a Determined-style ``hyperparameters`` section.

    Args:
        raw: the mapping from the config (``None`` means an empty space).
        path: dotted path of the section, used in error messages.

    Returns:
        The immutable :class:`HParamSpace`.

    Raises:
        ConfigError: listing every problem found, each with its path (``hyperparameters.lr.minval``),
            the value and the fix.

    Example:
        >>> parse_hyperparameters({"lr": {"type": "double", "minval": 0.1, "maxval": 0.01}})
        Traceback (most recent call last):
        ...
        det_jupyter.errors.ConfigError: invalid experiment config:
          hyperparameters.lr: minval (0.1) must be less than maxval (0.01). Fix: swap them or widen the range
    """
    errors: list[FieldError] = []
    if raw is None:
        return HParamSpace()
    if not isinstance(raw, Mapping):
        raise ConfigError(FieldError(path, f"must be a mapping of names to hyperparameters (got {raw!r})"))
    space = _parse_space(raw, path, errors)
    if errors:
        raise ConfigError(errors)
    return space


def _parse_space(raw: Mapping[Any, Any], path: str, errors: list[FieldError]) -> HParamSpace:
    params: list[tuple[str, HParam]] = []
    for name, value in raw.items():
        if not isinstance(name, str) or not name:
            msg = f"hyperparameter names must be non-empty strings (got {name!r})"
            errors.append(FieldError(f"{path}.{name}", msg, "quote the name in YAML, e.g. '\"1\": ...'"))
            continue
        parsed = _parse_one(value, f"{path}.{name}", errors)
        if parsed is not None:
            params.append((name, parsed))
    return HParamSpace(tuple(sorted(params, key=lambda kv: kv[0])))


_FIELDS: dict[str, tuple[set[str], set[str]]] = {  # type -> (required keys, optional keys)
    "const": ({"val"}, set()),
    "int": ({"minval", "maxval"}, {"count"}),
    "double": ({"minval", "maxval"}, {"count"}),
    "log": ({"minval", "maxval"}, {"base", "count"}),
    "categorical": ({"vals"}, set()),
}


def _parse_one(value: Any, path: str, errors: list[FieldError]) -> HParam | None:
    if not isinstance(value, Mapping):  # Determined: any non-mapping value is a constant
        return ConstHParam(copy.deepcopy(value))
    if "type" not in value:
        return _parse_space(value, path, errors)
    kind, n_before = value["type"], len(errors)
    if kind == "object":
        fix = "drop `type` and write the nested hyperparameters as a plain mapping"
        errors.append(
            FieldError(f"{path}.type", "explicit `type: object` is not supported (as in Determined)", fix)
        )
        return None
    if not isinstance(kind, str) or kind not in _FIELDS:
        fix = f"use one of {', '.join(_TYPES)}, or no `type` for a nested mapping"
        errors.append(FieldError(f"{path}.type", f"unknown hyperparameter type {kind!r}", fix))
        return None
    required, optional = _FIELDS[kind]
    for key in sorted(required - set(value)):
        errors.append(
            FieldError(f"{path}.{key}", f"`{key}` is required for `type: {kind}`", f"add `{key}: ...`")
        )
    unknown = sorted(str(k) for k in set(value) - required - optional - {"type"})
    if unknown:
        fix = f"remove them; allowed keys are {', '.join(sorted(required | optional | {'type'}))}"
        errors.append(FieldError(path, f"unknown keys {unknown} for `type: {kind}`", fix))
    if any(e.path != path for e in errors[n_before:]):  # a required key is missing
        return None
    parsed: HParam | None
    if kind == "const":
        parsed = ConstHParam(copy.deepcopy(value["val"]))
    elif kind == "categorical":
        vals = value["vals"]
        parsed = None
        if isinstance(vals, list | tuple) and vals:
            parsed = CategoricalHParam(tuple(copy.deepcopy(list(vals))))
        else:
            fix = "list at least one value, e.g. `vals: [relu, tanh]`"
            errors.append(FieldError(f"{path}.vals", f"must be a non-empty list (got {vals!r})", fix))
    else:
        parsed = _parse_range(kind, value, path, errors)
    return parsed if len(errors) == n_before else None


def _parse_range(kind: str, value: Mapping[str, Any], path: str, errors: list[FieldError]) -> HParam | None:
    lo = _number(value["minval"], f"{path}.minval", errors, integer=kind == "int")
    hi = _number(value["maxval"], f"{path}.maxval", errors, integer=kind == "int")
    count = None
    if value.get("count") is not None:
        count = _number(value["count"], f"{path}.count", errors, integer=True)
        if count is not None and count < 1:
            fix = "set `count` to 1 or more (or remove it if you do not use the grid searcher)"
            errors.append(FieldError(f"{path}.count", f"must be >= 1 (got {count!r})", fix))
    base = 10.0
    if kind == "log" and "base" in value:
        b = _number(value["base"], f"{path}.base", errors, integer=False)
        if b is not None and b <= 0:
            errors.append(FieldError(f"{path}.base", f"must be > 0 (got {b!r})", "use e.g. `base: 10`"))
        base = float(b) if b is not None else base
    if lo is None or hi is None:
        return None
    if not lo < hi:
        fix = "swap them or widen the range" if lo > hi else "for a single value use `type: const`"
        errors.append(FieldError(path, f"minval ({lo!r}) must be less than maxval ({hi!r})", fix))
        return None
    cnt = None if count is None else int(count)
    if kind == "int":
        return IntHParam(int(lo), int(hi), cnt)
    if kind == "double":
        return DoubleHParam(float(lo), float(hi), cnt)
    return LogHParam(float(lo), float(hi), base, cnt)


def _number(x: Any, path: str, errors: list[FieldError], *, integer: bool) -> float | int | None:
    """Validate a JSON number; like JSON Schema, ``integer`` accepts 3.0 and returns it as 3."""
    kind = "an integer" if integer else "a number"
    if isinstance(x, bool) or not isinstance(x, int | float):
        errors.append(FieldError(path, f"must be {kind} (got {x!r})", f"write {kind}, e.g. 1"))
    elif isinstance(x, float) and not math.isfinite(x):
        errors.append(FieldError(path, f"must be finite (got {x!r})", "use a finite number"))
    elif integer and isinstance(x, float) and not x.is_integer():
        errors.append(
            FieldError(path, f"must be an integer (got {x!r})", f"use {math.floor(x)} or {math.ceil(x)}")
        )
    else:
        return int(x) if integer else x
    return None
