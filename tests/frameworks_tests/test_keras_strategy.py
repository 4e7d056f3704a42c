"""KerasTrial on several devices (MirroredStrategy) and its refusal of several slots.

MirroredStrategy runs here over two *logical CPUs*, which TensorFlow must be told about before it
initialises: that part runs in a fresh Python process (:data:`SCRIPT`) and prints its results as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tensorflow")

from det_jupyter.errors import ConfigError
from det_jupyter.keras import KerasTrial
from det_jupyter.worker.context import local_context
from det_jupyter.worker.distributed import DistributedContext

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import numpy as np
from sklearn.datasets import load_digits
import tempfile
from pathlib import Path
from det_jupyter.keras import KerasTrial
from tests.frameworks_tests.helpers import make_context

x, y = load_digits(return_X_y=True)
x = (x / 16.0).astype("float32")

class Digits(KerasTrial):
    def build_model(self):
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                                  keras.layers.Dense(10, activation="softmax")])
        model.compile(optimizer=keras.optimizers.SGD(0.2), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model
    def build_training_data(self):
        return tf.data.Dataset.from_tensor_slices((x[:1280], y[:1280])).batch(32)
    def build_validation_data(self):
        return x[1280:], y[1280:]

class TwoCPUs(Digits):
    def build_strategy(self):
        return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

out = {}
for name, cls in (("one", Digits), ("two", TwoCPUs)):
    ctx = make_context(Path(tempfile.mkdtemp()), {"global_batch_size": 32}, time_metric="batches",
                       max_time=60, validation_period=("batches", 20))
    cls.run_trial(ctx)
    with ctx.checkpoint.restore() as path:
        model = cls.load_checkpoint(path, {"global_batch_size": 32})
        predicted = model.predict(x[1280:], verbose=0).argmax(-1)
    out[name] = {
        "training": [[r["steps"], float(r["metrics"]["loss"])] for r in ctx.sink.training],
        "validation": [[r["steps"], r["metrics"]["val_loss"], r["metrics"]["val_accuracy"]]
                       for r in ctx.sink.validation],
        "loaded_accuracy": float((predicted == y[1280:]).mean()),
        "logs": [line for e in ctx.sink.events if e["type"] == "log" for _, line in e["lines"]],
    }
print("RESULT " + json.dumps(out))
"""


class _Trial(KerasTrial):
    def build_model(self) -> Any:
        raise AssertionError("a refused trial builds nothing")


def test_a_keras_trial_on_several_slots_is_refused_naming_the_setting_and_the_fix() -> None:
    ctx = local_context({"global_batch_size": 32})
    ctx.distributed = DistributedContext(rank=0, size=2, chief_ip="127.0.0.1")
    with pytest.raises(ConfigError) as info:
        _Trial.run_trial(ctx)
    message = str(info.value)
    assert "resources.slots_per_trial" in message and "_Trial is a KerasTrial on 2 slots" in message
    assert "keras-team/keras#20585" in message and "TorchTrial" in message


@pytest.mark.slow
def test_mirrored_strategy_over_two_devices_trains_the_same_global_batches_as_one() -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT ") :])
    one, two = out["one"], out["two"]
    assert [s for s, _ in two["training"]] == [s for s, _ in one["training"]] == list(range(1, 61))
    assert [loss for _, loss in two["training"]] == pytest.approx(
        [loss for _, loss in one["training"]], rel=1e-4
    )
    assert [v[0] for v in two["validation"]] == [20, 40, 60]
    flat = [value for row in two["validation"] for value in row]
    assert flat == pytest.approx([value for row in one["validation"] for value in row], rel=1e-4)
    assert one["training"][-1][1] < 0.6 * one["training"][0][1]  # it learns
    # the checkpoint written under the strategy loads in one process and predicts as validated
    assert two["loaded_accuracy"] == pytest.approx(two["validation"][-1][2], abs=1e-6)
    assert any(
        "MirroredStrategy over 2 devices; global batch 32 (16 records per device)" in x for x in two["logs"]
    )
