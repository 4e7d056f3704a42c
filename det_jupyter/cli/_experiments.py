"""``det-jupyter experiment ...`` (alias ``e``): create, list, describe, wait, download, logs, control.

Each verb is a thin shell over the public handles (:func:`det_jupyter.create_experiment`,
:class:`~det_jupyter.experiment.Experiment`, :class:`~det_jupyter.trial.Checkpoint`) and the store.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from det_jupyter.errors import CheckpointError, ConfigError, DetJupyterError, FieldError
from det_jupyter.server.palette import format_percent
from det_jupyter.store.progress import experiment_progress

if TYPE_CHECKING:
    from det_jupyter.config import ExperimentConfig
    from det_jupyter.experiment import Experiment
    from det_jupyter.store import Store

__all__ = ["describe_json", "load_config_file", "run_experiment_verb"]

READING = ("list", "describe", "logs", "wait", "download")
"""Verbs that show experiments: they first bring back a master for experiments a dead one left."""


class UsageProblem(DetJupyterError):
    """A command-line argument that cannot work (a missing file, a model directory that is not one)."""


def load_config_file(path: str) -> ExperimentConfig:
    """The validated config (or translated IBM manifest) in the YAML file ``path``."""
    from det_jupyter.config import load_config

    if not Path(path).is_file():
        raise UsageProblem(
            f"config file {path!r} not found (give the path of an experiment YAML or IBM manifest)"
        )
    return load_config(path)


def run_experiment_verb(args: argparse.Namespace) -> int:
    """Run ``det-jupyter experiment <verb>``; returns the exit status."""
    if args.verb == "create":
        return _create(args)
    from det_jupyter.cli._follow import revive
    from det_jupyter.experiment import get_experiment, open_store

    store = open_store(args.store)
    if args.verb in READING:
        revive(store.path)
    if args.verb == "list":
        return _list(store, ibm=args.ibm)
    exp = get_experiment(args.id, store=store)
    if args.verb == "describe":
        if args.json:
            print(json.dumps(describe_json(store, exp.id, ibm=True), indent=2, default=str))
            return 0
        return _describe(store, exp.id, ibm=args.ibm)
    if args.verb == "wait":
        from det_jupyter.cli._follow import follow

        return follow(exp, logs=args.follow, progress=args.follow)
    if args.verb == "download":
        return _download(exp, args.trial, args.dir)
    if args.verb == "logs":
        trials = [args.trial] if args.trial is not None else [t.id for t in exp.trials()]
        for trial_id in trials:
            for line in store.logs(trial_id, tail=args.tail):
                print(f"[trial {trial_id}] {line.line}")
        return 0
    if args.verb == "delete":
        store.delete_experiment(exp.id)
        print(f"deleted experiment {exp.id}")
        return 0
    getattr(exp, args.verb)()
    print(f"asked experiment {exp.id} to {args.verb}")
    revive(store.path)  # after the request: a PAUSED experiment being activated needs a master now
    return 0


# --- create ------------------------------------------------------------------------------------


def _create(args: argparse.Namespace) -> int:
    from det_jupyter.cli._follow import follow
    from det_jupyter.config.entrypoints import entrypoint_kind
    from det_jupyter.engine.submit import master_mode
    from det_jupyter.experiment import create_experiment, open_store

    cfg = load_config_file(args.config)
    context = _model_dir(args.model_dir)
    if context is None and cfg.entrypoint is not None and entrypoint_kind(cfg.entrypoint) != "module":
        kind = entrypoint_kind(cfg.entrypoint)
        raise ConfigError(
            FieldError(
                "entrypoint",
                f"{cfg.entrypoint!r} is a {'command' if kind == 'command' else 'name in a notebook'}: "
                "it needs the model directory",
                f"run `det-jupyter experiment create {args.config} MODEL_DIR` (a directory or .zip with the code)",
            )
        )
    store = open_store(args.store)
    mode = "inprocess" if args.inprocess else master_mode(None, args.cluster, store)
    kwargs: dict[str, Any] = {"cluster": args.cluster, "store": store, "master": mode}
    if context is not None:
        kwargs["context"] = str(context)
    if args.paused:
        kwargs["activate"] = False
    exp = create_experiment(cfg, **kwargs)
    state = (
        "PAUSED (activate it with `det-jupyter experiment activate " + str(exp.id) + "`)"
        if args.paused
        else ""
    )
    print(f"created experiment {exp.id} {cfg.name!r}{' ' + state if state else ''}")
    if mode == "inprocess" and not args.paused:
        return follow(exp, logs=args.follow, progress=args.follow, inprocess=True)
    if args.follow:
        return follow(exp, logs=True, progress=True)
    print(f"follow it with `det-jupyter experiment wait {exp.id} --follow`")
    return 0


def _model_dir(value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    if path.is_dir() or (path.is_file() and path.suffix == ".zip"):
        return path.resolve()
    what = "does not exist" if not path.exists() else "is neither a directory nor a .zip file"
    raise UsageProblem(f"MODEL_DIR {value!r} {what}: give the directory (or .zip) that holds the model code")


# --- list / describe ---------------------------------------------------------------------------


def _ibm_experiment_state(store: Store, experiment_id: int) -> str:
    from det_jupyter.config.ibm import ibm_state
    from det_jupyter.states import TrialState

    row = store.get_experiment(experiment_id)
    running = store.trial_counts(experiment_id).get(TrialState.ACTIVE, 0) > 0
    return ibm_state(row.state, running=running)


def _list(store: Store, *, ibm: bool) -> int:
    from det_jupyter.config.ibm import is_from_manifest

    rows = store.list_experiments()
    column = ibm or any(is_from_manifest(r.config) for r in rows)  # shown when asked or any came from IBM
    print(f"{'id':>4}  {'state':<17} {'ibm state ' if column else ''}{'progress':>8}  {'trials':>6}  name")
    for row in rows:
        n = sum(store.trial_counts(row.id).values())
        ibm_col = ""
        if column:
            shown = _ibm_experiment_state(store, row.id) if ibm or is_from_manifest(row.config) else "-"
            ibm_col = f"{shown:<10}"
        progress = format_percent(experiment_progress(row, store.list_trials(row.id)))  # work done
        print(f"{row.id:>4}  {row.state.value:<17} {ibm_col}{progress:>8}  {n:>6}  {row.name}")
    return 0


def _describe(store: Store, experiment_id: int, *, ibm: bool) -> int:
    from det_jupyter.config.ibm import ibm_state, is_from_manifest
    from det_jupyter.config.redact import redact_config

    row = store.get_experiment(experiment_id)
    ibm = ibm or is_from_manifest(row.config)
    state = row.state.value + (f" (IBM: {_ibm_experiment_state(store, row.id)})" if ibm else "")
    progress = format_percent(experiment_progress(row, store.list_trials(row.id)))  # work done
    print(f"experiment {row.id} {row.name!r}: {state}, progress {progress}")
    if row.error:
        print(f"error: {row.error}")
    print(json.dumps(redact_config(row.config), indent=2))  # secrets shown as ********
    print(f"\n{'trial':>5}  {'state':<9} {'ibm state ' if ibm else ''}{'restarts':>8} {'best':>10}  hparams")
    for t in store.list_trials(row.id):
        best = "-" if t.best_validation is None else f"{t.best_validation:.4g}"
        ibm_col = f"{ibm_state(t.state):<10}" if ibm else ""
        print(f"{t.id:>5}  {t.state.value:<9} {ibm_col}{t.restarts:>8} {best:>10}  {t.hparams}")
    return 0


def describe_json(store: Store, experiment_id: int, *, ibm: bool = True) -> dict[str, Any]:
    """``det-jupyter experiment describe ID --json``: the experiment as plain JSON data.

    Keys: ``id``, ``name``, ``description``, ``state``, ``ibm_state``, ``progress``, ``error``,
    ``created_at``, ``ended_at``, ``labels``, ``searcher`` (name, metric, smaller_is_better),
    ``best_trial`` (id or ``None``), ``best_validation``, ``config`` (secrets redacted) and ``trials``:
    each with ``id``, ``state``, ``ibm_state``, ``hparams``, ``restarts``, ``steps_completed``,
    ``best_validation``, ``latest_validation``, ``error`` and ``checkpoints`` (``uuid``, ``steps``,
    ``metric``, ``created_at``), oldest first.
    """
    from det_jupyter.config.ibm import ibm_state
    from det_jupyter.config.redact import redact_config
    from det_jupyter.experiment import Experiment

    row = store.get_experiment(experiment_id)
    searcher = row.config.get("searcher", {})
    best = Experiment(experiment_id, store).best_trial()
    checkpoints: dict[int, list[dict[str, Any]]] = {}
    for c in store.checkpoints(experiment_id=experiment_id):
        checkpoints.setdefault(c.trial_id, []).append(
            {"uuid": c.uuid, "steps": c.steps, "metric": c.metric, "created_at": c.created_at}
        )
    trials = [
        {
            "id": t.id,
            "state": t.state.value,
            "ibm_state": ibm_state(t.state),
            "hparams": t.hparams,
            "restarts": t.restarts,
            "steps_completed": t.steps_completed,
            "best_validation": t.best_validation,
            "latest_validation": t.latest_validation,
            "error": t.error,
            "checkpoints": checkpoints.get(t.id, []),
        }
        for t in store.list_trials(experiment_id)
    ]
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "state": row.state.value,
        "ibm_state": _ibm_experiment_state(store, row.id) if ibm else None,
        "progress": experiment_progress(row, store.list_trials(experiment_id)),
        "error": row.error,
        "created_at": row.created_at,
        "ended_at": row.ended_at,
        "labels": row.config.get("labels", []),
        "searcher": {k: searcher.get(k) for k in ("name", "metric", "smaller_is_better")},
        "best_trial": None if best is None else best.id,
        "best_validation": None if best is None else best.best_validation,
        "config": redact_config(row.config),
        "trials": trials,
    }


# --- download ----------------------------------------------------------------------------------


def _download(exp: Experiment, trial_id: int | None, directory: str) -> int:
    from det_jupyter.searcher.ranking import best_of
    from det_jupyter.trial import Trial

    if trial_id is None:
        ckpt = exp.best_checkpoint()
    else:
        trial = Trial(trial_id, exp.store)
        if trial.experiment_id != exp.id:
            raise UsageProblem(f"trial {trial_id} belongs to experiment {trial.experiment_id}, not {exp.id}")
        kept = trial.checkpoints()
        if not kept:
            raise CheckpointError(f"trial {trial_id} has no checkpoints (state {trial.state.value})")
        smaller = exp.config.searcher.smaller_is_better
        ckpt = (
            best_of(kept, lambda c: c.metric, smaller_is_better=smaller, tiebreak=lambda c: -c.steps)
            or kept[-1]
        )
    path = ckpt.download(directory)
    metric = "" if ckpt.metric is None else f", {exp.config.searcher.metric} {ckpt.metric:.6g}"
    print(f"checkpoint {ckpt.uuid} (trial {ckpt.trial_id}, steps {ckpt.steps}{metric})")
    print(f"downloaded to {Path(path).resolve()}")
    return 0
