"""Hyperparameter spaces: parsing, errors, sampling, grids (Determined's grid_test.go cases)."""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from det_jupyter.errors import ConfigError
from det_jupyter.hparams import (
    CategoricalHParam,
    ConstHParam,
    DoubleHParam,
    HParamSpace,
    IntHParam,
    LogHParam,
    parse_hyperparameters,
)


def test_parse_every_type() -> None:
    space = parse_hyperparameters(
        {
            "bs": 32,
            "layers": [64, 32],
            "c": {"type": "const", "val": {"a": 1}},
            "units": {"type": "int", "minval": 4, "maxval": 32},
            "dropout": {"type": "double", "minval": 0.0, "maxval": 0.5, "count": 3},
            "lr": {"type": "log", "minval": -4, "maxval": -1},
            "lr2": {"type": "log", "base": 2, "minval": -4, "maxval": -1, "count": 4},
            "act": {"type": "categorical", "vals": ["relu", None, 3, [1]]},
            "opt": {"name": "sgd", "momentum": {"type": "double", "minval": 0.8, "maxval": 0.99}},
        }
    )
    assert space["bs"] == ConstHParam(32)
    assert space["layers"] == ConstHParam([64, 32])
    assert space["c"] == ConstHParam({"a": 1})
    assert space["units"] == IntHParam(4, 32)
    assert space["dropout"] == DoubleHParam(0.0, 0.5, 3)
    assert space["lr"] == LogHParam(-4.0, -1.0, 10.0)
    assert space["lr2"] == LogHParam(-4.0, -1.0, 2.0, 4)
    assert space["act"] == CategoricalHParam(("relu", None, 3, [1]))
    assert isinstance(space["opt"], HParamSpace)
    assert space.names == [
        "act", "bs", "c", "dropout", "layers", "lr", "lr2", "opt.momentum", "opt.name", "units"
    ]  # fmt: skip


def test_none_is_empty_space() -> None:
    assert parse_hyperparameters(None) == HParamSpace()
    assert HParamSpace().grid() == [{}]
    assert HParamSpace().sample(random.Random(0)) == {}


def test_all_errors_collected_with_paths_values_and_fixes() -> None:
    with pytest.raises(ConfigError) as info:
        parse_hyperparameters(
            {
                "a": {"type": "int", "minval": 1.5, "maxval": 4},
                "b": {"type": "double", "minval": 2, "maxval": 1, "count": 0},
                "c": {"type": "log", "minval": 0},
                "d": {"type": "categorical", "vals": [], "extra": 1},
                "e": {"type": "object", "vals": {"x": 1}},
                "f": {"type": "bogus"},
                "g": {"nested": {"type": "int", "minval": "1", "maxval": 2}},
                "h": {"type": "log", "minval": 0, "maxval": 1, "base": -2},
                "i": {"type": "const"},
            },
            path="hyperparameters",
        )
    err = info.value
    assert err.paths == [
        "hyperparameters.a.minval",
        "hyperparameters.b.count",
        "hyperparameters.b",
        "hyperparameters.c.maxval",
        "hyperparameters.d",
        "hyperparameters.d.vals",
        "hyperparameters.e.type",
        "hyperparameters.f.type",
        "hyperparameters.g.nested.minval",
        "hyperparameters.h.base",
        "hyperparameters.i.val",
    ]
    by_path = {e.path: e for e in err.errors}
    assert "1.5" in by_path["hyperparameters.a.minval"].message
    assert "minval (2) must be less than maxval (1)" in by_path["hyperparameters.b"].message
    assert "(got 0)" in by_path["hyperparameters.b.count"].message
    assert "['extra']" in by_path["hyperparameters.d"].message
    assert "drop `type`" in (by_path["hyperparameters.e.type"].fix or "")
    assert all(e.fix for e in err.errors)


def test_equal_bounds_suggest_const() -> None:
    with pytest.raises(ConfigError, match="type: const"):
        parse_hyperparameters({"x": {"type": "double", "minval": 1, "maxval": 1}})


def test_bools_are_not_numbers_but_integral_floats_are_ints() -> None:
    with pytest.raises(ConfigError, match=r"hyperparameters\.x\.maxval: must be an integer \(got True\)"):
        parse_hyperparameters({"x": {"type": "int", "minval": 0, "maxval": True}})
    assert parse_hyperparameters({"x": {"type": "int", "minval": 0.0, "maxval": 3.0}})["x"] == IntHParam(0, 3)


