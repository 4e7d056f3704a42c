"""Keras 3 adapter: subclass :class:`KerasTrial`, or add :class:`DetCallback` to your own ``model.fit``.

Works with any Keras 3 backend; tested with ``tensorflow-cpu``.

Trial class (the runtime calls ``IrisTrial.run_trial(ctx)``; ``Checkpoint.load()`` calls
``IrisTrial.load_checkpoint(path, hparams)``)::

    from det_jupyter.keras import KerasTrial

    class IrisTrial(KerasTrial):
        def build_model(self):
            return keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"),
                                     keras.layers.Dense(3, activation="softmax")])
        def build_training_data(self):
            return x_train, y_train          # or a batched tf.data.Dataset
        def build_validation_data(self):
            return x_val, y_val

Semantics (shared with TorchTrial, see :mod:`det_jupyter.frameworks._common`):

- **Length**: ``max_time`` ``batches`` (stops mid-epoch at the exact batch), ``epochs`` or ``records``
  (counted as ``batch_size`` per batch, capped at the epoch's records when they are known); any other
  ``time_metric`` counts epochs.
- **Training metrics**: Keras's batch logs (``loss``, ``accuracy``... running means over the epoch) at
  ``steps`` = batches trained; with ``scheduling_unit: n``, only at every ``n``-th batch (and at the
  end), where Keras's running means already average the epoch's batches so far.
- **Validation**, with Keras's names (``val_loss``, ``val_accuracy``...) plus ``batches``, ``epochs``
  and ``records``: each time the ``min_validation_period`` is crossed (none: every epoch end) and at the
  end. Mid-epoch periods (batches, records) evaluate mid-epoch, which restarts the running means of
  that epoch's training logs. With ``perform_initial_validation: true``, once more before the first
  batch of a trial that starts from zero (``steps`` 0; needs ``validation_data``).
- **Checkpoints** (``model.keras`` + ``trial_state.json``, metadata ``format: keras-model``): each
  ``min_checkpoint_period``, at the end, when ``ctx.should_stop()`` turns true (checked every batch;
  training then stops at once), and after validations as ``checkpoint_policy`` says (``best``, the
  default: the trial's best so far; ``all``; ``none``).
- **Cost per batch**: :class:`KerasTrial` hands ``fit`` its own callback container, which after each
  batch only counts it, asks the schedule, reads the stop flag and buffers the batch logs unconverted;
  Keras's per-batch callback dispatch (float conversion of the logs, every hook called synchronously)
  runs only at batches where something is due, so stops and periods still fire at their exact batch.
  (``DetCallback`` in your own ``fit`` acts after every batch, as a plain Keras callback.)
- **Restore**: weights and optimizer state from the newest checkpoint; fit resumes at
  ``initial_epoch``; an interrupted epoch is finished first (its remaining batches only, in a fresh
  shuffle), so a resumed trial trains as many batches as an uninterrupted one.

Several devices and slots:

- **One worker, several GPUs** (a worker process that sees more than one GPU, TensorFlow backend):
  :meth:`KerasTrial.build_strategy` returns a ``tf.distribute.MirroredStrategy`` over them; the model
  is built, compiled and restored under its scope, and ``fit`` splits each global batch
  (``global_batch_size``) over the devices. Reports, checkpoints and progress are as with one device
  (same global batches), and checkpoints load in one process. Override ``build_strategy`` to choose
  the devices (the tests use two logical CPUs) or to return ``None``.
- **Several slots** (``resources.slots_per_trial > 1``: ranks on several worker processes) are refused
  with a :class:`~det_jupyter.errors.ConfigError` on ``resources.slots_per_trial``. Keras 3's
  ``model.fit`` fails under ``tf.distribute.MultiWorkerMirroredStrategy`` (keras-team/keras#20585: its
  per-replica reduction of the logs and its symbolic build both break), and TensorFlow sets up its
  collective ops once per process, so a second such trial on a Dask worker hangs. Use a
  ``TorchTrial`` (DDP), one slot on a multi-GPU worker, or a function trial of your own.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras

from det_jupyter.errors import CheckpointError, ConfigError, FieldError
from det_jupyter.frameworks._common import (
    Decision,
    Progress,
    Schedule,
    read_best_validation,
    read_state,
    trial_owner,
    write_state,
)
from det_jupyter.worker.context import TrialContext, local_context

__all__ = ["FORMAT", "MODEL_FILE", "DetCallback", "KerasTrial", "load_model", "save_model"]

FORMAT = "keras-model"
"""The checkpoint metadata ``format`` that makes ``Checkpoint.load()`` call :func:`load_model`."""
MODEL_FILE = "model.keras"


def save_model(model: keras.Model, path: str | os.PathLike[str]) -> None:
    """Save a model (architecture, weights, optimizer state) as ``<path>/model.keras``.

    Example:
        >>> import det_jupyter.keras as det_keras
        >>> with ctx.checkpoint.save(steps, metadata={"format": det_keras.FORMAT}) as path:  # doctest: +SKIP
        ...     det_keras.save_model(model, path)
    """
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / MODEL_FILE)


def load_model(path: str | os.PathLike[str], **kwargs: Any) -> keras.Model:
    """Load a model saved by :func:`save_model`, :class:`DetCallback` or :class:`KerasTrial`.

    Args:
        path: the checkpoint directory, or the ``.keras`` file itself.
        **kwargs: passed to ``keras.saving.load_model`` (e.g. ``custom_objects`` for your own layers).

    Returns:
        The compiled model, ready for ``predict``.

    Example:
        >>> model = det_jupyter.keras.load_model(checkpoint_dir)  # doctest: +SKIP
        >>> model.predict(x_val)                                  # doctest: +SKIP
    """
    file = Path(path)
    if file.is_dir():
        file = file / MODEL_FILE
    if not file.exists():
        raise CheckpointError(
            f"load_model({str(path)!r}): no {MODEL_FILE} there; save with det_jupyter.keras.save_model"
        )
    return keras.saving.load_model(file, **kwargs)


def _load_weights(model: keras.Model, file: Path) -> None:
    """Weights and, for a compiled model, optimizer state (the optimizer must exist to receive it)."""
    if getattr(model, "optimizer", None) is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(file)


def _ensure_compiled(model: keras.Model, hparams: dict[str, Any]) -> keras.Model:
    if not getattr(model, "compiled", False):
        model.compile(
            optimizer=keras.optimizers.Adam(float(hparams.get("learning_rate", 1e-3))),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    return model


class DetCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Reports, stops and checkpoints a ``model.fit`` for det_jupyter (what :class:`KerasTrial` uses).

    Args:
        ctx: the trial context.
        validation_data: ``(x, y)`` or a dataset to evaluate when a validation is due. Without it, the
            ``val_*`` logs of ``fit(validation_data=...)`` at epoch ends are reported instead.
        batch_size: records per batch, for ``records`` (default 32, as Keras's).
        records_per_epoch: records in one epoch, when known (makes ``records`` exact).

    Call :meth:`restore` before training, then ``fit`` until :attr:`finished` (the loop matters only
    after resuming mid-epoch: the first ``fit`` then just finishes that epoch).

    Example:
        >>> cb = DetCallback(ctx, validation_data=(x_val, y_val), batch_size=32, records_per_epoch=len(x))  # doctest: +SKIP
        >>> cb.restore(model)                                                                          # doctest: +SKIP
        >>> while not cb.finished:                                                                     # doctest: +SKIP
        ...     model.fit(x, y, batch_size=32, epochs=cb.epochs, initial_epoch=cb.initial_epoch,
        ...               callbacks=[cb], verbose=0)
    """

    def __init__(
        self,
        ctx: TrialContext,
        *,
        validation_data: Any = None,
        batch_size: int | None = None,
        records_per_epoch: int | None = None,
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.validation_data = validation_data
        self.batch_size = int(batch_size or 32)
        self.records_per_epoch = records_per_epoch
        self.progress = Progress()
        self.schedule = Schedule(ctx, self.progress)
        self.finished = False
        """True once training reached its length, was stopped, or ``fit`` ended on its own."""
        self._steps: int | None = None  # batches per epoch, from Keras's params
        self._pending = Decision()
        self._resumed_partial = False  # this fit started in the middle of an epoch
        self._partial_done = False  # ...and stopped at that epoch's end: fit is called again
        self._warned = False
        self._unreported: tuple[int, Mapping[str, Any]] | None = None  # a scheduling_unit's newest logs
        self._counted_by_container = False  # KerasTrial's _ActWhenDue counts batches (see there)
        self._act_now = False  # ...and sets this for the one synchronous call where there is work

    @property
    def initial_epoch(self) -> int:
        """Pass as ``fit(initial_epoch=...)``: the epochs completed so far."""
        return self.progress.epochs

    @property
    def epochs(self) -> int:
        """Pass as ``fit(epochs=...)``: an upper bound; the callback stops ``fit`` at the exact length."""
        if self.finished:
            return self.progress.epochs  # fit(initial_epoch=epochs) then trains nothing
        return max(self.schedule.max_time, self.progress.epochs + 1)

    def restore(self, model: keras.Model) -> bool:
        """Load the trial's newest checkpoint into ``model`` (built, and compiled if it will train).

        Returns True if a checkpoint was restored. Also finishes at once a trial that is already at
        its length or was asked to stop.
        """
        self.set_model(model)
        restored = False
        with self.ctx.checkpoint.restore() as path:
            if path is not None:
                _load_weights(model, path / MODEL_FILE)
                self.progress, validated_at, _ = read_state(path, trial_owner(self.ctx))
                best = read_best_validation(path, trial_owner(self.ctx))
                self.schedule = Schedule(self.ctx, self.progress, validated_at, best)
                restored = True
        if restored:
            self.ctx.log(
                f"resumed from checkpoint {self.ctx.checkpoint.latest} at batch {self.progress.batches}"
            )
        self._pending = self.schedule.decide(self.progress, stop_requested=self.ctx.should_stop())
        if self._pending.finish:
            self._act()
        return restored

    # --- Keras hooks -----------------------------------------------------------------------------

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._steps = self.params.get("steps") or self._steps
        self._resumed_partial = self.progress.batch_in_epoch > 0
        if self.schedule.initial_validation and not self.finished:  # perform_initial_validation
            self.schedule.initial_validation = False  # once, even without validation data
            self._pending |= Decision(validate=True)
            self._act()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._counted_by_container:  # KerasTrial's container counted this batch; act if it said so
            if self._act_now:
                self._act_now = False
                self._batch_act()
            return
        if self._count_batch(logs):
            self._batch_act()

    def _count_batch(self, logs: Mapping[str, Any] | None) -> bool:
        """Count one trained batch, ask the schedule, report its logs when due; True if it must act now.

        Cheap (no conversion of the logs: tensors are converted when the context flushes), so it can
        run after every batch; the rest (validations, checkpoints, stopping ``fit``) only where this
        returns True.
        """
        p = self.progress
        p.batches += 1
        p.batch_in_epoch += 1
        p.records = self._records()
        decision = self.schedule.decide(p, stop_requested=self.ctx.should_stop())
        if decision.validate or decision.checkpoint or decision.finish:
            self._pending |= decision
        pending = self._pending
        if logs:
            self._unreported = (p.batches, logs)  # flattened and wrapped only when reported
            if pending.finish or self.schedule.report_due(p):
                self._report_training()
        at_epoch_end = self._steps is not None and p.batch_in_epoch >= self._steps
        return at_epoch_end or pending.validate or pending.checkpoint or pending.finish

    def _batch_act(self) -> None:
        p = self.progress
        at_epoch_end = self._steps is not None and p.batch_in_epoch >= self._steps
        if self._pending.finish:
            self.model.stop_training = True
        elif at_epoch_end and self._resumed_partial:
            self.model.stop_training = self._partial_done = True
        if not at_epoch_end:
            self._act()  # mid-epoch; at an epoch's last batch, on_epoch_end acts with the epoch counted

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        p = self.progress
        complete = (
            self._steps is not None and p.batch_in_epoch >= self._steps
        ) or not self.model.stop_training
        if complete and p.batch_in_epoch:
            p.end_epoch()
            p.records = self._records()
            self._pending |= self.schedule.decide(p, stop_requested=self.ctx.should_stop())
            if self._pending.finish:
                self.model.stop_training = True
        self._resumed_partial = False
        self._act(logs)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.finished or self._partial_done:
            self._partial_done = False
            return
        # fit ran out of epochs (or another callback stopped it): that is the end of training
        s, p = self.schedule, self.progress
        self._pending |= Decision(s.validated_at != p.batches, s.checkpointed_at != p.batches, True)
        self._act()

    # --- actions ---------------------------------------------------------------------------------

    def _act(self, epoch_logs: dict[str, Any] | None = None) -> None:
        pending, self._pending = self._pending, Decision()
        if pending.finish:
            self._report_training()  # a partial scheduling_unit's logs, before the end's validation
        checkpoint = pending.checkpoint
        if pending.validate:
            metrics = self._validation_metrics(epoch_logs)
            if metrics is not None:
                self.ctx.report_validation_metrics(self.progress.batches, metrics)
                checkpoint = self.schedule.validated(self.progress, metrics) or checkpoint
        if checkpoint:
            self._save()
        if pending.finish:
            self.finished = True
            self.model.stop_training = True

    def _report_training(self) -> None:
        if self._unreported is not None:
            (steps, logs), self._unreported = self._unreported, None
            self.ctx.report_training_metrics(steps, {k: _deferred(v) for k, v in _flat_logs(logs).items()})

    def _validation_metrics(self, epoch_logs: dict[str, Any] | None) -> dict[str, Any] | None:
        val_logs = {k: v for k, v in (epoch_logs or {}).items() if k.startswith("val_")}
        if not val_logs and self.validation_data is not None:
            data = self.validation_data
            if isinstance(data, tuple):
                results = self.model.evaluate(*data, batch_size=self.batch_size, verbose=0, return_dict=True)
            else:
                results = self.model.evaluate(data, verbose=0, return_dict=True)
            val_logs = {f"val_{k}": v for k, v in results.items()}
        if not val_logs:
            if not self._warned:
                self._warned = True
                self.ctx.log(
                    f"validation due at batch {self.progress.batches} but DetCallback has no validation data: "
                    "pass DetCallback(ctx, validation_data=...) or model.fit(validation_data=...)"
                )
            return None
        return {**val_logs, **self.progress.metrics(self._steps)}

    def _save(self) -> None:
        meta = {"format": FORMAT, "framework": "keras", **self.progress.metrics(self._steps)}
        with self.ctx.checkpoint.save(self.progress.batches, metadata=meta) as path:
            self.model.save(path / MODEL_FILE)
            write_state(
                path,
                self.progress,
                validated_at=self.schedule.validated_at,
                data=self.ctx.data,
                owner=trial_owner(self.ctx),
                best_validation=self.schedule.best,
            )
        self.schedule.checkpointed(self.progress)

    def _records(self) -> int:
        p, per_epoch = self.progress, self.records_per_epoch
        if per_epoch:
            return p.epochs * per_epoch + min(p.batch_in_epoch * self.batch_size, per_epoch)
        return p.batches * self.batch_size


def _flat_logs(logs: Mapping[str, Any]) -> dict[str, Any]:
    """The batch logs as one flat dict (Keras nests a dict per output only in unusual models)."""
    flat: dict[str, Any] = {}
    for key, value in logs.items():
        if isinstance(value, Mapping):
            flat.update(_flat_logs(value))
        else:
            flat[key] = value
    return flat


class _Deferred:
    """A log tensor reported as is: the context converts it when it flushes, not in the training step.

    (A backend tensor without ``.item()``, e.g. TensorFlow's; converting it per step would wait for
    the step's result on a GPU.)
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def item(self) -> float:
        return float(self.value)

    def __repr__(self) -> str:
        return repr(self.value)


def _deferred(value: Any) -> Any:
    """A log value as reported: plain Python values as they are, anything else (a tensor) deferred.

    No ``hasattr`` probe: on a TensorFlow tensor it goes through TensorFlow's slow ``__getattr__``.
    """
    if value is None or type(value) in _PLAIN:
        return value
    return _Deferred(value)


_PLAIN = frozenset({int, float, str, bool})


def _is_default(method: Any) -> bool:
    return bool(getattr(method, "_is_default", False))  # Keras marks Callback's own no-op hooks so


class _ActWhenDue(keras.callbacks.CallbackList):  # type: ignore[misc]
    """KerasTrial's callback container: a Python batch-end call only at batches where there is work.

    ``fit`` calls ``on_train_batch_end`` after every batch. Keras's own container then converts the
    logs to floats and, because :class:`DetCallback` must be able to stop ``fit`` at the exact batch,
    calls every callback synchronously: that per-batch work was most of KerasTrial's overhead. Here
    :meth:`DetCallback._count_batch` counts the batch in the training thread (a few attribute updates,
    the schedule and the stop flag; the training report keeps the logs' tensors, converted when the
    context flushes) and says whether anything is due at this batch: a validation, a checkpoint, the
    end, a stop, the epoch's last batch. Only there are the hooks called synchronously (after any
    earlier asynchronous ones), so stops and periods fire at the same batches as before. Other
    callbacks that implement a batch-end hook get it every batch as Keras would call it (on its helper
    thread when they are all async-safe; where one runs synchronously, this container dispatches
    exactly as Keras's does).
    """

    def __init__(self, callbacks: list[keras.callbacks.Callback], det: DetCallback, **kwargs: Any) -> None:
        super().__init__(callbacks, **kwargs)
        self._det = det
        others = any(
            cb is not det and not (_is_default(cb.on_train_batch_end) and _is_default(cb.on_batch_end))
            for cb in self.callbacks
        )
        # Where another callback's batch-end hook runs synchronously anyway, Keras's own dispatch is
        # kept as it is, DetCallback last (it sees what the others did at this batch, e.g. a stop).
        self._fast = not others or bool(getattr(self, "_async_train", False))
        self._others = others
        det._counted_by_container = self._fast

    @staticmethod
    def supported() -> bool:
        """Whether this Keras's CallbackList has the internals the container relies on (Keras 3)."""
        base = keras.callbacks.CallbackList
        return all(hasattr(base, name) for name in ("_on_train_batch_end", "_flush_futures"))

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if not self._fast:
            super().on_train_batch_end(batch, logs)
        elif self._det._count_batch(logs):
            if getattr(self, "_futures", None):
                self._flush_futures()  # other callbacks' earlier batches first, in order
            self._det._act_now = True
            self._on_train_batch_end(batch, logs)  # synchronous, every callback, DetCallback last
        elif self._others:
            super().on_train_batch_end(batch, logs)


def _batches_per_epoch(x: Any, y: Any, batch_size: int | None) -> int | None:
    """Batches ``fit`` makes of one epoch, as Keras counts them; ``None`` where it cannot be known here."""
    if y is not None and batch_size:
        return math.ceil(len(y) / batch_size)  # arrays: the last batch may be partial
    cardinality = getattr(x, "cardinality", None)  # a tf.data.Dataset
    if y is None and callable(cardinality):
        with contextlib.suppress(Exception):
            n = int(cardinality())
            return n if n > 0 else None  # -1 infinite, -2 unknown
    return None


class KerasTrial:
    """Subclass it, override ``build_model`` and the data methods; :meth:`run_trial` runs ``model.fit``.

    A model that ``build_model`` returns uncompiled is compiled with
    ``Adam(hparams.get("learning_rate", 1e-3))``, ``sparse_categorical_crossentropy`` and ``accuracy``
    (so validations report ``val_loss`` and ``val_accuracy``). Arrays are batched by
    ``hparams.get("global_batch_size", 32)`` and shuffled each epoch; datasets are used as given.

    Attributes:
        context: the :class:`~det_jupyter.worker.context.TrialContext`.
        hparams: this trial's hyperparameters; data: the config's ``data`` section.

    Example:
        >>> class IrisTrial(KerasTrial):
        ...     def build_model(self):
        ...         return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        ...     def build_training_data(self):
        ...         return x_train, y_train
        ...     def build_validation_data(self):
        ...         return x_val, y_val
        >>> IrisTrial.run_trial(local_context({"global_batch_size": 16}, time_metric="epochs", max_time=5))  # doctest: +SKIP
    """

    def __init__(self, context: TrialContext) -> None:
        self.context = context
        self.hparams: dict[str, Any] = context.hparams
        self.data: dict[str, Any] = context.data

    def build_model(self) -> keras.Model:
        """Return the model (required), built (known input shape); compiled, or compiled for you."""
        raise NotImplementedError(f"{type(self).__name__} must define build_model(self) -> keras.Model")

    def build_training_data(self) -> Any:
        """Return ``(x, y)`` arrays or a batched ``tf.data.Dataset`` (required)."""
        raise NotImplementedError(f"{type(self).__name__} must define build_training_data(self)")

    def build_validation_data(self) -> Any:
        """Return ``(x, y)`` arrays or a batched ``tf.data.Dataset`` (required)."""
        raise NotImplementedError(f"{type(self).__name__} must define build_validation_data(self)")

    def build_strategy(self) -> Any:
        """The ``tf.distribute`` strategy to train under, or ``None`` (the default strategy).

        Default: a ``MirroredStrategy`` over this worker's GPUs when the TensorFlow backend sees more
        than one, else ``None``. ``fit`` then splits each batch of ``global_batch_size`` records over
        them.

        Example:
            >>> class TwoDevices(KerasTrial):  # doctest: +SKIP
            ...     def build_strategy(self):
            ...         return tf.distribute.MirroredStrategy(["/gpu:0", "/gpu:1"])
        """
        if keras.backend.backend() != "tensorflow":
            return None
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy([d.name for d in gpus]) if len(gpus) > 1 else None

    def keras_callbacks(self) -> list[keras.callbacks.Callback]:
        """Extra Keras callbacks for ``fit`` (default none); they run before the :class:`DetCallback`."""
        return []

    @classmethod
    def run_trial(cls, ctx: TrialContext) -> None:
        """Train one trial under ``ctx`` with ``model.fit`` and a :class:`DetCallback`.

        Example:
            >>> ctx = local_context({"global_batch_size": 16}, metric="val_loss", max_time=20)  # doctest: +SKIP
            >>> IrisTrial.run_trial(ctx)                                                       # doctest: +SKIP
        """
        if ctx.distributed.size > 1:
            raise ConfigError(_multi_worker_refusal(cls.__name__, ctx.distributed.size))
        keras.utils.set_random_seed(ctx.seed)
        trial = cls(ctx)
        strategy = trial.build_strategy()

        def scope() -> Any:  # a strategy's scope can be entered once per object: a new one each time
            return strategy.scope() if strategy is not None else contextlib.nullcontext()

        with scope():  # variables (model, optimizer) are created mirrored over the strategy's devices
            model = _ensure_compiled(trial.build_model(), trial.hparams)
        batch_size = int(trial.hparams.get("global_batch_size", 32))
        if strategy is not None:
            replicas = int(strategy.num_replicas_in_sync)
            ctx.log(
                f"{cls.__name__}: {type(strategy).__name__} over {replicas} devices; global batch "
                f"{batch_size} ({batch_size / replicas:g} records per device)"
            )
        train = trial.build_training_data()
        if isinstance(train, tuple) and len(train) == 2:
            x, y, fit_batch = train[0], train[1], batch_size
            per_epoch: int | None = len(train[1])
        else:
            x, y, fit_batch, per_epoch = train, None, None, ctx.spec.records_per_epoch
        callback = DetCallback(
            ctx,
            validation_data=trial.build_validation_data(),
            batch_size=batch_size,
            records_per_epoch=per_epoch,
        )
        with scope():
            callback.restore(model)  # a restored optimizer's variables are mirrored too
        steps = _batches_per_epoch(x, y, fit_batch) if _ActWhenDue.supported() else None
        while not callback.finished:
            before = callback.progress.batches
            callbacks: Any = [*trial.keras_callbacks(), callback]  # last: it sees what the others did
            if steps is not None:  # Keras's own container with Keras's params, calling hooks when due
                callbacks = _ActWhenDue(
                    callbacks, callback, add_history=True, add_progbar=False, model=model,
                    verbose=0, epochs=callback.epochs, steps=steps,
                )  # fmt: skip
            model.fit(
                x,
                y,
                batch_size=fit_batch,
                epochs=callback.epochs,
                initial_epoch=callback.initial_epoch,
                callbacks=callbacks,
                shuffle=fit_batch is not None,  # arrays; a dataset is used as given (Keras warns otherwise)
                verbose=0,
            )
            if callback.progress.batches == before and not callback.finished:
                raise ValueError(f"{cls.__name__}.build_training_data() yielded no batches")

    @classmethod
    def load_checkpoint(
        cls, path: str | os.PathLike[str], hparams: dict[str, Any], **kwargs: Any
    ) -> keras.Model:
        """Rebuild the model with :meth:`build_model` and load a checkpoint's weights, ready to predict.

        Example:
            >>> model = IrisTrial.load_checkpoint(path, {"global_batch_size": 16})  # doctest: +SKIP
            >>> model.predict(x_val)                                                # doctest: +SKIP
        """
        directory = Path(path)
        _, _, data = read_state(directory)
        trial = cls(local_context(hparams, checkpoint_dir=str(directory), data=data))
        model = _ensure_compiled(trial.build_model(), hparams)
        _load_weights(model, directory / MODEL_FILE)
        return model


def _multi_worker_refusal(trial: str, size: int) -> FieldError:
    return FieldError(
        "resources.slots_per_trial",
        f"{trial} is a KerasTrial on {size} slots (worker processes), which det_jupyter cannot train: "
        "Keras 3's model.fit fails under tf.distribute.MultiWorkerMirroredStrategy "
        "(keras-team/keras#20585) and TensorFlow's collective ops can be set up only once per worker "
        "process",
        "use slots_per_trial: 1 (on a worker that sees several GPUs, KerasTrial trains on all of them "
        "with MirroredStrategy), or write the trial as a TorchTrial, which trains with DDP on several slots",
    )
