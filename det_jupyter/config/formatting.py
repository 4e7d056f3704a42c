"""Config problems in our words: field paths, values found, fixes and YAML line numbers.

The config models in :mod:`det_jupyter.config.experiment` collect *every* problem of a section before raising.
They do it with pydantic line errors of one custom type (``det_config``) whose context carries our
message and fix, so pydantic nests them under the right field path for us. This module

* builds those line errors (:class:`Problem`, :func:`problems_error`),
* words pydantic's own errors the same way (:func:`from_pydantic`),
* turns the final ``ValidationError`` into :class:`~det_jupyter.errors.FieldError` s (:func:`field_errors`),
* reads YAML keeping the node tree, and maps dotted paths to 1-based lines (:func:`with_lines`).

Example:
    >>> data, root = parse_yaml("searcher:\\n  max_trails: 3\\n")
    >>> line_of(root, ("searcher", "max_trails"))
    2
    >>> closest("max_trails", ["max_trials", "metric"])
    'max_trials'
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from det_jupyter.errors import ConfigError, FieldError

__all__ = [
    "ERROR_TYPE",
    "ConfigLoader",
    "Problem",
    "choice_fix",
    "closest",
    "duplicate_keys",
    "field_errors",
    "format_path",
    "from_pydantic",
    "line_of",
    "parse_path",
    "parse_yaml",
    "problems_error",
    "show",
    "unknown_keys",
    "with_lines",
]

ERROR_TYPE = "det_config"
Loc = tuple[str | int, ...]

# Fixes for required fields, by field name (the only required fields are these).
_MISSING_FIXES = {
    "searcher": "add a searcher section, e.g. `searcher: {name: single, metric: val_loss, "
    "time_metric: batches, max_time: 1000}`",
    "metric": "add `metric: <name of the validation metric to optimise, e.g. val_loss>`",
    "name": "add `name: single` (or grid, random, adaptive_asha, async_halving)",
}


class Problem(NamedTuple):
    """One problem found while validating a section; ``loc`` is relative to that section."""

    loc: Loc
    message: str
    fix: str | None = None
    value: Any = None


def show(value: Any) -> str:
    """A short ``repr`` of a value found in a config, for messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word`` (difflib), or ``None`` when nothing is close."""
    matches = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def choice_fix(word: Any, choices: Sequence[str]) -> str:
    """``did you mean 'x'?`` when a choice is close to ``word``, else the list of choices."""
    best = closest(str(word), choices)
    return f"did you mean {best!r}?" if best else "use one of: " + ", ".join(choices)


def unknown_keys(
    data: Mapping[Any, Any], valid: Sequence[str], unsupported: Mapping[str, tuple[str, str]]
) -> list[Problem]:
    """Problems for the keys of ``data`` that are not in ``valid``, each suggesting the closest key.

    ``unsupported`` maps keys a Determined user may bring along to a (message, fix) pair that says
    more than "unknown key".
    """
    problems = []
    for key, value in data.items():
        if key in valid:
            continue
        if key in unsupported:
            message, fix = unsupported[key]
            problems.append(Problem((str(key),), message, fix, value))
            continue
        best = closest(str(key), valid)
        fix = f"did you mean {best!r}?" if best else "remove it (valid keys: " + ", ".join(valid) + ")"
        problems.append(Problem((str(key),), "unknown key", fix, value))
    return problems


def _describe(err: ErrorDetails) -> tuple[str, str | None]:
    """Our message and fix for one of pydantic's own errors."""
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    got = f" (got {show(value)})"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be an integer" + got, "write a whole number without quotes, e.g. 10"
    if kind in ("float_type", "float_parsing"):
        return "must be a number" + got, "write a number without quotes, e.g. 0.5"
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false" + got, "write true or false without quotes"
    if kind == "string_type":
        return "must be a string" + got, "put the value in quotes"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be a mapping of keys to values" + got, "write it as `key: value` lines indented below it"
    if kind == "list_type":
        return "must be a list" + got, "write it as [a, b] or as `- item` lines"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return "must be one of " + ", ".join(choices) + got, choice_fix(value, choices)
    bounds = {
        "greater_than_equal": (">=", "ge", "use {} or more"),
        "greater_than": (">", "gt", "use a value above {}"),
        "less_than_equal": ("<=", "le", "use {} or less"),
        "less_than": ("<", "lt", "use a value below {}"),
    }
    if kind in bounds:
        op, key, fix = bounds[kind]
        return f"must be {op} {ctx.get(key)}" + got, fix.format(ctx.get(key))
    if kind == "missing":
        name = str(err["loc"][-1]) if err["loc"] else ""
        return "is required", _MISSING_FIXES.get(name, "add it")
    if kind == "string_too_short":
        return "must not be empty", "give it a value"
    return err["msg"] + got, None


def from_pydantic(exc: ValidationError, *, skip_own_extra: bool = False) -> list[Problem]:
    """Problems for all errors in ``exc``, ours (``det_config``) and pydantic's alike.

    Args:
        exc: the error raised by a model's validation.
        skip_own_extra: drop pydantic's "extra inputs" errors on the section's own keys, because the
            section reported them already with a suggestion (:func:`unknown_keys`).
    """
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == ERROR_TYPE:
            ctx = err.get("ctx") or {}
            problems.append(Problem(loc, str(ctx.get("message")), ctx.get("fix"), err.get("input")))
        elif not (skip_own_extra and err["type"] == "extra_forbidden" and len(loc) == 1):
            message, fix = _describe(err)
            problems.append(Problem(loc, message, fix, err.get("input")))
    return problems