def test_sampling_types_bounds_and_nesting() -> None:
    space = parse_hyperparameters(
        {
            "units": {"type": "int", "minval": 4, "maxval": 6},
            "lr": {"type": "log", "minval": -3, "maxval": -1},
            "p": {"type": "double", "minval": 0.1, "maxval": 0.2},
            "act": {"type": "categorical", "vals": ["relu", "tanh"]},
            "opt": {"inner": {"k": {"type": "int", "minval": 0, "maxval": 1}}, "name": "sgd"},
            "empty": {},
        }
    )
    rng = random.Random(0)
    seen_units = set()
    for _ in range(200):
        s = space.sample(rng)
        assert type(s["units"]) is int and 4 <= s["units"] <= 6
        seen_units.add(s["units"])
        assert 1e-3 <= s["lr"] <= 1e-1
        assert 0.1 <= s["p"] <= 0.2
        assert s["act"] in ("relu", "tanh")
        assert s["opt"]["name"] == "sgd" and s["opt"]["inner"]["k"] in (0, 1)
        assert s["empty"] == {}
    assert seen_units == {4, 5, 6}
    assert space.sample(random.Random(7)) == space.sample(random.Random(7))


def test_samples_do_not_alias_the_space() -> None:
    space = parse_hyperparameters({"layers": [1, 2], "c": {"type": "categorical", "vals": [[1]]}})
    s = space.sample(random.Random(0))
    s["layers"].append(3)
    s["c"].append(2)
    assert space.sample(random.Random(0)) == {"layers": [1, 2], "c": [1]}


# Grid semantics, from the brief and Determined's master/pkg/searcher/grid_test.go.


def _grid(raw: dict) -> list[dict]:
    return parse_hyperparameters(raw).grid()


def test_grid_count_semantics() -> None:
    assert _grid({"x": {"type": "int", "minval": 32, "maxval": 128, "count": 3}}) == [
        {"x": 32},
        {"x": 80},
        {"x": 128},
    ]
    logs = [p["x"] for p in _grid({"x": {"type": "log", "minval": -3, "maxval": -1, "count": 3}})]
    assert logs == pytest.approx([1e-3, 1e-2, 1e-1], rel=1e-12)
    assert [p["x"] for p in _grid({"x": {"type": "double", "minval": 0, "maxval": 1, "count": 5}})] == [
        0.0, 0.25, 0.5, 0.75, 1.0
    ]  # fmt: skip


def test_grid_count_one_is_the_midpoint() -> None:
    assert _grid({"x": {"type": "double", "minval": 1, "maxval": 2, "count": 1}}) == [{"x": 1.5}]
    assert _grid({"x": {"type": "int", "minval": 0, "maxval": 3, "count": 1}}) == [{"x": 2}]  # 1.5 rounds up
    assert _grid({"x": {"type": "int", "minval": -3, "maxval": 0, "count": 1}}) == [{"x": -2}]  # away from 0
    (point,) = _grid({"x": {"type": "log", "minval": -3, "maxval": -1, "count": 1}})
    assert point["x"] == pytest.approx(1e-2)


def test_int_grid_rounds_half_away_and_clamps_count() -> None:
    assert [p["x"] for p in _grid({"x": {"type": "int", "minval": 0, "maxval": 4, "count": 5}})] == [
        0,
        1,
        2,
        3,
        4,
    ]
    assert [p["x"] for p in _grid({"x": {"type": "int", "minval": -4, "maxval": -2, "count": 3}})] == [
        -4,
        -3,
        -2,
    ]
    assert [p["x"] for p in _grid({"x": {"type": "int", "minval": 0, "maxval": 2, "count": 10}})] == [0, 1, 2]
    # 0 + i*5/4 = 0, 1.25, 2.5, 3.75, 5 -> Go's math.Round -> 0, 1, 3, 4, 5 (Python's round gives 2 for 2.5)
    assert [p["x"] for p in _grid({"x": {"type": "int", "minval": 0, "maxval": 5, "count": 5}})] == [
        0,
        1,
        3,
        4,
        5,
    ]
    assert all(
        type(p["x"]) is int for p in _grid({"x": {"type": "int", "minval": 0, "maxval": 9, "count": 4}})
    )


def test_grid_order_matches_determined() -> None:  # TestGrid / TestNestedGrid
    expected = [(a, b) for a in (0, 10, 20) for b in (0, 5, 10)]
    flat = _grid({"1": {"type": "int", "minval": 0, "maxval": 20, "count": 3},
                  "2": {"type": "int", "minval": 0, "maxval": 10, "count": 3}})  # fmt: skip
    assert [(p["1"], p["2"]) for p in flat] == expected
    nested = _grid({"1": {"type": "int", "minval": 0, "maxval": 20, "count": 3},
                    "2": {"3": {"type": "int", "minval": 0, "maxval": 10, "count": 3}}})  # fmt: skip
    assert [(p["1"], p["2"]["3"]) for p in nested] == expected


