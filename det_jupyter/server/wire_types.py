"""Generate ``labextension/src/wire.ts``, the sidebar's copy of the wire format, from the Python side.

The REST API's JSON shapes are the ``TypedDict`` s of :mod:`det_jupyter.server.wire_models`. This
module walks them with :func:`typing.get_type_hints` and writes one TypeScript interface per shape
(``ExperimentSummaryModel`` becomes ``IExperimentSummaryModel``), with a doc comment per field taken
from the class's Google-style ``Attributes:`` section. A ``str`` field annotated with an enum
(``Annotated[str, ExperimentState]``) becomes a union of the enum's values, emitted once as a type
alias named after the enum. ``tests/server_tests/test_wire_format.py`` fails when the committed file
differs from what this module renders, so the two sides cannot drift.

Regenerate after changing a shape (from the repository root)::

    .venv/bin/python -m det_jupyter.server.wire_types

Example:
    >>> "export interface IExperimentSummaryModel {" in render_typescript()
    True
"""

from __future__ import annotations

import argparse
import ast
import difflib
import enum
import inspect
import re
import sys
import textwrap
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints, is_typeddict

from det_jupyter.server import wire_models as shapes

__all__ = ["WIRE_TS", "field_docs", "main", "render_typescript", "wire_models"]

#: Where the generated file lives in a source checkout.
WIRE_TS = Path(__file__).resolve().parents[2] / "labextension" / "src" / "wire.ts"

REGENERATE = "python -m det_jupyter.server.wire_types"

_PRINT_WIDTH = 100  # labextension's prettier printWidth: the output must pass `jlpm prettier:check`

_HEADER = f"""\
// The REST API's wire format, generated from the TypedDicts of det_jupyter/server/wire_models.py.
// Do not edit: change the Python side, then run `{REGENERATE}`.
"""


def wire_models() -> list[type]:
    """The ``TypedDict`` s that :mod:`~det_jupyter.server.wire_models` exports, in source order."""
    models = [getattr(shapes, name) for name in shapes.__all__]
    models = [m for m in models if is_typeddict(m)]
    return sorted(models, key=lambda m: inspect.getsourcelines(m)[1])


def _class_def(model: type) -> ast.ClassDef:
    node = ast.parse(textwrap.dedent(inspect.getsource(model))).body[0]
    assert isinstance(node, ast.ClassDef)
    return node


def _base_model(model: type) -> type | None:
    # Python < 3.12 drops a TypedDict's TypedDict bases at runtime (__bases__ is (dict,)): read the source
    bases = [b.id for b in _class_def(model).bases if isinstance(b, ast.Name) and b.id != "TypedDict"]
    if not bases:
        return None
    if len(bases) > 1:
        raise TypeError(f"{model.__name__}: one TypedDict base at most (wire.ts `extends` one interface)")
    base = getattr(shapes, bases[0])
    assert is_typeddict(base)
    return base  # type: ignore[no-any-return]


def _own_fields(model: type) -> list[str]:
    base = _base_model(model)
    inherited = set(get_type_hints(base)) if base else set()
    return [name for name in model.__annotations__ if name not in inherited]


def _split_doc(doc: str | None) -> tuple[str, dict[str, str]]:
    """A Google-style docstring's text before its sections, and its ``Attributes:`` entries."""
    lines = inspect.cleandoc(doc or "").splitlines()
    summary: list[str] = []
    fields: dict[str, str] = {}
    current: str | None = None
    in_attributes = False
    for line in lines:
        if line.strip() == "Attributes:":
            in_attributes = True
            continue
        if not in_attributes:
            summary.append(line)
        elif line and not line.startswith(" "):  # the next section
            in_attributes = False
        elif match := re.fullmatch(r" {4}(\w+):\s*(.*)", line):
            current = match.group(1)
            fields[current] = match.group(2)
        elif current is not None and line.strip():
            fields[current] += " " + line.strip()
    return " ".join(" ".join(summary).split()), fields


def field_docs(model: type) -> dict[str, str]:
    """The doc of each field ``model`` declares itself (not inherited), from its ``Attributes:`` section.

    Raises:
        TypeError: when a declared field is undocumented or a documented one is not declared.
    """
    _, docs = _split_doc(model.__doc__)
    own = _own_fields(model)
    missing = [f for f in own if f not in docs]
    extra = [f for f in docs if f not in own]
    if missing or extra:
        raise TypeError(
            f"{model.__name__}'s docstring must document each of its own fields under 'Attributes:' "
            f"(undocumented: {missing}, documented but not declared: {extra})"
        )
    return {f: docs[f] for f in own}


def _markdown(text: str) -> str:
    """reST inline markup as the Markdown that TSDoc renders; never ends the comment early."""
    text = re.sub(r":\w+:`~?(?:[\w.]+\.)?([\w]+)`", r"`\1`", text)  # :func:`~a.b.c` -> `c`
    text = text.replace("``", "`")
    return text.replace("*/", "*\\/")


def _comment(text: str, indent: str) -> list[str]:
    text = _markdown(text)
    one_line = f"{indent}/** {text} */"
    if len(one_line) <= _PRINT_WIDTH:
        return [one_line]
    wrapped = textwrap.wrap(text, _PRINT_WIDTH - len(indent) - 3, break_on_hyphens=False)
    return [f"{indent}/**", *(f"{indent} * {line}" for line in wrapped), f"{indent} */"]


