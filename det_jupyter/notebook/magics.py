"""IPython magics: ``%%det_experiment`` runs the cell's YAML config, ``%det`` lists and controls experiments.

Load them with ``%load_ext det_jupyter``. They are thin shells over the Python API
(:func:`det_jupyter.create_experiment`, :func:`det_jupyter.get_experiment`, the store): they parse
their arguments with ``magic_arguments`` (nothing is ever ``eval``-ed), call the API, display the
result, and turn user mistakes (a config error, an unknown entrypoint, a global that cannot be
shipped) into ``UsageError``: a message without a traceback.

Example:
    In a notebook::

        %load_ext det_jupyter

        %%det_experiment train -o exp
        name: mnist-random
        hyperparameters:
          lr: {type: log, base: 10, minval: -4, maxval: -1}
        searcher: {name: random, metric: val_loss, max_trials: 8, time_metric: batches, max_time: 500}

        %det list
        %det kill 3
"""

from __future__ import annotations

import json
import re
import time
import warnings
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from det_jupyter.errors import ClusterError, ConfigError, DetJupyterError, TrialError
from det_jupyter.states import ExperimentState

if TYPE_CHECKING:
    from distributed import Client
    from IPython.core.interactiveshell import InteractiveShell

    from det_jupyter.config import ExperimentConfig
    from det_jupyter.experiment import Experiment
    from det_jupyter.notebook.reports import Report

__all__ = ["DetMagics", "expand_variables", "load_ipython_extension", "unload_ipython_extension"]

VERBS = ("list", "describe", "trials", "logs", "pause", "activate", "kill", "attach", "resume", "cluster")
_NEEDS_ID = set(VERBS) - {"list", "cluster"}


