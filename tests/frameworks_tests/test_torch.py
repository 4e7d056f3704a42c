"""TorchTrial's loop, restore and loaders, and the Core-API save_model / load_model, on real torch."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any, ClassVar

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import det_jupyter.torch as det_torch  # noqa: E402
from det_jupyter.errors import CheckpointError  # noqa: E402
from det_jupyter.frameworks.torch import MODEL_FILE, MODULE_FILE, STATE_DICT_FILE  # noqa: E402
from det_jupyter.torch import TorchTrial  # noqa: E402
from det_jupyter.worker.context import local_context  # noqa: E402

from .helpers import checkpoint_events, iris, make_context, sink  # noqa: E402

X_TRAIN, Y_TRAIN, X_VAL, Y_VAL = iris()
BATCHES_PER_EPOCH = 8  # 120 training rows, batches of 16


class IrisTrial(TorchTrial):
    models: ClassVar[list[nn.Module]] = []

    def build_model(self) -> nn.Module:
        model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
        self.models.append(model)
        return model

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=self.hparams.get("learning_rate", 0.05))

    def build_training_data(self) -> DataLoader:
        data = TensorDataset(torch.from_numpy(X_TRAIN), torch.from_numpy(Y_TRAIN))
        return DataLoader(data, batch_size=self.hparams["global_batch_size"], shuffle=True)

    def build_validation_data(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.from_numpy(X_VAL), torch.from_numpy(Y_VAL)), batch_size=16)


class ScheduledTrial(IrisTrial):
    """Uses an LR scheduler, so a resume must restore its state too."""

    def build_lr_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.7)


def stopping_after(base: type[IrisTrial], n: int) -> type[IrisTrial]:
    """A subclass that raises the stop flag (as the controller would) after ``n`` batches."""

    class Stopping(base):  # type: ignore[valid-type,misc]
        def train_batch(self, model: nn.Module, batch: Any, optimizer: torch.optim.Optimizer) -> Any:
            out = super().train_batch(model, batch, optimizer)
            self.trained = getattr(self, "trained", 0) + 1
            if self.trained == n:
                self.context._stop.set()
            return out

    return Stopping


def steps(records: list[dict[str, Any]]) -> list[int]:
    return [r["steps"] for r in records]


def predict(model: nn.Module) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(X_VAL))


@pytest.fixture(scope="module")
def epochs_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, nn.Module, Path]:
    """One 3-epoch run shared by the tests that only read it: (context, trained model, storage dir)."""
    IrisTrial.models.clear()
    storage = tmp_path_factory.mktemp("torch-epochs")
    ctx = make_context(storage, time_metric="epochs", max_time=3, metric="val_accuracy")
    IrisTrial.run_trial(ctx)
    return ctx, IrisTrial.models[-1], storage


def test_trains_and_validates_every_epoch_by_default(epochs_run: tuple[Any, nn.Module, Path]) -> None:
    ctx, _, _ = epochs_run
    assert steps(sink(ctx).training) == list(range(1, 3 * BATCHES_PER_EPOCH + 1))
    assert set(sink(ctx).training[0]["metrics"]) == {"loss", "lr"}
    assert steps(sink(ctx).validation) == [8, 16, 24]
    last = sink(ctx).validation[-1]["metrics"]
    assert last["batches"] == 24 and last["epochs"] == 3.0 and last["records"] == 360
    assert last["val_accuracy"] > 0.8 and last["val_loss"] < 0.6
    assert [e["steps"] for e in checkpoint_events(ctx)] == [24]  # no checkpoint period: at the end only
    assert checkpoint_events(ctx)[0]["metadata"]["format"] == det_torch.FORMAT


def test_load_checkpoint_and_load_model_predict_like_the_trained_model(
    epochs_run: tuple[Any, nn.Module, Path],
) -> None:
    ctx, trained, storage = epochs_run
    expected = predict(trained)
    path = storage / str(ctx.checkpoint.latest)
    by_class = IrisTrial.load_checkpoint(path, ctx.hparams)
    by_value = det_torch.load_model(path)
    for model in (by_class, by_value):
        assert not model.training and next(model.parameters()).device.type == "cpu"
        torch.testing.assert_close(model(torch.from_numpy(X_VAL)), expected)


def test_batch_periods_and_exact_batch_length(tmp_path: Path) -> None:
    ctx = make_context(
        tmp_path, max_time=12, validation_period=("batches", 5), checkpoint_period=("batches", 5)
    )
    IrisTrial.run_trial(ctx)
    assert steps(sink(ctx).training) == list(range(1, 13))
    assert steps(sink(ctx).validation) == [5, 10, 12]
    assert [e["steps"] for e in checkpoint_events(ctx)] == [5, 10, 12]
    assert sink(ctx).validation[-1]["metrics"]["epochs"] == pytest.approx(1.5)
    assert sink(ctx).validation[-1]["metrics"]["records"] == 120 + 4 * 16


def test_records_length_and_unknown_time_metric(tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "a", time_metric="records", max_time=50)
    IrisTrial.run_trial(ctx)
    assert steps(sink(ctx).training)[-1] == 4  # 64 records: the first batch to reach 50
    ctx = make_context(tmp_path / "b", time_metric="val_loss", max_time=1)
    IrisTrial.run_trial(ctx)
    assert steps(sink(ctx).training)[-1] == BATCHES_PER_EPOCH
    logs = [line for e in sink(ctx).events if e["type"] == "log" for _, line in e["lines"]]
    assert any("'val_loss'" in line and "epochs" in line for line in logs)


@pytest.mark.parametrize("stop_at", [11, 16])  # mid-epoch, and on an epoch boundary
def test_stop_then_resume_trains_the_same_batches_as_an_uninterrupted_run(
    tmp_path: Path, stop_at: int
) -> None:
    ScheduledTrial.models.clear()
    whole = make_context(tmp_path / "whole", max_time=20, validation_period=("batches", 4))
    ScheduledTrial.run_trial(whole)
    expected = predict(ScheduledTrial.models[-1])

    first = make_context(tmp_path / "split", max_time=20, validation_period=("batches", 4))
    stopping_after(ScheduledTrial, stop_at).run_trial(first)
    assert steps(sink(first).training)[-1] == stop_at  # stopped at once...
    assert steps(sink(first).validation) == [v for v in (4, 8, 12, 16) if v <= stop_at]  # no extra validation
    assert [e["steps"] for e in checkpoint_events(first)] == [stop_at]  # ...with a checkpoint
    second = make_context(tmp_path / "split", max_time=20, validation_period=("batches", 4), latest=first)
    ScheduledTrial.run_trial(second)

    assert steps(sink(second).training) == list(range(stop_at + 1, 21))
    assert steps(sink(first).validation) + steps(sink(second).validation) == steps(sink(whole).validation)
    assert [e["steps"] for e in checkpoint_events(second)] == [20]
    torch.testing.assert_close(predict(ScheduledTrial.models[-1]), expected)  # same batches, same order


def test_restored_finished_trial_does_nothing_more(tmp_path: Path) -> None:
    first = make_context(tmp_path, max_time=3)
    IrisTrial.run_trial(first)
    again = make_context(tmp_path, max_time=3, latest=first)
    IrisTrial.run_trial(again)
    assert sink(again).training == [] and sink(again).validation == [] and checkpoint_events(again) == []


def test_core_api_round_trip_rebuilds_a_notebook_class_by_value(tmp_path: Path) -> None:
    def define_and_save() -> tuple[torch.Tensor, weakref.ref[type]]:
        class NotebookNet(nn.Module):  # as if defined in a notebook cell: module __main__
            def __init__(self) -> None:
                super().__init__()
                self.layer = nn.Linear(4, 3)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.layer(x).softmax(-1) * 2

        NotebookNet.__module__ = "__main__"
        model = NotebookNet()
        ctx = local_context({}, checkpoint_dir=str(tmp_path))
        with ctx.checkpoint.save(1, metadata={"format": det_torch.FORMAT}) as path:
            det_torch.save_model(model, path)
        return predict(model), weakref.ref(NotebookNet)

    expected, cls_ref = define_and_save()
    gc.collect()
    assert cls_ref() is None  # the class is gone from this process: only the checkpoint has it
    (checkpoint,) = [p for p in tmp_path.iterdir() if p.name != "latest"]
    loaded = det_torch.load_model(checkpoint)
    assert type(loaded).__name__ == "NotebookNet" and type(loaded).__module__ == "__main__"
    assert not loaded.training
    torch.testing.assert_close(loaded(torch.from_numpy(X_VAL)), expected)
    with pytest.raises(CheckpointError, match=r"no model\.pt"):
        det_torch.load_model(tmp_path)


class TiedNet(nn.Module):
    """Tied weights (one Parameter under two names), a buffer and a non-persistent buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Linear(4, 4)
        self.decode = nn.Linear(4, 4)
        self.decode.weight = self.encode.weight
        self.register_buffer("scale", torch.full((4,), 2.0))
        self.register_buffer("offset", torch.ones(4), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x) * self.scale) + self.offset


