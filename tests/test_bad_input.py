"""Bad input, answered before anything runs (docs/errors.md lists each case and its test here).

Fast tests call the submit path up to the point that refuses; the ones that need a cluster or a
subprocess are marked ``slow``.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest

import det_jupyter
from det_jupyter.engine.definition import resolve_entrypoint
from det_jupyter.errors import ConfigError

CONFIG: dict[str, Any] = {
    "name": "bad-input",
    "searcher": {"name": "single", "metric": "val_loss", "max_length": {"batches": 2}},
}


# --- entrypoints ----------------------------------------------------------------------------------


class DeterminedStyleTrial:
    """What a Determined user brings: a class built with a context, no run_trial."""

    def __init__(self, context: Any) -> None:
        self.context = context

    def train_batch(self, batch: Any, epoch_idx: int, batch_idx: int) -> dict[str, float]:
        return {"loss": 0.0}


def _fake_determined_base() -> type:
    module = types.ModuleType("determined.pytorch")
    base = type("PyTorchTrial", (), {"__module__": "determined.pytorch"})
    module.PyTorchTrial = base  # type: ignore[attr-defined]
    return base


def test_a_plain_class_entrypoint_is_refused_at_submit(det_home: Path) -> None:
    with pytest.raises(TypeError) as info:
        det_jupyter.create_experiment(CONFIG, DeterminedStyleTrial, cluster="tcp://127.0.0.1:1")
    text = str(info.value)
    assert (
        "create_experiment(entrypoint=" in text and "class DeterminedStyleTrial has no run_trial(ctx)" in text
    )
    assert "det_jupyter.torch.TorchTrial" in text and "a function train(ctx)" in text
    assert not (det_home / "det_jupyter.db").exists()  # nothing was written


def test_a_determined_trial_lookalike_is_refused_naming_our_class() -> None:
    lookalike = type("MyTrial", (_fake_determined_base(),), {"__module__": "__main__"})
    with pytest.raises(
        TypeError,
        match=r"subclasses determined\.pytorch\.PyTorchTrial.*subclass det_jupyter\.torch\.TorchTrial instead",
    ):
        resolve_entrypoint(lookalike, None)


def test_a_named_class_entrypoint_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_entrypoint(None, "MyTrial", {"MyTrial": DeterminedStyleTrial})
    assert info.value.paths == ["entrypoint"]
    assert "'MyTrial': class DeterminedStyleTrial has no run_trial(ctx)" in str(info.value)


def test_a_function_that_cannot_take_the_context_is_refused() -> None:
    def train() -> None:
        pass

    with pytest.raises(TypeError, match=r"train\(\) cannot be called with the trial context.*train\(ctx\)"):
        resolve_entrypoint(train, None)


def test_accepted_entrypoints_pass() -> None:
    class WithRunTrial:
        @classmethod
        def run_trial(cls, ctx: Any) -> None:
            pass

    def train(ctx: Any, extra: int = 1) -> None:
        pass

    assert resolve_entrypoint(WithRunTrial, None) is WithRunTrial
    assert resolve_entrypoint(train, None) is train  # TorchTrial / KerasTrial: frameworks_tests
