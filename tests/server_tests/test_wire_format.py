"""One wire format: the committed ``wire.ts`` is what the TypedDicts generate, and the serializers emit
exactly the keys (and value types) their TypedDicts declare, checked on the output of a real store.
"""

from __future__ import annotations

import difflib
import enum
import json
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest

from det_jupyter.server import palette, serializers
from det_jupyter.server import wire_models as wire_models_module
from det_jupyter.server.service import ExperimentService
from det_jupyter.server.wire_types import (
    REGENERATE,
    WIRE_TS,
    field_docs,
    main,
    render_typescript,
    wire_models,
)
from det_jupyter.states import ControlAction
from det_jupyter.worker.gpu import GpuInfo

from .helpers import fill_store

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_wire_ts_is_generated_from_the_typeddicts() -> None:
    assert WIRE_TS == ROOT / "labextension" / "src" / "wire.ts"
    committed = WIRE_TS.read_text() if WIRE_TS.exists() else ""
    generated = render_typescript()
    if committed != generated:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(True), generated.splitlines(True), "committed wire.ts", "generated"
            )
        )
        pytest.fail(
            "labextension/src/wire.ts does not match the TypedDicts in det_jupyter/server/wire_models.py: "
            f"run `.venv/bin/{REGENERATE}` from the repository root to regenerate it, then "
            f"`cd labextension && jlpm build`.\n{diff}",
            pytrace=False,
        )


def test_check_mode_finds_a_stale_file_and_writing_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "wire.ts"
    out.write_text("export interface IStale {}\n")
    assert main(["--output", str(out), "--check"]) == 1
    assert f"run `{REGENERATE}`" in capsys.readouterr().err
    assert main(["--output", str(out)]) == 0
    assert out.read_text() == render_typescript()
    assert main(["--output", str(out), "--check"]) == 0


class UndocumentedModel(TypedDict):
    """A shape whose docstring forgets a field.

    Attributes:
        documented: Has a doc.
        gone: No longer a field.
    """

    documented: int
    undocumented: str


def test_each_field_needs_a_doc_and_each_doc_a_field() -> None:
    with pytest.raises(TypeError, match=r"undocumented: \['undocumented'\].*not declared: \['gone'\]"):
        field_docs(UndocumentedModel)


def test_every_wire_model_documents_its_fields() -> None:
    names = {m.__name__ for m in wire_models()}
    assert {"ExperimentListModel", "TrialDetailModel", "ClusterModel", "ActionModel"} <= names
    for model in wire_models():
        assert all(doc.strip() for doc in field_docs(model).values()), model.__name__


# --- serializer output against the TypedDicts ---------------------------------------------------


def check_shape(value: Any, tp: Any, path: str, seen: set[type]) -> None:
    """Fail unless ``value`` is exactly of the wire type ``tp``: a TypedDict's keys, no more, no fewer."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        check_shape(value, args[0], path, seen)
        for meta in tp.__metadata__:
            if isinstance(meta, type) and issubclass(meta, enum.Enum):
                assert value in {m.value for m in meta}, f"{path}: {value!r} is no {meta.__name__}"
    elif is_typeddict(tp):
        seen.add(tp)
        assert isinstance(value, dict), f"{path}: {type(value).__name__}, not a {tp.__name__}"
        hints = get_type_hints(tp, include_extras=True)
        extra, missing = sorted(set(value) - set(hints)), sorted(set(hints) - set(value))
        assert not extra and not missing, (
            f"{path}: the serializer's keys differ from {tp.__name__}'s "
            f"(not declared: {extra}, not emitted: {missing})"
        )
        for key, hint in hints.items():
            check_shape(value[key], hint, f"{path}.{key}", seen)
    elif origin in (Union, types.UnionType):
        if value is None:
            assert type(None) in args, f"{path}: None, but {tp} is not optional"
        else:
            (hint,) = [a for a in args if a is not type(None)]
            check_shape(value, hint, path, seen)
    elif origin is list:
        assert isinstance(value, list), f"{path}: {type(value).__name__}, not a list"
        for i, item in enumerate(value):
            check_shape(item, args[0], f"{path}[{i}]", seen)
    elif origin is dict:
        assert isinstance(value, dict), f"{path}: {type(value).__name__}, not a dict"
        for key, item in value.items():
            assert isinstance(key, str), f"{path}: key {key!r} is not a string"
            check_shape(item, args[1], f"{path}[{key!r}]", seen)
    elif tp is float:
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{path}: {value!r}"
    elif tp in (int, str, bool):
        assert type(value) is tp, f"{path}: {value!r} is not a {tp.__name__}"
    else:
        assert tp is Any, f"{path}: no check for {tp!r}"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ExperimentService]:
    """A service over a real store filled as a controller writes it."""
    service = ExperimentService(store_path=str(tmp_path / "s.db"))
    yield service
    service.close()


def test_serializers_emit_exactly_what_their_typeddicts_declare(service: ExperimentService) -> None:
    ids = fill_store(service.store)
    gpu = GpuInfo(0, "GPU-1", "H200", 141_000.0, 1_000.0, float("nan"))
    worker = {
        "address": "tcp://10.0.0.2:4000",
        "name": "w0",
        "host": "node",
        "nthreads": 2,
        "resources": {"GPU": 1, "CPU": 2},
        "cuda_visible_devices": "0",  # describe_worker says more than the wire carries
        "gpus": [gpu.to_dict()],
    }
    summary = {
        "scheduler": "tcp://10.0.0.1:8786",
        "dashboard_link": "http://10.0.0.1:8787/status",
        "workers": [worker],
        "slots": {"GPU": 1.0, "CPU": 2.0},
    }
    outputs: list[tuple[str, Any, Any]] = [
        ("experiments", service.list_experiments(limit=50, offset=0), wire_models_module.ExperimentListModel),
        (
            "experiment",
            service.experiment(ids["done"], limit=2, offset=0),
            wire_models_module.ExperimentDetailModel,
        ),
        ("trials", service.trials(ids["running"], limit=50, offset=0), wire_models_module.TrialListModel),
        (
            "trial",
            service.trial(ids["nan_trial"], max_points=5, logs_tail=3),
            wire_models_module.TrialDetailModel,
        ),
        (
            "metrics",
            service.trial_metrics(ids["trial"], kind=None, max_points=None),
            list[wire_models_module.MetricSeriesModel],
        ),
        ("logs", service.trial_logs(ids["trial"], after=0, tail=5), wire_models_module.LogPageModel),
        ("palette", palette.STATE_COLORS, dict[str, wire_models_module.StateColorModel]),
        ("action", service.act(ids["running"], ControlAction.PAUSE), wire_models_module.ActionModel),
        (
            "cluster",
            serializers.serialize_cluster(summary, server_gpus=[], message="m"),
            wire_models_module.ClusterModel,
        ),
        (
            "no cluster",
            serializers.serialize_cluster(None, server_gpus=[gpu], message="m"),
            wire_models_module.ClusterModel,
        ),
    ]
    seen: set[type] = set()
    for name, value, tp in outputs:
        json.dumps(value, allow_nan=False)  # what the handlers write, and browsers can parse
        check_shape(value, tp, name, seen)
    # a shape no test output reaches could drift unnoticed: each must be met (and non-empty lists)
    assert {m.__name__ for m in wire_models()} - {m.__name__ for m in seen} == set()
