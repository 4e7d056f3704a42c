"""Shared by the benchmark scripts: write a result table into ``docs/benchmarks.md`` between markers."""

from __future__ import annotations

__all__ = ["write_section"]


def write_section(path: str, name: str, text: str) -> None:
    """Replace (or append) the section between markers in the benchmarks markdown file."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    try:
        with open(path) as f:
            doc = f.read()
    except FileNotFoundError:
        doc = "# Benchmarks\n\nNumbers measured by `bench/`; each table states its machine and goal.\n"
    block = f"{begin}\n{text}\n{end}"
    if begin in doc and end in doc:
        doc = doc[: doc.index(begin)] + block + doc[doc.index(end) + len(end) :]
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(doc)