def problems_error(title: str, problems: Iterable[Problem]) -> ValidationError:
    """A ``ValidationError`` carrying ``problems`` as ``det_config`` line errors (for validators)."""
    line_errors = [
        InitErrorDetails(
            type=PydanticCustomError(ERROR_TYPE, "{message}", {"message": p.message, "fix": p.fix}),
            loc=p.loc,
            input=p.value,
        )
        for p in problems
    ]
    return ValidationError.from_exception_data(title, line_errors)


def format_path(loc: Iterable[str | int]) -> str:
    """``("environment", "env_vars", 1)`` → ``"environment.env_vars[1]"``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def parse_path(path: str) -> Loc:
    """The inverse of :func:`format_path`; also accepts ``a.b.1`` for list items."""
    return tuple(int(p[1:-1]) if p.startswith("[") else p for p in re.findall(r"\[\d+\]|[^.\[\]]+", path))


def field_errors(exc: ValidationError) -> list[FieldError]:
    """The :class:`FieldError` s for every problem in a validation error of a whole config."""
    return [FieldError(format_path(p.loc), p.message, p.fix) for p in from_pydantic(exc)]


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading numbers as YAML 1.2 does: ``1e-3`` and ``1.0e3`` are floats.

    PyYAML follows YAML 1.1, where a float needs a dot and a signed exponent, so ``learning_rate: 1e-3``
    would load as the *string* ``'1e-3'``. Determined's configs (and JSON) mean a number.

    Example:
        >>> yaml.load("[1e-3, 1.0e3, 2E+2, 10, '1e-3', 1_000]", Loader=ConfigLoader)
        [0.001, 1000.0, 200.0, 10, '1e-3', 1000]
    """


ConfigLoader.add_implicit_resolver(  # after PyYAML's own: ints and dotted floats resolve as before
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)


def duplicate_keys(root: yaml.Node | None) -> list[FieldError]:
    """One error per key written twice in the same mapping (PyYAML would silently keep the last).

    Example:
        >>> _, root = parse_yaml("searcher:\\n  metric: a\\n  name: single\\n  metric: b\\n", check_duplicates=False)
        >>> print(duplicate_keys(root)[0])
        searcher.metric (line 4): duplicate key: written on line 2 and again on line 4. Fix: keep one of them
    """
    errors: list[FieldError] = []

    def walk(node: yaml.Node, loc: Loc, seen_nodes: set[int]) -> None:
        if id(node) in seen_nodes:  # an alias to a node already checked
            return
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, yaml.Node] = {}
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                    continue
                if key.value in first:
                    before = first[key.value].start_mark.line + 1
                    line = key.start_mark.line + 1
                    errors.append(
                        FieldError(
                            format_path((*loc, key.value)),
                            f"duplicate key: written on line {before} and again on line {line}",
                            "keep one of them",
                            line,
                        )
                    )
                else:
                    first[key.value] = key
                walk(value, (*loc, key.value), seen_nodes)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*loc, i), seen_nodes)

    if root is not None:
        walk(root, (), set())
    return sorted(errors, key=lambda e: e.line or 0)


def parse_yaml(text: str, *, check_duplicates: bool = True) -> tuple[Any, yaml.Node | None]:
    """Parse YAML text into (data, node tree); a syntax error becomes a :class:`ConfigError` with its line.

    Numbers are read as YAML 1.2 reads them (:class:`ConfigLoader`); a key written twice in one mapping
    is a :class:`ConfigError` naming both lines (:func:`duplicate_keys`), unless ``check_duplicates``
    is false.
    """
    loader = ConfigLoader(text)
    try:
        node = loader.get_single_node()
        if check_duplicates and (duplicates := duplicate_keys(node)):
            raise ConfigError(duplicates)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark is not None and context_mark is not mark:
            context += f" (from line {context_mark.line + 1})"
        problem = ": ".join(str(p) for p in (context, getattr(exc, "problem", None)) if p)
        raise ConfigError(
            FieldError(
                "",
                f"YAML syntax error: {problem or exc}",
                "check the indentation and the `key: value` syntax on that line and the one before",
                mark.line + 1 if mark is not None else None,
            )
        ) from None
    finally:
        loader.dispose()
    return data, node


def line_of(root: yaml.Node | None, loc: Loc) -> int | None:
    """The 1-based line of the key at ``loc``, or of its deepest existing parent key."""
    node, line = root, None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            matches = [
                (k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)
            ]
            if not matches:
                return line
            key, node = matches[-1]  # PyYAML keeps the last of duplicated keys
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and str(part).isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def with_lines(errors: Iterable[FieldError], root: yaml.Node | None) -> list[FieldError]:
    """``errors`` with the YAML line of each path filled in (unchanged when there is no YAML)."""
    if root is None:
        return list(errors)
    return [
        e
        if e.line is not None or not e.path
        else dataclasses.replace(e, line=line_of(root, parse_path(e.path)))
        for e in errors
    ]
