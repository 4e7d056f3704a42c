"""Determined's published expconf v0 schema cases: its valid cases load, its invalid ones are refused.

The cases are Determined's (``tests/fixtures/determined/schema_cases.yaml``); what det_jupyter does
with each is ours: a case valid for Determined loads (cluster-only settings included), a case
invalid for Determined is refused with a :class:`~det_jupyter.errors.ConfigError` that names a field.
The one deliberate difference: searchers Determined retired are refused, pointing at their
replacement.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from det_jupyter.config.names import RETIRED_SEARCHERS
from det_jupyter.errors import ConfigError

from .determined_schema import validate_as

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parents[1] / "fixtures" / "determined" / "schema_cases.yaml").read_text()
)


def _retired(case: dict[str, Any]) -> str | None:
    body = case["case"]
    name = body.get("name") if isinstance(body, dict) and case["schema"].startswith("searcher") else None
    return name if name in RETIRED_SEARCHERS else None


def _id(case: dict[str, Any]) -> str:
    return f"{case['source']}:{case['name']}@{case['schema']}"


def test_the_corpus_covers_every_kind_of_case() -> None:
    assert len(CASES) > 150
    assert sum(not c["valid"] for c in CASES) > 40
    assert {"experiment", "searcher", "environment", "resources", "checkpoint-storage", "azure"} <= {
        c["schema"] for c in CASES
    }


@pytest.mark.parametrize("case", [c for c in CASES if c["valid"] and not _retired(c)], ids=_id)
def test_determineds_valid_cases_are_accepted(case: dict[str, Any]) -> None:
    validate_as(case["schema"], case["case"])


@pytest.mark.parametrize("case", [c for c in CASES if not c["valid"]], ids=_id)
def test_determineds_invalid_cases_are_refused_naming_the_field(case: dict[str, Any]) -> None:
    with pytest.raises((ConfigError, pydantic.ValidationError)) as info:
        validate_as(case["schema"], case["case"])
    if isinstance(info.value, ConfigError):
        assert all(error.path for error in info.value.errors), info.value
    else:
        assert all(error["loc"] for error in info.value.errors()), info.value


@pytest.mark.parametrize("case", [c for c in CASES if _retired(c)], ids=_id)
def test_retired_searchers_are_refused_pointing_at_their_replacement(case: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        validate_as(case["schema"], case["case"])
    [error] = info.value.errors
    assert error.path == "searcher.name" and "retired" in error.message
    assert "adaptive_asha" in (error.fix or "") or "async_halving" in (error.fix or "")
