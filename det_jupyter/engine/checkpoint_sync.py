"""The controller's bookkeeping with the checkpoint storage: recover, collect, warm-start.

:func:`recover_checkpoint` finds what an earlier run committed but never announced;
:func:`collect_garbage` deletes what the checkpoint policy drops; :func:`warm_start_checkpoint`
resolves ``searcher.source_trial_id`` / ``source_checkpoint_uuid`` to the checkpoint every trial's
first run starts from.

A worker that dies right after a commit never gets its ``checkpoint`` event (nor, often, the reports
just before it) out of the process; the storage knows both: the trial's ``latest`` pointer and the
checkpoint's ``metadata.json``, which carries the validation at its steps and the training reports
since the previous checkpoint. Before a trial's rerun, the controller asks :func:`recover_checkpoint`
and hands what it finds to :meth:`~det_jupyter.engine.lifecycle.Lifecycle.on_recovered_checkpoint`.

Example:
    >>> found = recover_checkpoint(store, storage, 1, run)      # doctest: +SKIP
    >>> found.body.uuid, found.body.steps                        # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from det_jupyter.checkpoints import CheckpointRecord, CheckpointStorage, checkpoints_to_delete
from det_jupyter.config import ExperimentConfig
from det_jupyter.engine.runs import RunRecord
from det_jupyter.errors import CheckpointError, ConfigError, FieldError, NotFoundError
from det_jupyter.searcher.ranking import best_of
from det_jupyter.store import Store
from det_jupyter.worker.checkpoint_context import TRAINING_KEY, VALIDATION_KEY
from det_jupyter.worker.events import CheckpointSaved, MetricKind, MetricRecord, Metrics

__all__ = ["Recovered", "collect_garbage", "recover_checkpoint", "warm_start_checkpoint"]

# what det_jupyter writes into metadata.json besides the user's own metadata
_SYSTEM_KEYS = frozenset(
    {"steps", "experiment_id", "trial_id", "run_id", "hparams", "uuid", "resources", "committed_at"}
    | {VALIDATION_KEY, TRAINING_KEY}
)


@dataclass(frozen=True)
class Recovered:
    """A committed checkpoint the store lacks: the run that wrote it, its event, and the reports it carries."""

    run_id: int
    body: CheckpointSaved
    reports: Metrics | None


def recover_checkpoint(
    store: Store, storage: CheckpointStorage, experiment_id: int, run: RunRecord, experiment_key: str = ""
) -> Recovered | None:
    """The checkpoint ``run``'s trial's ``latest`` pointer names, when the store lacks it; else ``None``.

    Its ``reports`` are those its ``metadata.json`` carries that the store lacks (the validation at its
    steps, the training reports since the previous checkpoint).
    """
    trial = run.trial
    latest = storage.read_latest(experiment_id, trial.id, experiment_key=experiment_key)
    if latest is None or latest[1] < trial.latest_checkpoint_steps:
        return None
    uuid, steps = latest
    if any(c.uuid == uuid for c in store.checkpoints(trial_id=trial.id, include_deleted=True)):
        return None
    try:
        meta = storage.metadata(uuid)
    except CheckpointError:
        return None
    user_meta = {k: v for k, v in meta.items() if k not in _SYSTEM_KEYS}
    body = CheckpointSaved(uuid, steps, user_meta, dict(meta.get("resources", {})))
    earlier = int(meta.get("run_id", run.run_id - 1))
    reported = meta.get(VALIDATION_KEY)
    known = {m.steps for m in store.metrics(trial_id=trial.id, kind="validation")}
    records: list[MetricRecord] = []
    trained = {m.steps for m in store.metrics(trial_id=trial.id, kind="training")}
    for item in meta.get(TRAINING_KEY) or []:  # training reports that were in flight
        if isinstance(item, list) and len(item) == 3 and isinstance(item[1], dict):
            at_steps, values, at = int(item[0]), item[1], float(item[2])
            if at_steps <= steps and at_steps not in trained:
                records.append(MetricRecord(MetricKind.TRAINING, at_steps, values, at))
    if isinstance(reported, dict) and reported and steps not in known:
        at = float(meta.get("committed_at", time.time()))
        records.append(MetricRecord(MetricKind.VALIDATION, steps, reported, at))
    validation = Metrics(tuple(records)) if records else None
    return Recovered(earlier, body, validation)


def collect_garbage(
    store: Store,
    storage: CheckpointStorage,
    experiment_id: int,
    config: ExperimentConfig,
    active_trials: Iterable[int],
) -> list[str]:
    """Apply the checkpoint policy (``save_experiment_best`` / ``save_trial_best`` /
    ``save_trial_latest``): delete the dropped checkpoints' files, mark their rows; their uuids.

    The newest checkpoint of a trial in ``active_trials`` is always kept.

    Example:
        >>> collect_garbage(store, storage, 1, config, active_trials=[7])   # doctest: +SKIP
        ['3f1c...']
    """
    policy = config.checkpoint_storage
    rows = store.checkpoints(experiment_id=experiment_id)
    doomed = checkpoints_to_delete(
        [CheckpointRecord(c.uuid, c.trial_id, c.steps, c.metric) for c in rows],
        save_experiment_best=policy.save_experiment_best,
        save_trial_best=policy.save_trial_best,
        save_trial_latest=policy.save_trial_latest,
        smaller_is_better=config.searcher.smaller_is_better,
        active_trials=set(active_trials),
    )
    for uuid in doomed:
        storage.delete(uuid)
    if doomed:
        store.mark_checkpoints_deleted(sorted(doomed))
    return sorted(doomed)


def warm_start_checkpoint(config: ExperimentConfig, store: Store, storage: CheckpointStorage) -> str | None:
    """The checkpoint a warm-started experiment's trials start from, or ``None`` without a warm start.

    ``searcher.source_checkpoint_uuid`` names it; ``searcher.source_trial_id`` names a trial (of any
    experiment in this store) whose best checkpoint by its experiment's searcher metric is used, else
    its newest. The checkpoint must be committed in this experiment's checkpoint storage (where the
    trials read it).

    Raises:
        ConfigError: the trial or checkpoint does not exist, or is not in this storage (naming the
            ``searcher`` field and the fix).

    Example:
        >>> warm_start_checkpoint(cfg, store, storage)                      # doctest: +SKIP
        'c0ffee...'
    """
    searcher = config.searcher
    if searcher.source_checkpoint_uuid is not None:
        uuid, field = searcher.source_checkpoint_uuid, "searcher.source_checkpoint_uuid"
    elif searcher.source_trial_id is not None:
        field = "searcher.source_trial_id"
        try:
            trial = store.get_trial(searcher.source_trial_id)
        except NotFoundError:
            fix = "give the id of a trial in this store (det-jupyter experiment describe ID lists them)"
            raise ConfigError(
                FieldError(field, f"trial {searcher.source_trial_id} does not exist", fix)
            ) from None
        rows = store.checkpoints(trial_id=trial.id)
        if not rows:
            fix = "pick a trial that saved a checkpoint, or give source_checkpoint_uuid"
            message = f"trial {trial.id} has no checkpoint to start from"
            raise ConfigError(FieldError(field, message, fix))
        source = store.get_experiment(trial.experiment_id).config.get("searcher") or {}
        smaller = bool(source.get("smaller_is_better", True))
        best = best_of(
            rows, lambda row: row.metric, smaller_is_better=smaller, tiebreak=lambda row: -row.created_at
        )
        uuid = (best or rows[-1]).uuid
    else:
        return None
    if not storage.exists(uuid):
        message = f"checkpoint {uuid} is not in this experiment's checkpoint storage {storage.url}"
        fix = "use the checkpoint_storage of the experiment that saved it, or a checkpoint that still exists"
        raise ConfigError(FieldError(field, message, fix))
    return uuid