class _Renderer:
    """Maps Python annotations to TypeScript, collecting the enums it meets."""

    def __init__(self, models: Sequence[type]) -> None:
        self.models = set(models)
        self.enums: dict[str, type[enum.Enum]] = {}

    def ts(self, tp: Any, where: str) -> str:
        origin, args = get_origin(tp), get_args(tp)
        if origin is Annotated:
            enums = [m for m in tp.__metadata__ if isinstance(m, type) and issubclass(m, enum.Enum)]
            if enums and args[0] is str:
                self.enums.setdefault(enums[0].__name__, enums[0])
                return enums[0].__name__
            return self.ts(args[0], where)
        if tp is Any:
            return "unknown"
        if tp is type(None):
            return "null"
        if tp is bool:
            return "boolean"
        if tp in (int, float):
            return "number"
        if tp is str:
            return "string"
        if is_typeddict(tp):
            if tp not in self.models:
                raise TypeError(f"{where}: {tp.__name__} is not in wire_models.__all__; export it")
            return f"I{tp.__name__}"
        if origin in (Union, types.UnionType):
            return " | ".join(self.ts(a, where) for a in args)
        if origin is list:
            item = self.ts(args[0], where)
            return f"({item})[]" if " | " in item else f"{item}[]"
        if origin is dict and args[0] is str:
            return f"Record<string, {self.ts(args[1], where)}>"
        raise TypeError(f"{where}: no TypeScript for {tp!r}; map it in det_jupyter/server/wire_types.py")


def _enum_alias(name: str, values: type[enum.Enum]) -> list[str]:
    members = [f"'{m.value}'" for m in values]
    lines = _comment(" ".join(inspect.cleandoc(values.__doc__ or name).split()), "")
    union = " | ".join(members)
    # prettier's three layouts of a union, the first that fits
    if len(one_line := f"export type {name} = {union};") <= _PRINT_WIDTH:
        return [*lines, one_line]
    if len(indented := f"  {union};") <= _PRINT_WIDTH:
        return [*lines, f"export type {name} =", indented]
    return [*lines, f"export type {name} =", *(f"  | {m}" for m in members[:-1]), f"  | {members[-1]};"]


def render_typescript() -> str:
    """The text of ``labextension/src/wire.ts`` for the current ``TypedDict`` s."""
    models = wire_models()
    renderer = _Renderer(models)
    interfaces: list[str] = []
    for model in models:
        hints = get_type_hints(model, include_extras=True)
        summary, _ = _split_doc(model.__doc__)
        base = _base_model(model)
        extends = f" extends I{base.__name__}" if base else ""
        interfaces += ["", *_comment(f"{summary.rstrip('.')} (``{model.__name__}``).", "")]
        interfaces.append(f"export interface I{model.__name__}{extends} {{")
        for name, doc in field_docs(model).items():
            interfaces += _comment(doc, "  ")
            interfaces.append(f"  {name}: {renderer.ts(hints[name], f'{model.__name__}.{name}')};")
        interfaces.append("}")
    aliases: list[str] = []
    for name, values in renderer.enums.items():
        aliases += ["", *_enum_alias(name, values)]
    return _HEADER + "\n".join(aliases + interfaces + _palette_constants()) + "\n"


def _ts_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _palette_constants() -> list[str]:
    """:mod:`det_jupyter.server.palette` as TypeScript constants: one palette for sidebar and widget."""
    from det_jupyter.server import palette

    lines = [
        "",
        *_comment(
            "Colour of every experiment and trial state, shared with the notebook widget "
            "(``STATE_COLORS`` of det_jupyter/server/palette.py).",
            "",
        ),
    ]
    lines.append("export const STATE_COLORS: Record<string, IStateColorModel> = {")
    for state, color in palette.STATE_COLORS.items():
        fields = ", ".join(
            f"{k}: {_ts_string(v)}"
            for k, v in (("css", color["css"]), ("light", color["light"]), ("dark", color["dark"]))
        )
        lines.append(f"  {state}: {{ {fields} }},")
    lines[-1] = lines[-1].rstrip(",")
    lines.append("};")
    lines += [
        "",
        *_comment("Marks the best trial in every view.", ""),
        f"export const BEST_MARK = {_ts_string(palette.BEST_MARK)};",
    ]
    lines += [
        "",
        *_comment("Written for a missing value.", ""),
        f"export const NO_VALUE = {_ts_string(palette.NO_VALUE)};",
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check``, compare) ``wire.ts``; the exit status is 1 when a check finds it stale."""
    parser = argparse.ArgumentParser(prog="python -m det_jupyter.server.wire_types", description=__doc__)
    parser.add_argument("--output", type=Path, default=WIRE_TS, help="default: %(default)s")
    parser.add_argument("--check", action="store_true", help="only report whether the file is current")
    args = parser.parse_args(argv)
    text = render_typescript()
    current = args.output.read_text() if args.output.exists() else ""
    if args.check:
        if current == text:
            return 0
        sys.stdout.writelines(
            difflib.unified_diff(
                current.splitlines(True), text.splitlines(True), str(args.output), "generated"
            )
        )
        print(f"{args.output} is stale: run `{REGENERATE}`", file=sys.stderr)
        return 1
    if current != text:
        tmp = args.output.with_suffix(".ts.tmp")
        tmp.write_text(text)
        tmp.replace(args.output)  # atomic: a watching `tsc -w` never reads half a file
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
