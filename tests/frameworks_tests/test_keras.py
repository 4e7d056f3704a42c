"""KerasTrial, DetCallback and the keras save_model / load_model, on real keras (tensorflow backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import det_jupyter.keras as det_keras  # noqa: E402
from det_jupyter.keras import DetCallback, KerasTrial  # noqa: E402
from det_jupyter.worker.context import TrialContext, local_context  # noqa: E402

from .helpers import checkpoint_events, iris, make_context, sink  # noqa: E402

X_TRAIN, Y_TRAIN, X_VAL, Y_VAL = iris()
BATCHES_PER_EPOCH = 8  # 120 training rows, batches of 16


def small_model() -> Any:
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


class IrisTrial(KerasTrial):
    models: ClassVar[list[Any]] = []

    def build_model(self) -> Any:
        model = small_model()  # left uncompiled: KerasTrial compiles it (Adam, sparse CE, accuracy)
        self.models.append(model)
        return model

    def build_training_data(self) -> Any:
        return X_TRAIN, Y_TRAIN

    def build_validation_data(self) -> Any:
        return X_VAL, Y_VAL


class StopAfter(keras.callbacks.Callback):  # type: ignore[misc]
    def __init__(self, ctx: TrialContext, n: int) -> None:
        super().__init__()
        self.ctx, self.n, self.seen = ctx, n, 0

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.seen += 1
        if self.seen == self.n:
            self.ctx._stop.set()  # what the controller does to stop a trial


def stopping_after(n: int) -> type[IrisTrial]:
    class Stopping(IrisTrial):
        def keras_callbacks(self) -> list[Any]:
            return [StopAfter(self.context, n)]

    return Stopping


def steps(records: list[dict[str, Any]]) -> list[int]:
    return [r["steps"] for r in records]


HPARAMS = {"global_batch_size": 16, "learning_rate": 0.05}


@pytest.fixture(scope="module")
def epochs_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrialContext, Any, Path]:
    """One 3-epoch run shared by the tests that only read it: (context, trained model, storage dir)."""
    IrisTrial.models.clear()
    storage = tmp_path_factory.mktemp("keras-epochs")
    ctx = make_context(storage, HPARAMS, metric="val_accuracy", time_metric="epochs", max_time=3)
    IrisTrial.run_trial(ctx)
    return ctx, IrisTrial.models[-1], storage


def test_trains_and_validates_every_epoch_with_keras_names(
    epochs_run: tuple[TrialContext, Any, Path],
) -> None:
    ctx, model, _ = epochs_run
    assert steps(sink(ctx).training) == list(range(1, 3 * BATCHES_PER_EPOCH + 1))
    assert int(model.optimizer.iterations) == 24
    assert {"loss", "accuracy"} <= set(sink(ctx).training[0]["metrics"])
    assert steps(sink(ctx).validation) == [8, 16, 24]
    last = sink(ctx).validation[-1]["metrics"]
    assert last["batches"] == 24 and last["epochs"] == 3.0 and last["records"] == 360
    assert last["val_accuracy"] > 0.8 and "val_loss" in last
    assert [e["steps"] for e in checkpoint_events(ctx)] == [24]
    assert checkpoint_events(ctx)[0]["metadata"]["format"] == det_keras.FORMAT


def test_load_checkpoint_and_load_model_predict_like_the_trained_model(
    epochs_run: tuple[TrialContext, Any, Path],
) -> None:
    ctx, trained, storage = epochs_run
    expected = trained.predict(X_VAL, verbose=0)
    path = storage / str(ctx.checkpoint.latest)
    for model in (IrisTrial.load_checkpoint(path, HPARAMS), det_keras.load_model(path)):
        np.testing.assert_allclose(model.predict(X_VAL, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_batch_length_stops_mid_epoch_at_the_exact_batch(tmp_path: Path) -> None:
    IrisTrial.models.clear()
    ctx = make_context(
        tmp_path,
        HPARAMS,
        metric="val_loss",
        max_time=13,
        validation_period=("batches", 5),
        checkpoint_period=("epochs", 1),
    )
    IrisTrial.run_trial(ctx)
    assert steps(sink(ctx).training) == list(range(1, 14))
    assert int(IrisTrial.models[-1].optimizer.iterations) == 13
    assert steps(sink(ctx).validation) == [5, 10, 13]
    assert sink(ctx).validation[-1]["metrics"]["epochs"] == pytest.approx(1 + 5 / 8)
    assert [e["steps"] for e in checkpoint_events(ctx)] == [8, 13]


def test_stop_then_resume_mid_epoch_trains_the_same_batches_as_an_uninterrupted_run(tmp_path: Path) -> None:
    IrisTrial.models.clear()
    first = make_context(tmp_path / "split", HPARAMS, metric="val_loss", max_time=20)
    stopping_after(11).run_trial(first)
    assert steps(sink(first).training)[-1] == 11  # stopped at once, mid-epoch...
    assert steps(sink(first).validation) == [8]  # ...with no extra validation...
    assert [e["steps"] for e in checkpoint_events(first)] == [11]  # ...but a checkpoint
    second = make_context(tmp_path / "split", HPARAMS, metric="val_loss", max_time=20, latest=first)
    IrisTrial.run_trial(second)

    assert steps(sink(second).training) == list(range(12, 21))
    assert int(IrisTrial.models[-1].optimizer.iterations) == 20  # optimizer state came back too
    assert steps(sink(second).validation) == [16, 20]  # as an uninterrupted run: [8, 16, 20]
    assert [e["steps"] for e in checkpoint_events(second)] == [20]
    assert sink(second).validation[-1]["metrics"]["epochs"] == pytest.approx(2.5)


def test_core_api_callback_with_fit_validation_and_save_model_round_trip(tmp_path: Path) -> None:
    def train(ctx: TrialContext) -> Any:
        model = small_model()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        cb = DetCallback(ctx, batch_size=16, records_per_epoch=len(X_TRAIN))
        cb.restore(model)
        while not cb.finished:
            model.fit(
                X_TRAIN,
                Y_TRAIN,
                batch_size=16,
                epochs=cb.epochs,
                initial_epoch=cb.initial_epoch,
                validation_data=(X_VAL, Y_VAL),
                callbacks=[cb],
                verbose=0,
            )
        return model

    ctx = local_context({}, metric="val_loss", time_metric="epochs", max_time=1, checkpoint_dir=str(tmp_path))
    model = train(ctx)
    assert steps(sink(ctx).validation) == [8]  # fit's own val_* logs, reported at the epoch end
    assert sink(ctx).validation[0]["metrics"]["records"] == 120

    with ctx.checkpoint.save(8, metadata={"format": det_keras.FORMAT}) as path:
        det_keras.save_model(model, path)
    loaded = det_keras.load_model(tmp_path / str(ctx.checkpoint.latest))
    np.testing.assert_allclose(loaded.predict(X_VAL, verbose=0), model.predict(X_VAL, verbose=0), rtol=1e-5)


class StopAtBegin(keras.callbacks.Callback):  # type: ignore[misc]
    """Requests the stop while batch ``n`` trains: no batch-end hook, so KerasTrial's fast dispatch stays on."""

    def __init__(self, ctx: TrialContext, n: int) -> None:
        super().__init__()
        self.ctx, self.n, self.seen = ctx, n, 0

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        self.seen += 1
        if self.seen == self.n:
            self.ctx._stop.set()