def test_nested_grid_further() -> None:  # TestNestedGridFurther
    space = parse_hyperparameters(
        {
            "constant": 2,
            "a": {"b": {"c1": {"type": "categorical", "vals": [3, 5]},
                        "c2": {"type": "int", "minval": 7, "maxval": 11, "count": 2}}},
            "f": {"type": "double", "minval": 13.0, "maxval": 17.0, "count": 2},
            "l": {"type": "log", "minval": 1, "maxval": 2, "base": 10, "count": 2},
        }
    )  # fmt: skip
    grid = space.grid()
    assert space.grid_size() == len(grid) == 16
    encoded = {json.dumps(p, sort_keys=True) for p in grid}
    assert len(encoded) == 16
    assert '{"a": {"b": {"c1": 5, "c2": 11}}, "constant": 2, "f": 17.0, "l": 100.0}' in encoded


def test_empty_nested_space_survives_in_the_grid() -> None:
    grid = _grid({"x": {"empty": {}, "full": {"type": "categorical", "vals": [1, 2, 3]}}})
    assert grid == [{"x": {"empty": {}, "full": v}} for v in (1, 2, 3)]


def test_grid_without_count_names_every_hparam_and_the_fix() -> None:
    space = parse_hyperparameters(
        {
            "i": {"type": "int", "minval": 0, "maxval": 3},
            "d": {"type": "double", "minval": 0, "maxval": 1},
            "n": {"l": {"type": "log", "minval": 0, "maxval": 1}},
            "c": {"type": "categorical", "vals": [1, 2]},
        }
    )
    for call in (space.grid, space.grid_size):
        with pytest.raises(ConfigError) as info:
            call()
        assert info.value.paths == [
            "hyperparameters.d.count",
            "hyperparameters.i.count",
            "hyperparameters.n.l.count",
        ]
        assert "count: N" in (info.value.errors[0].fix or "")


# Property tests over random spaces.

_leaf = st.one_of(
    st.builds(lambda v: v, st.one_of(st.integers(), st.text(max_size=3), st.none(), st.lists(st.integers(), max_size=2))),
    st.builds(
        lambda lo, w, c: {"type": "int", "minval": lo, "maxval": lo + w, "count": c},
        st.integers(-50, 50), st.integers(1, 30), st.one_of(st.none(), st.integers(1, 4)),
    ),
    st.builds(
        lambda lo, w, c: {"type": "double", "minval": lo, "maxval": lo + w, "count": c},
        st.floats(-10, 10), st.floats(0.5, 10), st.one_of(st.none(), st.integers(1, 4)),
    ),
    st.builds(
        lambda lo, w, b, c: {"type": "log", "minval": lo, "maxval": lo + w, "base": b, "count": c},
        st.floats(-5, 0), st.floats(0.5, 3), st.sampled_from([2.0, 10.0]), st.one_of(st.none(), st.integers(1, 3)),
    ),
    st.builds(lambda vals: {"type": "categorical", "vals": vals}, st.lists(st.integers(0, 9), min_size=1, max_size=3)),
)  # fmt: skip
_names = st.text(alphabet="abcxyz_", min_size=1, max_size=4)
_space = st.recursive(
    st.dictionaries(_names, _leaf, max_size=3),
    lambda inner: st.dictionaries(_names, st.one_of(_leaf, inner), max_size=3),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None)
@given(raw=_space, seed=st.integers(0, 2**32))
def test_properties_of_random_spaces(raw: dict, seed: int) -> None:
    space = parse_hyperparameters(raw)
    assert parse_hyperparameters(space.to_dict()) == space
    assert parse_hyperparameters(json.loads(json.dumps(space.to_dict()))) == space
    sample = space.sample(random.Random(seed))
    assert sample == space.sample(random.Random(seed))
    json.dumps(sample)

    assert len(space.names) == len(set(space.names))
    try:
        grid = space.grid()
    except ConfigError as err:
        assert all(p.endswith(".count") for p in err.paths)
        return
    assert len(grid) == space.grid_size() >= 1
    for point in grid:
        json.dumps(point)
    for name in space.names:
        leaf = space
        for part in name.split("."):
            leaf = leaf[part]  # type: ignore[assignment,index]
        values = [_dig(p, name) for p in grid]
        if isinstance(leaf, IntHParam):
            assert all(type(v) is int and leaf.minval <= v <= leaf.maxval for v in values)
            assert len(set(values)) == min(leaf.count or 0, leaf.maxval - leaf.minval + 1)
        elif isinstance(leaf, DoubleHParam | LogHParam):
            lo, hi = (leaf.minval, leaf.maxval)
            if isinstance(leaf, LogHParam):
                lo, hi = leaf.base**lo, leaf.base**hi
            assert all(lo - 1e-9 * abs(lo) <= v <= hi + 1e-9 * abs(hi) for v in values)
            assert not math.isnan(sum(values))


def _dig(point: dict, dotted: str) -> object:
    node: object = point
    for part in dotted.split("."):
        assert isinstance(node, dict)
        node = node[part]
    return node
