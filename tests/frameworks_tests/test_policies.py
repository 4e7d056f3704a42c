"""Determined's checkpoint_policy, perform_initial_validation and scheduling_unit in TorchTrial / KerasTrial.

The torch trials script their validation metric by the batch it is measured at, so which validations
are "best" is known in advance; keras runs the real iris model (the policies that do not depend on
values, and the step-0 validation and reporting unit).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from det_jupyter.frameworks._common import Progress, Schedule, TrainingMeans  # noqa: E402
from det_jupyter.torch import TorchTrial  # noqa: E402
from det_jupyter.worker.context import local_context  # noqa: E402

from .helpers import checkpoint_events, iris, make_context, sink  # noqa: E402

X_TRAIN, Y_TRAIN, X_VAL, Y_VAL = iris()


class ScriptedTrial(TorchTrial):
    """Iris, 8 batches of 16 per epoch; ``val_loss`` comes from :attr:`script` by batches trained."""

    script: ClassVar[dict[int, float]] = {2: 0.5, 4: 0.7, 6: 0.4, 8: 0.6}
    """Best so far at 2 and 6 when smaller is better; at 2 and 4 when larger is."""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.batches = context.checkpoint.latest_steps  # where this run starts (0, or the restored steps)

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

    def build_training_data(self) -> DataLoader:
        data = TensorDataset(torch.from_numpy(X_TRAIN), torch.from_numpy(Y_TRAIN))
        return DataLoader(data, batch_size=16, shuffle=True)

    def build_validation_data(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.from_numpy(X_VAL), torch.from_numpy(Y_VAL)), batch_size=30)

    def train_batch(self, model: nn.Module, batch: Any, optimizer: torch.optim.Optimizer) -> Any:
        out = super().train_batch(model, batch, optimizer)
        self.batches += 1
        return out

    def evaluate_batch(self, model: nn.Module, batch: Any) -> dict[str, Any]:
        return {"val_loss": self.script.get(self.batches, 9.0)}


def stopping_at(base: type[ScriptedTrial], n: int) -> type[ScriptedTrial]:
    """A subclass that raises the stop flag (as the controller would) once ``n`` batches are trained."""

    class Stopping(base):  # type: ignore[valid-type,misc]
        def train_batch(self, model: nn.Module, batch: Any, optimizer: torch.optim.Optimizer) -> Any:
            out = super().train_batch(model, batch, optimizer)
            if self.batches == n:
                self.context._stop.set()
            return out

    return Stopping


def steps(records: list[dict[str, Any]]) -> list[int]:
    return [r["steps"] for r in records]


def saved_at(ctx: Any) -> list[int]:
    return [e["steps"] for e in checkpoint_events(ctx)]


def run(tmp_path: Path, **spec: Any) -> Any:
    ctx = make_context(tmp_path, time_metric="batches", max_time=8, validation_period=("batches", 2), **spec)
    ScriptedTrial.run_trial(ctx)
    return ctx


# --- checkpoint_policy --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "period", "expected"),
    [
        ("all", None, [2, 4, 6, 8]),  # after every validation
        ("best", None, [2, 6, 8]),  # after the trial's best so far (and at the end)
        ("none", None, [8]),  # only at the end
        ("none", ("batches", 3), [3, 6, 8]),  # ... and at min_checkpoint_period
        ("best", ("batches", 3), [2, 3, 6, 8]),  # 6 is both best and a period: saved once
    ],
)
def test_each_checkpoint_policy_saves_what_determined_would(
    tmp_path: Path, policy: str, period: tuple[str, int] | None, expected: list[int]
) -> None:
    ctx = run(tmp_path, checkpoint_policy=policy, checkpoint_period=period)
    assert steps(sink(ctx).validation) == [2, 4, 6, 8]
    assert saved_at(ctx) == expected


def test_best_follows_smaller_is_better(tmp_path: Path) -> None:
    ctx = run(tmp_path, checkpoint_policy="best", smaller_is_better=False)
    assert saved_at(ctx) == [2, 4, 8]  # 0.5, then 0.7; 0.4 and 0.6 are worse


def test_best_compares_with_the_best_before_a_restart(tmp_path: Path) -> None:
    """A resumed run keeps the trial's best (in trial_state.json): 0.6 at batch 6 is not best after 0.5."""

    class Rescripted(ScriptedTrial):
        script: ClassVar[dict[int, float]] = {2: 0.5, 4: 0.7, 6: 0.6, 8: 0.4}

    first = make_context(
        tmp_path,
        time_metric="batches",
        max_time=8,
        validation_period=("batches", 2),
        checkpoint_policy="best",
    )
    stopping_at(Rescripted, 5).run_trial(first)
    assert saved_at(first) == [2, 5]  # best at 2, then the stop
    second = make_context(
        tmp_path,
        time_metric="batches",
        max_time=8,
        validation_period=("batches", 2),
        checkpoint_policy="best",
        latest=first,
    )
    Rescripted.run_trial(second)
    assert steps(sink(second).validation) == [6, 8]
    assert saved_at(second) == [8]  # 0.6 at 6 is worse than the restored 0.5: no checkpoint there


