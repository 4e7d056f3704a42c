"""``det-jupyter``: the command line over the store, in Determined's vocabulary (``det`` → ``det-jupyter``).

Example:
    $ det-jupyter demo                                  # an adaptive-ASHA search on Iris, end to end
    $ det-jupyter preview-search experiment.yaml        # what a search would do, before it runs
    $ det-jupyter experiment create experiment.yaml model_dir/ --follow   # or `det-jupyter e create ...`
    $ det-jupyter experiment create manifest.yml model.zip                # an IBM manifest + model zip
    $ det-jupyter experiment list [--ibm]
    $ det-jupyter experiment describe 3 [--json]
    $ det-jupyter experiment wait 3 [--follow]          # exit 0 when COMPLETED, 1 otherwise
    $ det-jupyter experiment download 3 --best ./best   # the best checkpoint's files
    $ det-jupyter experiment logs 3 --trial 7
    $ det-jupyter experiment kill 3
    $ det-jupyter trial logs 7 --follow --tail 20       # or `det-jupyter t logs 7 -f`
    $ det-jupyter trial describe 7
    $ det-jupyter master status                         # the home's master: pid, uptime, dashboard
    $ det-jupyter master stop

Exit status: 0 on success (``--follow`` / ``wait``: the experiment ended COMPLETED), 1 when a followed
experiment ended otherwise, 2 for a usage or input error (one line on stderr saying what and how to
fix it), 130 when following was interrupted with Ctrl-C (the experiment keeps running).

The experiment commands that show experiments (list, describe, logs, wait, and after pause /
activate / kill) first start the home's master when experiments have none left (a master killed or a
machine rebooted): they resume instead of saying ACTIVE forever. Only for the home's own store
(``--store`` elsewhere: never).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from det_jupyter.errors import DetJupyterError

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
        "preview-search",
        aliases=["preview"],
        help="show what a search will do (trials, lengths) without running it",
    )
    preview.add_argument("config", help="experiment config YAML file (or an IBM manifest)")

    _experiment_parser(sub)
    _trial_parser(sub)

    master = sub.add_parser("master", help="the home's long-lived master that runs experiments")
    master.add_argument("action", nargs="?", choices=["start", "status", "stop"], default="status")
    master.add_argument("--foreground", action="store_true", help="start: run it in this process")
    master.add_argument(
        "--idle-timeout", type=float, default=None, help="start: exit after S idle seconds (default 600)"
    )
    return parser


def _experiment_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    exp = sub.add_parser("experiment", aliases=["e"], help="create, list, inspect and control experiments")
    verbs = exp.add_subparsers(dest="verb", required=True)

    create = verbs.add_parser(
        "create", help="submit an experiment: a config (or IBM manifest) and a model dir"
    )
    create.add_argument(
        "config", help="experiment config YAML file, or an IBM manifest (model_definition: ...)"
    )
    create.add_argument(
        "model_dir",
        nargs="?",
        default=None,
        help="the model directory or .zip (optional when the entrypoint is an importable module:attr)",
    )
    create.add_argument(
        "-f", "--follow", action="store_true", help="stream progress and trial logs until the experiment ends"
    )
    create.add_argument("--paused", action="store_true", help="create it PAUSED (activate it later)")
    create.add_argument(
        "--cluster",
        metavar="ADDR",
        default=None,
        help="Dask scheduler address (default: the embedded cluster)",
    )
    create.add_argument(
        "--inprocess",
        action="store_true",
        help="run the controller in this process instead of the home's master (waits until the end)",
    )

    listing = verbs.add_parser("list", help="all experiments, newest first")
    listing.add_argument("--ibm", action="store_true", help="also show IBM's state names")

    describe = verbs.add_parser("describe", help="state, config and trials of an experiment")
    describe.add_argument("id", type=int)
    describe.add_argument("--json", action="store_true", help="machine-readable (the config redacted)")
    describe.add_argument("--ibm", action="store_true", help="also show IBM's state names")

    wait = verbs.add_parser("wait", help="block until the experiment ends; exit 0 if COMPLETED, else 1")
    wait.add_argument("id", type=int)
    wait.add_argument("-f", "--follow", action="store_true", help="stream progress and trial logs meanwhile")

    download = verbs.add_parser("download", help="copy a checkpoint's files into DIR")
    download.add_argument("id", type=int)
    which = download.add_mutually_exclusive_group()
    which.add_argument("--best", action="store_true", help="the experiment's best checkpoint (default)")
    which.add_argument("--trial", type=int, default=None, metavar="T", help="trial T's best checkpoint")
    download.add_argument("dir", help="where to put the files (created if missing)")

    for verb, text in [
        ("pause", "checkpoint and stop all trials"),
        ("activate", "resume a paused experiment"),
        ("kill", "stop an experiment for good"),
        ("delete", "delete a finished experiment's records"),
    ]:
        verbs.add_parser(verb, help=text).add_argument("id", type=int)

    logs = verbs.add_parser("logs", help="a trial's output (default: every trial's)")
    logs.add_argument("id", type=int)
    logs.add_argument("--trial", type=int, default=None)
    logs.add_argument("--tail", type=int, default=None)


def _trial_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    trial = sub.add_parser("trial", aliases=["t"], help="inspect one trial")
    verbs = trial.add_subparsers(dest="verb", required=True)
    describe = verbs.add_parser("describe", help="state, hyperparameters, metrics and checkpoints of a trial")
    describe.add_argument("id", type=int)
    describe.add_argument("--json", action="store_true", help="machine-readable")
    logs = verbs.add_parser("logs", help="a trial's output")
    logs.add_argument("id", type=int)
    logs.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new lines until the trial ends"
    )
    logs.add_argument("--tail", type=int, default=None, metavar="N", help="start from the last N lines")


_COMMANDS = {"e": "experiment", "t": "trial", "preview": "preview-search"}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``det-jupyter`` command; returns the exit status.

    Example:
        >>> main(["preview-search", "no-such.yaml"])  # one line on stderr says why
        2
    """
    args = _parser().parse_args(argv)
    args.command = _COMMANDS.get(args.command, args.command)
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
        from det_jupyter.cli._master import master

        return master(args.action, foreground=args.foreground, idle_timeout=args.idle_timeout)
    if args.command == "preview-search":
        from det_jupyter.cli._experiments import load_config_file
        from det_jupyter.searcher.preview import preview_search

        print(preview_search(load_config_file(args.config)))
        return 0
    if args.command == "trial":
        from det_jupyter.cli._trials import run_trial_verb

        return run_trial_verb(args)
    from det_jupyter.cli._experiments import run_experiment_verb

    return run_experiment_verb(args)