def test_save_model_writes_the_weights_once_and_loads_with_or_without_pickled_code(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TiedNet()
    x = torch.randn(3, 4)
    det_torch.save_model(model, tmp_path)
    files = {f.name: f.stat().st_size for f in tmp_path.iterdir()}
    assert set(files) == {STATE_DICT_FILE, MODULE_FILE}  # no model.pt: one copy
    assert files[MODULE_FILE] < files[STATE_DICT_FILE]  # the structure holds no weights
    weights = torch.load(tmp_path / STATE_DICT_FILE, weights_only=True)  # no pickled code
    assert set(weights) == set(model.state_dict())

    loaded = det_torch.load_model(tmp_path)
    assert type(loaded) is TiedNet and not loaded.training
    assert loaded.decode.weight is loaded.encode.weight  # still tied
    assert isinstance(loaded.encode.weight, nn.Parameter) and loaded.encode.weight.requires_grad
    torch.testing.assert_close(loaded(x), model(x))
    torch.testing.assert_close(det_torch.load_model(tmp_path / MODULE_FILE)(x), model(x))

    torch.manual_seed(1)
    into = det_torch.load_model(tmp_path, model=TiedNet())  # weights_only: the code is yours
    assert type(into) is TiedNet and not into.training
    torch.testing.assert_close(into(x), model(x))


@pytest.mark.parametrize("with_state_dict", [True, False])
def test_load_model_reads_the_older_model_pt_format(tmp_path: Path, with_state_dict: bool) -> None:
    from det_jupyter.frameworks._torch_files import save_module

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    save_module(model, tmp_path / MODEL_FILE)  # what save_model wrote before module.pkl
    if with_state_dict:
        torch.save(model.state_dict(), tmp_path / STATE_DICT_FILE)
    expected = predict(model)
    torch.testing.assert_close(predict(det_torch.load_model(tmp_path)), expected)
    if with_state_dict:
        into = det_torch.load_model(
            tmp_path, model=nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        )
        torch.testing.assert_close(predict(into), expected)
    else:
        with pytest.raises(CheckpointError, match=r"no state_dict\.pt .*without model="):
            det_torch.load_model(tmp_path, model=nn.Linear(4, 3))


def test_save_model_single_file_on_request(tmp_path: Path) -> None:
    model = nn.Linear(4, 3)
    det_torch.save_model(model, tmp_path, state_dict=False)
    assert [f.name for f in tmp_path.iterdir()] == [MODEL_FILE]
    torch.testing.assert_close(predict(det_torch.load_model(tmp_path)), predict(model))


def test_one_pass_iterator_is_refused(tmp_path: Path) -> None:
    class OnePass(IrisTrial):
        def build_training_data(self) -> Any:
            return iter(super().build_training_data())

    with pytest.raises(TypeError, match="one-pass iterator"):
        OnePass.run_trial(make_context(tmp_path))


def test_a_torch_trial_without_a_training_length_is_refused_at_submit_naming_the_fix() -> None:
    from det_jupyter.config import load_config
    from det_jupyter.engine.presubmit import check_config_fits
    from det_jupyter.errors import ConfigError
    from det_jupyter.frameworks.torch import TorchTrial

    class NoLength(TorchTrial):
        pass

    with pytest.raises(ConfigError) as info:
        check_config_fits(NoLength, load_config({"searcher": {"name": "single", "metric": "loss"}}))
    [error] = info.value.errors
    assert error.path == "searcher.max_time" and "max_time" in (error.fix or "")
    check_config_fits(
        NoLength, load_config({"searcher": {"name": "single", "metric": "loss", "max_length": {"epochs": 1}}})
    )
    check_config_fits(lambda ctx: None, load_config({"searcher": {"name": "single", "metric": "loss"}}))


class WideTrial(IrisTrial):
    """Weights that dwarf the module's structure, so a second copy of them would show in the sizes."""

    def build_model(self) -> nn.Module:
        model = nn.Sequential(nn.Linear(4, 512), nn.ReLU(), nn.Linear(512, 3))
        self.models.append(model)
        return model


class UncopyableTrial(WideTrial):
    """A module ``copy.deepcopy`` refuses: the background snapshot pickles its structure at once."""

    def build_model(self) -> nn.Module:
        class Uncopyable(nn.Sequential):
            def __deepcopy__(self, memo: dict[int, Any]) -> Any:
                raise RuntimeError("this module cannot be deep-copied")

        model = Uncopyable(nn.Linear(4, 512), nn.ReLU(), nn.Linear(512, 3))
        self.models.append(model)
        return model


@pytest.mark.parametrize(
    ("trial_class", "background"),
    [(WideTrial, True), (WideTrial, False), (UncopyableTrial, True)],
    ids=["background", "training-thread", "uncopyable-module"],
)
def test_trial_checkpoints_write_the_weights_once_and_load_without_the_trial_class(
    tmp_path: Path, trial_class: type[IrisTrial], background: bool
) -> None:
    cls = type(trial_class.__name__, (trial_class,), {"checkpoint_in_background": background})
    cls.models.clear()
    ctx = make_context(tmp_path, max_time=8)
    cls.run_trial(ctx)
    path = tmp_path / str(ctx.checkpoint.latest)
    files = {f.name: f.stat().st_size for f in path.iterdir()}
    assert MODEL_FILE not in files and {STATE_DICT_FILE, MODULE_FILE} <= set(files)
    weight_bytes = sum(p.numel() * p.element_size() for p in cls.models[-1].parameters())
    assert files[STATE_DICT_FILE] >= weight_bytes > 4 * files[MODULE_FILE]  # one copy of the weights
    expected = predict(cls.models[-1])
    torch.testing.assert_close(predict(det_torch.load_model(path)), expected)  # no trial class needed
    torch.testing.assert_close(predict(cls.load_checkpoint(path, ctx.hparams)), expected)