def test_an_unrankable_value_is_never_best() -> None:
    schedule = Schedule(local_context({}, metric="m", smaller_is_better=False), Progress())
    results = [
        schedule.validated(Progress(batches=b), {"m": v})
        for b, v in [(1, float("nan")), (2, None), (3, 0.1), (4, float("inf")), (5, 0.2)]
    ]
    assert results == [False, False, True, False, True] and schedule.best == 0.2


def test_a_wrong_policy_in_a_hand_built_spec_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="checkpoint_policy='sometimes': use one of best, all, none"):
        run(tmp_path, checkpoint_policy="sometimes")


# --- perform_initial_validation -----------------------------------------------------------------


def test_initial_validation_at_steps_0_on_a_fresh_trial_only(tmp_path: Path) -> None:
    ctx = run(tmp_path, perform_initial_validation=True, checkpoint_policy="all")
    assert steps(sink(ctx).validation) == [0, 2, 4, 6, 8]
    first = sink(ctx).validation[0]["metrics"]
    assert first["batches"] == 0 and first["epochs"] == 0 and first["records"] == 0
    assert saved_at(ctx) == [2, 4, 6, 8]  # nothing trained at 0: nothing saved there
    first_report = next(e for e in sink(ctx).events if e["type"] == "metrics")["records"][0]
    assert (first_report[0], first_report[1]) == ("validation", 0)  # before any training report


def test_a_resumed_trial_does_not_repeat_the_initial_validation(tmp_path: Path) -> None:
    spec = {"time_metric": "batches", "max_time": 8, "validation_period": ("batches", 2)}
    first = make_context(tmp_path, perform_initial_validation=True, **spec)  # type: ignore[arg-type]
    stopping_at(ScriptedTrial, 3).run_trial(first)
    assert steps(sink(first).validation) == [0, 2]
    second = make_context(tmp_path, perform_initial_validation=True, latest=first, **spec)  # type: ignore[arg-type]
    ScriptedTrial.run_trial(second)
    assert steps(sink(second).validation) == [4, 6, 8]


def test_a_warm_start_validates_the_weights_it_loaded_at_steps_0(tmp_path: Path) -> None:
    class RealLoss(ScriptedTrial):
        evaluate_batch = TorchTrial.evaluate_batch

    spec = {"time_metric": "batches", "max_time": 8, "validation_period": ("batches", 8)}
    source = make_context(tmp_path, **spec)  # type: ignore[arg-type]
    RealLoss.run_trial(source)
    warm = make_context(tmp_path, perform_initial_validation=True, latest=source, trial_id=2, **spec)  # type: ignore[arg-type]
    RealLoss.run_trial(warm)
    assert steps(sink(warm).validation) == [0, 8]  # a fresh count...
    at_zero = sink(warm).validation[0]["metrics"]["val_loss"]
    assert at_zero == pytest.approx(
        sink(source).validation[-1]["metrics"]["val_loss"], rel=1e-6
    )  # ...its weights


# --- scheduling_unit ----------------------------------------------------------------------------


class NumberedLoss(ScriptedTrial):
    """Reports loss = the batch's number (1, 2, ...) as a tensor, and a string tag."""

    def train_batch(self, model: nn.Module, batch: Any, optimizer: torch.optim.Optimizer) -> Any:
        super().train_batch(model, batch, optimizer)
        return {"loss": torch.tensor(float(self.batches)), "phase": f"b{self.batches}"}


def test_scheduling_unit_reports_the_mean_of_each_unit_at_its_last_batch(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, time_metric="batches", max_time=8, scheduling_unit=3)
    NumberedLoss.run_trial(ctx)
    training = sink(ctx).training
    assert steps(training) == [3, 6, 8]  # two full units, then the partial one at the end
    assert [r["metrics"]["loss"] for r in training] == [2.0, 5.0, 7.5]
    assert [r["metrics"]["phase"] for r in training] == ["b3", "b6", "b8"]  # non-numbers: the newest
    assert all(r["metrics"]["lr"] == pytest.approx(0.001) for r in training)
    assert steps(sink(ctx).validation) == [8]