def test_detcallback_acts_only_at_due_batches_and_still_stops_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    acted: list[int] = []
    original = DetCallback._batch_act

    def spy(self: DetCallback) -> None:
        acted.append(self.progress.batches)
        original(self)

    monkeypatch.setattr(DetCallback, "_batch_act", spy)
    ctx = make_context(tmp_path / "due", HPARAMS, max_time=20, validation_period=("batches", 5))
    IrisTrial.run_trial(ctx)
    assert acted == [5, 8, 10, 15, 16, 20]  # validations, epoch ends and the end: nowhere else
    assert steps(sink(ctx).training) == list(range(1, 21))  # every batch still reported...
    assert all(isinstance(r["metrics"]["loss"], float) for r in sink(ctx).training)  # ...as numbers
    assert steps(sink(ctx).validation) == [5, 10, 15, 20]

    class Stopping(IrisTrial):
        def keras_callbacks(self) -> list[Any]:
            return [StopAtBegin(self.context, 11)]

    acted.clear()
    stopped = make_context(tmp_path / "stop", HPARAMS, max_time=20, validation_period=("batches", 5))
    Stopping.run_trial(stopped)
    assert acted == [5, 8, 10, 11]
    assert steps(sink(stopped).training)[-1] == 11  # the batch where the stop arrived, no further
    assert [e["steps"] for e in checkpoint_events(stopped)] == [11]


def test_tf_dataset_epochs_and_batch_periods(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")

    class DatasetTrial(IrisTrial):
        def build_training_data(self) -> Any:
            return tf.data.Dataset.from_tensor_slices((X_TRAIN, Y_TRAIN)).batch(16)

    ctx = make_context(tmp_path, HPARAMS, time_metric="epochs", max_time=2, validation_period=("batches", 5))
    DatasetTrial.run_trial(ctx)
    assert steps(sink(ctx).training) == list(range(1, 2 * BATCHES_PER_EPOCH + 1))
    assert steps(sink(ctx).validation) == [5, 10, 15, 16]
    assert sink(ctx).validation[-1]["metrics"]["epochs"] == pytest.approx(2)
    assert [e["steps"] for e in checkpoint_events(ctx)] == [16]
