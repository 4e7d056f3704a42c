"""``det-jupyter``: the command line over the store (and the demo that is the project's main job).

Example:
    $ det-jupyter demo                      # an adaptive-ASHA search on Iris, end to end
    $ det-jupyter preview experiment.yaml   # what a search would do, before it runs
    $ det-jupyter experiment list
    $ det-jupyter experiment describe 3
    $ det-jupyter experiment logs 3 --trial 7
    $ det-jupyter experiment kill 3
    $ det-jupyter master status             # the home's master: pid, uptime, dashboard, experiments
    $ det-jupyter master stop

The experiment commands (list, describe, logs, and after pause / activate / kill) first start the
home's master when experiments have none left (a master killed or a machine rebooted): they resume
instead of saying ACTIVE forever. Only for the home's own store (``--store`` elsewhere: never).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from det_jupyter.errors import DetJupyterError

if TYPE_CHECKING:
    from det_jupyter.config import ExperimentConfig

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="det-jupyter", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--store", default=None, help="store file (default: $DET_JUPYTER_HOME/det_jupyter.db)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run an adaptive-ASHA search of a torch MLP on Iris, end to end")
    demo.add_argument("--max-trials", type=int, default=None)

    preview = sub.add_parser(
        "preview", help="show what a search will do (trials, lengths) without running it"
    )
    preview.add_argument("config", help="experiment config YAML file")

    exp = sub.add_parser("experiment", aliases=["e"], help="list, inspect and control experiments")
    verbs = exp.add_subparsers(dest="verb", required=True)
    verbs.add_parser("list", help="all experiments, newest first")
    for verb, text in [
        ("describe", "state, config and trials of an experiment"),
        ("pause", "checkpoint and stop all trials"),
        ("activate", "resume a paused experiment"),
        ("kill", "stop an experiment for good"),
        ("delete", "delete a finished experiment's records"),
    ]:
        verbs.add_parser(verb, help=text).add_argument("id", type=int)
    master = sub.add_parser("master", help="the home's long-lived master that runs experiments")
    master.add_argument("action", nargs="?", choices=["start", "status", "stop"], default="status")
    master.add_argument("--foreground", action="store_true", help="start: run it in this process")
    master.add_argument(
        "--idle-timeout", type=float, default=None, help="start: exit after S idle seconds (default 600)"
    )

    logs = verbs.add_parser("logs", help="a trial's output (default: every trial's)")
    logs.add_argument("id", type=int)
    logs.add_argument("--trial", type=int, default=None)
    logs.add_argument("--tail", type=int, default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``det-jupyter`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except DetJupyterError as exc:
        print(f"det-jupyter: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from det_jupyter.demo import run_demo

        return run_demo(max_trials=args.max_trials)
    if args.command == "master":
        return _master(args.action, foreground=args.foreground, idle_timeout=args.idle_timeout)
    if args.command == "preview":
        from det_jupyter.searcher.preview import preview_search

        print(preview_search(_load(args.config)))
        return 0
    from det_jupyter.experiment import get_experiment, list_experiments, open_store

    store = open_store(args.store)
    if args.verb in _READING:
        _revive(store.path)
    if args.verb == "list":
        print(f"{'id':>4}  {'state':<17} {'progress':>8}  {'trials':>6}  name")
        for e in list_experiments(store=store):
            row = store.get_experiment(e.id)
            n = sum(store.trial_counts(e.id).values())
            print(f"{row.id:>4}  {row.state.value:<17} {row.progress:>8.0%}  {n:>6}  {row.name}")
        return 0
    exp = get_experiment(args.id, store=store)
    if args.verb == "describe":
        row = store.get_experiment(exp.id)
        print(f"experiment {row.id} {row.name!r}: {row.state.value}, progress {row.progress:.0%}")
        if row.error:
            print(f"error: {row.error}")
        from det_jupyter.config.redact import redact_config

        print(json.dumps(redact_config(row.config), indent=2))  # secrets shown as ********
        print(f"\n{'trial':>5}  {'state':<9} {'restarts':>8} {'best':>10}  hparams")
        for t in store.list_trials(exp.id):
            best = "-" if t.best_validation is None else f"{t.best_validation:.4g}"
            print(f"{t.id:>5}  {t.state.value:<9} {t.restarts:>8} {best:>10}  {t.hparams}")
        return 0
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
    _revive(store.path)  # after the request: a PAUSED experiment being activated needs a master now
    return 0


_READING = ("list", "describe", "logs")
"""Verbs that show experiments: they first bring back a master for experiments a dead one left."""


def _revive(store_path: Path) -> None:
    """Start the home's master when experiments of its store have no live one (a master was SIGKILLed,
    the machine rebooted), so they resume instead of saying ACTIVE forever; say so on stderr."""
    from det_jupyter.master import MasterError, revive_if_orphaned, serves_store

    if not serves_store(store_path):
        return  # the master serves $DET_JUPYTER_HOME/det_jupyter.db only
    try:
        info = revive_if_orphaned()
    except MasterError as exc:  # the listing still works; say why nothing runs
        print(f"det-jupyter: warning: {exc}", file=sys.stderr)
        return
    if info is not None:
        print(
            f"det-jupyter: started the master (pid {info.pid}) to resume experiments left without one",
            file=sys.stderr,
        )


def _master(action: str, *, foreground: bool, idle_timeout: float | None) -> int:
    from det_jupyter.master import (
        MasterPaths,
        default_idle_timeout,
        ensure_master,
        running_master,
        stop_master,
    )

    paths = MasterPaths.of()
    if action == "start":
        if foreground:
            from det_jupyter.master.process import serve

            idle = idle_timeout if idle_timeout is not None else default_idle_timeout()
            return serve(paths.home, idle_timeout=idle, n_workers=None, gpus=None)
        info = running_master()
        if info is not None:
            print(f"a master already runs for {paths.home}: pid {info.pid} (dashboard {info.dashboard_link})")
            return 0
        info = ensure_master(idle_timeout=idle_timeout)
        print(
            f"master started for {paths.home}: pid {info.pid}, dashboard {info.dashboard_link}, log {paths.log}"
        )
        return 0
    if action == "stop":
        info = stop_master()
        print(f"stopped the master pid {info.pid}" if info else f"no master runs for {paths.home}")
        return 0
    info = running_master()
    if info is None:
        print(f"no master runs for {paths.home} (the first submit starts one; log: {paths.log})")
        return 1
    slots = ", ".join(f"{v:g} {k}" for k, v in info.slots.items() if v) or "none"
    print(
        f"master pid {info.pid} for {paths.home}, up {info.uptime:.0f}s, idle timeout {info.idle_timeout:g}s"
    )
    print(f"scheduler {info.scheduler}, dashboard {info.dashboard_link or 'none'}, slots {slots}")
    print(f"experiments: {', '.join(map(str, info.experiments)) or 'none'}; log {paths.log}")
    return 0


def _load(path: str) -> ExperimentConfig:
    from det_jupyter.config import load_config

    return load_config(path)


if __name__ == "__main__":
    raise SystemExit(main())