def test_without_a_scheduling_unit_every_batch_is_reported(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, time_metric="batches", max_time=4)
    NumberedLoss.run_trial(ctx)
    assert [r["metrics"]["loss"] for r in sink(ctx).training] == [1.0, 2.0, 3.0, 4.0]


def test_training_means_keep_order_and_skip_none() -> None:
    means = TrainingMeans()
    means.add({"loss": 1.0, "acc": None})
    means.add({"loss": 3.0, "acc": 0.5})
    assert means.take() == {"loss": 2.0, "acc": 0.5} and not means.pending


# --- keras -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras_trial() -> Any:
    keras = pytest.importorskip("keras")
    from det_jupyter.keras import KerasTrial

    class IrisKeras(KerasTrial):
        def build_model(self) -> Any:
            return keras.Sequential(
                [
                    keras.Input((4,)),
                    keras.layers.Dense(8, activation="relu"),
                    keras.layers.Dense(3, activation="softmax"),
                ]
            )

        def build_training_data(self) -> Any:
            return X_TRAIN, Y_TRAIN

        def build_validation_data(self) -> Any:
            return X_VAL, Y_VAL

    return IrisKeras


@pytest.mark.parametrize(("policy", "expected"), [("all", [8, 16, 24]), ("none", [24])])
def test_keras_checkpoint_policy(tmp_path: Path, keras_trial: Any, policy: str, expected: list[int]) -> None:
    ctx = make_context(
        tmp_path, {"global_batch_size": 16}, time_metric="epochs", max_time=3, checkpoint_policy=policy
    )
    keras_trial.run_trial(ctx)
    assert steps(sink(ctx).validation) == [8, 16, 24]
    assert saved_at(ctx) == expected


def test_keras_best_checkpoints_exactly_at_the_trials_best_validations(
    tmp_path: Path, keras_trial: Any
) -> None:
    ctx = make_context(
        tmp_path, {"global_batch_size": 16}, time_metric="epochs", max_time=4, checkpoint_policy="best"
    )
    keras_trial.run_trial(ctx)
    values = [(r["steps"], r["metrics"]["val_loss"]) for r in sink(ctx).validation]
    best, expected = float("inf"), []
    for step, value in values:
        if value < best:
            best = value
            expected.append(step)
    assert saved_at(ctx) == sorted({*expected, 32})


def test_keras_initial_validation_and_scheduling_unit(tmp_path: Path, keras_trial: Any) -> None:
    ctx = make_context(
        tmp_path,
        {"global_batch_size": 16},
        time_metric="batches",
        max_time=10,
        perform_initial_validation=True,
        scheduling_unit=4,
    )
    keras_trial.run_trial(ctx)
    assert steps(sink(ctx).validation) == [0, 8, 10]
    assert sink(ctx).validation[0]["metrics"]["batches"] == 0
    assert steps(sink(ctx).training) == [4, 8, 10]  # every 4th batch, and the end


# --- from the config to the trial ---------------------------------------------------------------


def _spec(**keys: Any) -> Any:
    from det_jupyter.checkpoints import CheckpointStorage
    from det_jupyter.config import load_config
    from det_jupyter.engine.runs import RunRecord, TrialRecord, trial_spec

    cfg = load_config({"searcher": {"name": "single", "metric": "loss"}, **keys}, warn=False)
    run = RunRecord(TrialRecord(3, 1, {}), 0, "key-3-0")
    storage = CheckpointStorage("memory://det-jupyter-test-policies")
    return trial_spec(cfg, run, experiment_id=1, seed=0, storage=storage, topic="t")


def test_trial_spec_carries_the_three_keys_with_determineds_defaults() -> None:
    default = _spec()
    assert (default.checkpoint_policy, default.perform_initial_validation, default.scheduling_unit) == (
        "best",
        False,
        None,
    )
    given = _spec(checkpoint_policy="all", perform_initial_validation=True, scheduling_unit=50)
    assert (given.checkpoint_policy, given.perform_initial_validation, given.scheduling_unit) == (
        "all",
        True,
        50,
    )


def test_the_three_keys_are_no_longer_in_the_ignored_settings_warning() -> None:
    from det_jupyter.config import load_config
    from det_jupyter.config.cluster_only import ignored_settings

    cfg = load_config(
        {
            "searcher": {"name": "single", "metric": "loss"},
            "checkpoint_policy": "none",
            "perform_initial_validation": True,
            "scheduling_unit": 10,
        },
        warn=False,
    )
    assert ignored_settings(cfg) == []