@magics_class
class DetMagics(Magics):
    """``%%det_experiment`` and ``%det``. Keeps one Dask client per ``--cluster`` address it was given."""

    def __init__(self, shell: InteractiveShell | None = None) -> None:
        super().__init__(shell)
        self._clients: dict[str, Client] = {}
        self._last_cluster: str | None = None

    def close(self) -> None:
        """Close the clients this object opened (experiments they run lose their controller's cluster)."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def _client(self, address: str | None) -> Client | None:
        if address is None:
            return None  # the embedded local cluster
        client = self._clients.get(address)
        if client is None or client.status in ("closed", "closing"):
            from det_jupyter.engine.cluster import cluster

            client = self._clients[address] = cluster(address)
        self._last_cluster = address
        return client

    def _target(self, address: str | None) -> Client | str | None:
        """What ``cluster=`` gets: the address itself in master mode (the master connects), else a client."""
        from det_jupyter.engine.submit import master_mode

        if master_mode() == "process":
            if address is not None:
                self._last_cluster = address
            return address
        return self._client(address)

    @property
    def _user_ns(self) -> dict[str, Any]:
        return self.shell.user_ns if self.shell is not None else {}

    # --- %%det_experiment ----------------------------------------------------------------------

    @magic_arguments()
    @argument(
        "entrypoint",
        nargs="?",
        default=None,
        help="name of the function train(ctx) or trial class in the notebook (default: the config's `entrypoint`)",
    )
    @argument("-o", "--output", metavar="NAME", default=None, help="bind the Experiment to this variable")
    @argument(
        "--cluster",
        metavar="ADDRESS",
        default=None,
        help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (default: the embedded local cluster)",
    )
    @argument(
        "--context",
        metavar="DIR",
        default=None,
        help="a model directory or .zip shipped to the workers; the entrypoint is then a command "
        "(python3 train.py) or a module:attr of it",
    )
    @argument("--wait", action="store_true", help="block until the experiment ends (for scripts and CI)")
    @argument("--preview", action="store_true", help="show what the search would do, without running it")
    @cell_magic
    def det_experiment(self, line: str, cell: str) -> Any:
        """Run an experiment: the cell is its YAML config; returns at once and shows a live widget.

        The entrypoint (a function ``train(ctx)`` or a ``TorchTrial`` / ``KerasTrial`` class) is looked
        up in the notebook by name; it and everything it uses is shipped to the Dask workers by value.
        Before submitting, the magic checks that every global it captures can be pickled (and warns
        about globals over 50 MB, which are copied for every trial).

        ``{name}`` in the config is replaced by the notebook variable ``name`` (e.g. ``max_trials:
        {max_trials}`` from a parameters cell); other braces (YAML flow mappings) are left alone.

        ``--context DIR`` submits a model directory (or ``.zip``) as Determined's ``det experiment create
        CONFIG DIR`` does: the entrypoint is then a command run in a copy of it per trial (``python3
        train.py``, a Determined Core API script with ``import det_jupyter as det``) or a ``module:attr``
        of it. A command entrypoint without ``--context`` runs in an empty directory.

        Interrupting ``--wait`` stops the waiting only: the experiment keeps running; pause or kill it
        with ``exp.pause()`` / ``exp.kill()`` or ``%det pause ID`` / ``%det kill ID``.

        Examples
        --------
        ::

            %%det_experiment train -o exp
            name: iris-asha
            hyperparameters:
              lr: {type: log, base: 10, minval: -4, maxval: -1}
              hidden: {type: int, minval: 4, maxval: 32}
            searcher:
              name: adaptive_asha
              metric: val_loss
              max_trials: 16
              time_metric: batches
              max_time: 1000

            %%det_experiment --preview
            (same config: shows the trials and their lengths, runs nothing)

            %%det_experiment IrisTrial --cluster tcp://scheduler:8786 --wait
            (config with `entrypoint` omitted; blocks until done)

            %%det_experiment --context ./mnist_model -o exp
            name: mnist-core-api
            entrypoint: python3 train.py --epochs 2
            searcher: {name: single, metric: val_loss}
        """
        from det_jupyter.config import load_config
        from det_jupyter.config.entrypoints import entrypoint_kind
        from det_jupyter.engine.definition import resolve_entrypoint
        from det_jupyter.engine.presubmit import LargeGlobalWarning, check_shippable
        from det_jupyter.experiment import create_experiment
        from det_jupyter.notebook.reports import Report
        from det_jupyter.searcher.preview import preview_search

        args = parse_argstring(self.det_experiment, line)
        if args.output is not None and not args.output.isidentifier():
            raise UsageError(
                f"-o {args.output!r}: the name to bind the experiment to must be a Python identifier"
            )
        try:
            config = load_config(expand_variables(cell, self._user_ns))
            if args.preview:
                preview = preview_search(config)
                return Report(str(preview), preview._repr_html_())
            named = args.entrypoint or config.entrypoint
            if args.context is not None or (named is not None and entrypoint_kind(named) == "command"):
                return self._submit_directory(config, args)  # nothing of the notebook is shipped
            target = resolve_entrypoint(None, None if named is None else str(named), self._user_ns)
        except ConfigError as exc:
            where = (
                " (line 1 is the first line after %%det_experiment)"
                if any(e.line for e in exc.errors)
                else ""
            )
            raise UsageError(f"{exc}{where}") from None
        if not callable(target):
            raise UsageError(
                f"entrypoint {args.entrypoint or config.entrypoint!r} is a {type(target).__name__}, not a "
                "function train(ctx) or a trial class"
            )
        try:
            check_shippable(target)
        except TypeError as exc:  # names the global that cannot be pickled
            raise UsageError(str(exc)) from None
        try:
            with warnings.catch_warnings():  # check_shippable already warned about large globals
                warnings.simplefilter("ignore", LargeGlobalWarning)
                exp = create_experiment(
                    config, target, cluster=self._target(args.cluster), namespace=self._user_ns
                )
        except (ConfigError, ClusterError) as exc:
            raise UsageError(str(exc)) from None
        if args.output:
            self._user_ns[args.output] = exp
        display(exp)
        if args.wait:
            self._wait(exp, args.output)
        return None

    def _submit_directory(self, config: ExperimentConfig, args: Any) -> None:
        """``%%det_experiment --context DIR`` (or a command entrypoint): ship the model directory, not the notebook."""
        from det_jupyter.experiment import create_experiment

        try:
            exp = create_experiment(
                config,
                args.entrypoint,
                context=args.context,
                cluster=self._target(args.cluster),
                namespace=self._user_ns,
            )
        except (ConfigError, ClusterError) as exc:
            raise UsageError(str(exc)) from None
        if args.output:
            self._user_ns[args.output] = exp
        display(exp)
        if args.wait:
            self._wait(exp, args.output)

    def _wait(self, exp: Experiment, name: str | None) -> None:
        handle = name or f"det_jupyter.get_experiment({exp.id})"
        try:
            state = exp.wait()
        except KeyboardInterrupt:
            print(
                f"Stopped waiting; experiment {exp.id} keeps running ({exp.state.value}). Pause or kill it with "
                f"{handle}.pause() / {handle}.kill(), or %det pause {exp.id} / %det kill {exp.id}."
            )
            return
        best = exp.best_trial()
        summary = f"experiment {exp.id} {state.value}"
        if best is not None:
            summary += f"; best trial {best.id}: {best.hparams} ({best.best_validation})"
        print(summary)
        if state == ExperimentState.ERROR:
            failed = [t for t in exp.trials() if t.error]
            detail = f"\nlast error of trial {failed[0].id}:\n{failed[0].error}" if failed else ""
            raise TrialError(f"experiment {exp.id} ended in ERROR: {exp.error}{detail}")

    # --- %det ----------------------------------------------------------------------------------

    @magic_arguments()
    @argument("verb", choices=VERBS, help="what to do")
    @argument("ids", nargs="*", type=int, help="experiment id (and, for logs, a trial id)")
    @argument("--tail", type=int, default=None, help="logs: only the last N lines of each trial")
    @argument("--cluster", metavar="ADDRESS", default=None, help="cluster: a scheduler address to describe")
    @line_magic
    def det(self, line: str) -> Any:
        """List, inspect and control experiments in the store; show the cluster.

        ``list`` · ``describe ID`` · ``trials ID`` · ``logs ID [TRIAL] [--tail N]`` · ``pause ID`` ·
        ``activate ID`` · ``kill ID`` · ``attach ID`` (the live widget again, e.g. after a kernel
        restart) · ``resume ID`` (run an experiment whose kernel died, here) · ``cluster [--cluster
        ADDRESS]`` (workers, slots, GPUs and the dashboard link).

        Examples
        --------
        ::

            %det list
            %det describe 3
            %det logs 3 7 --tail 50
            %det kill 3
            %det attach 3
            %det cluster
        """
        from det_jupyter.experiment import get_experiment, open_store
        from det_jupyter.notebook import reports

        args = parse_argstring(self.det, line)
        if args.verb == "cluster":
            return self._cluster(args.cluster)
        if args.verb == "list":
            return reports.experiment_list(open_store())
        expected = 2 if args.verb == "logs" else 1
        if not 1 <= len(args.ids) <= expected:
            usage = "ID [TRIAL]" if args.verb == "logs" else "ID"
            raise UsageError(
                f"%det {args.verb} takes {usage}, e.g. `%det {args.verb} 3`; got {args.ids or 'none'}"
            )
        try:
            exp = get_experiment(args.ids[0])
            store = exp.store
            if args.verb == "describe":
                return reports.experiment_description(store, exp.id)
            if args.verb == "trials":
                return reports.trial_table(store, exp.id)
            if args.verb == "logs":
                trial = args.ids[1] if len(args.ids) > 1 else None
                return reports.trial_logs(store, exp.id, trial, args.tail)
            if args.verb in ("pause", "activate", "kill"):
                getattr(exp, args.verb)()
                print(f"asked experiment {exp.id} to {args.verb} (it was {exp.state.value})")
                return None
            if args.verb == "resume":
                exp.resume(cluster=self._target(self._last_cluster))
                where = "the det-jupyter master" if exp._controller is None else "this kernel"
                print(f"experiment {exp.id} runs again in {where} ({exp.state.value})")
            display(exp)
            if args.verb == "attach":
                self._hint_orphan(exp)
        except (DetJupyterError, RuntimeError) as exc:  # unknown id; resume of a live experiment
            raise UsageError(str(exc)) from None
        return None

    def _hint_orphan(self, exp: Experiment) -> None:
        from det_jupyter.engine.submit import master_mode

        row = exp.store.get_experiment(exp.id)
        stale = row.heartbeat is None or time.time() - row.heartbeat > 20
        if row.state.is_terminal:
            return
        if master_mode(store=exp.store) == "process":  # the master reclaims orphans: make sure it runs
            from det_jupyter.master import ensure_master, poke

            info = ensure_master()
            poke()
            if row.owner is None or stale or f":{info.pid}:" not in row.owner:
                print(f"experiment {exp.id} is run by the det-jupyter master (pid {info.pid})")
            return
        if row.owner is None or stale:
            print(
                f"experiment {exp.id} is {row.state.value} but no controller runs it (its kernel stopped?); "
                f"run it again from here with %det resume {exp.id}"
            )

    def _cluster(self, address: str | None) -> Report:
        from det_jupyter.engine.cluster import cluster, cluster_summary
        from det_jupyter.engine.submit import master_mode
        from det_jupyter.master import MasterPaths, ensure_master
        from det_jupyter.notebook.reports import cluster_report

        address = address or self._last_cluster  # the cluster the last experiment used, if any
        if address is None and master_mode() == "process":
            try:
                info = ensure_master()
            except ClusterError as exc:
                raise UsageError(str(exc)) from None
            workers = [{**w, "nthreads": 1, "address": f"pid {w['pid']}"} for w in info.workers]
            master = {"pid": info.pid, "uptime": info.uptime, "experiments": info.experiments,
                      "log": str(MasterPaths.of().log)}  # fmt: skip
            summary = {"scheduler": info.scheduler, "dashboard_link": info.dashboard_link,
                       "workers": workers, "slots": info.slots, "master": master}  # fmt: skip
            return cluster_report(summary)
        try:
            client = (
                self._client(address) or cluster()
            )  # no address: the embedded cluster (started if need be)
        except ClusterError as exc:
            raise UsageError(str(exc)) from None
        return cluster_report(cluster_summary(client))


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_variables(text: str, namespace: dict[str, Any]) -> str:
    """Replace ``{name}`` by the value of the notebook variable ``name``; leave every other brace alone.

    Only a bare identifier that the namespace defines is replaced (YAML flow mappings such as
    ``{type: int, minval: 4}`` are untouched; nothing is evaluated). Strings go in as they are,
    numbers as Python writes them, booleans / ``None`` as YAML's ``true`` / ``false`` / ``null``,
    lists and dicts as JSON (which YAML reads).

    Example:
        >>> expand_variables("max_trials: {n}, x: {type: int}", {"n": 8})
        'max_trials: 8, x: {type: int}'
    """

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in namespace:
            return match.group(0)
        v = namespace[name]
        if isinstance(v, str):
            return v
        if isinstance(v, bool) or v is None:
            return {True: "true", False: "false", None: "null"}[v]
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, (list, tuple, dict)):
            return json.dumps(v)
        return str(v)

    return _PLACEHOLDER.sub(value, text)


def load_ipython_extension(ip: InteractiveShell) -> None:
    """Register the magics (``%load_ext det_jupyter``)."""
    ip.register_magics(DetMagics(ip))


def unload_ipython_extension(ip: InteractiveShell) -> None:
    """Close the clients the magics opened (``%unload_ext det_jupyter``)."""
    magics = ip.magics_manager.registry.get("DetMagics")
    if isinstance(magics, DetMagics):
        magics.close()
