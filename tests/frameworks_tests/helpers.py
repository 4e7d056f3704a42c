"""Shared helpers: trial contexts over a given storage directory, and the iris data set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from det_jupyter.worker.context import ListSink, TrialContext, TrialSpec


def make_context(
    storage: Path,
    hparams: dict[str, Any] | None = None,
    *,
    metric: str = "val_loss",
    smaller_is_better: bool = True,
    time_metric: str = "batches",
    max_time: int = 10,
    validation_period: tuple[str, int] | None = None,
    checkpoint_period: tuple[str, int] | None = None,
    records_per_epoch: int | None = None,
    latest: TrialContext | None = None,
    seed: int = 7,
    checkpoint_policy: str = "none",
    perform_initial_validation: bool = False,
    scheduling_unit: int | None = None,
    trial_id: int = 1,
) -> TrialContext:
    """A local TrialContext; ``latest=<a previous run's context>`` resumes from its newest checkpoint.

    ``checkpoint_policy`` defaults to ``none`` (not Determined's ``best``), so tests that count
    checkpoints see only the period / end / stop rules; ``test_policies.py`` passes each policy.
    ``latest`` with another ``trial_id`` is a warm start (another trial's checkpoint).
    """
    spec = TrialSpec(
        experiment_id=1,
        trial_id=trial_id,
        run_id=0 if latest is None or latest.trial_id != trial_id else latest.run_id + 1,
        hparams=dict(hparams or {"global_batch_size": 16}),
        metric=metric,
        smaller_is_better=smaller_is_better,
        time_metric=time_metric,
        max_time=max_time,
        storage_url=str(storage),
        latest_checkpoint=None if latest is None else latest.checkpoint.latest,
        latest_checkpoint_steps=0 if latest is None else latest.checkpoint.latest_steps,
        seed=seed,
        data={"source": "iris"},
        min_validation_period=validation_period,
        min_checkpoint_period=checkpoint_period,
        records_per_epoch=records_per_epoch,
        checkpoint_policy=checkpoint_policy,
        perform_initial_validation=perform_initial_validation,
        scheduling_unit=scheduling_unit,
    )
    return TrialContext(spec, ListSink(), flush_interval=0.0)


def sink(ctx: TrialContext) -> ListSink:
    assert isinstance(ctx.sink, ListSink)
    return ctx.sink


def checkpoint_events(ctx: TrialContext) -> list[dict[str, Any]]:
    return [e for e in sink(ctx).events if e["type"] == "checkpoint"]


def iris() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardised iris split 120 / 30 (fixed permutation): ``x_train, y_train, x_val, y_val``."""
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    x = ((x - x.mean(0)) / x.std(0)).astype("float32")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order].astype("int64")
    return x[:120], y[:120], x[120:], y[120:]
