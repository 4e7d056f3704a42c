"""Where ``shared/examples`` (the configs users bring, used as fixtures) lies: beside the checkout, or at
``/work/shared/examples`` when CI clones main elsewhere with a copy of shared/ there."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = next(
    (
        p
        for p in (Path(__file__).resolve().parents[2] / "shared" / "examples", Path("/work/shared/examples"))
        if p.is_dir()
    ),
    Path("/work/shared/examples"),
)
