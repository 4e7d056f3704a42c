"""Following an experiment from the command line: progress lines, trial logs, the exit status.

``det-jupyter experiment create ... --follow`` and ``det-jupyter experiment wait ID [--follow]`` read
the store (the hub) until the experiment ends: a progress line whenever it changes (state, trials
done / total, the best trial), and each new trial log line as ``[trial N] line``. The exit status is
0 when the experiment ended COMPLETED, 1 otherwise; Ctrl-C stops following only (130), and says how to
follow again. Nothing here controls the experiment.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from det_jupyter.states import ExperimentState, TrialState

if TYPE_CHECKING:
    from det_jupyter.experiment import Experiment
    from det_jupyter.store import Store, TrialRow

__all__ = ["follow", "follow_trial_logs", "progress_line", "revive"]

POLL_INTERVAL = 0.25
"""Seconds between two reads of the store."""

_REVIVE_EVERY = 5.0
INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells report it."""


def revive(store_path: Path) -> None:
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


def progress_line(store: Store, experiment_id: int, trials: list[TrialRow]) -> str:
    """One line: state, trials done / total, running, the best trial so far.

    ``total`` is the searcher's ``max_trials`` (or the trials created, for grid), never less than the
    trials created.
    """
    from det_jupyter.config.ibm import ibm_state, is_from_manifest
    from det_jupyter.searcher.ranking import best_of

    row = store.get_experiment(experiment_id)
    searcher = row.config.get("searcher", {})
    total = max(len(trials), searcher.get("max_trials") or 0)
    done = sum(t.state.is_terminal for t in trials)
    running = sum(t.state == TrialState.ACTIVE for t in trials)
    state = row.state.value
    if is_from_manifest(row.config):
        state += f" (IBM: {ibm_state(row.state, running=running > 0)})"
    line = f"experiment {experiment_id} {state}: trials {done}/{total} done, {running} running"
    best = best_of(
        trials,
        lambda t: t.best_validation,
        smaller_is_better=bool(searcher.get("smaller_is_better", True)),
        tiebreak=lambda t: t.id,
    )
    if best is not None:
        line += f"; best {searcher.get('metric', 'metric')} {best.best_validation:.6g} (trial {best.id}, hparams {best.hparams})"
    return line


class _LogTail:
    """New log lines of an experiment's trials since the last call (each line printed once)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._after: dict[int, int] = {}  # trial id -> the last log row id printed
        self._finished: set[int] = set()  # trials read once more after they ended: nothing will come

    def new_lines(self, trials: list[TrialRow]) -> list[tuple[int, str]]:
        out = []
        for t in trials:
            if t.id in self._finished:
                continue
            self._after[t.id], _, rows = self._store.logs_since(t.id, after_id=self._after.get(t.id, 0))
            out += [(t.id, r.line) for r in rows]
            if t.state.is_terminal:
                self._finished.add(t.id)
        return out


def follow(exp: Experiment, *, logs: bool = True, progress: bool = True, inprocess: bool = False) -> int:
    """Block until ``exp`` ends, printing progress lines and trial logs; 0 if it ended COMPLETED, else 1.

    Args:
        exp: the experiment.
        logs: print trial log lines as ``[trial N] line``.
        progress: print a progress line whenever it changes (and always the last one).
        inprocess: its controller runs in this process (Ctrl-C then stops the experiment's controller
            too: the message says how to resume it).
    """
    store = exp.store
    tail = _LogTail(store)
    last = ""
    next_revive = time.monotonic() + _REVIVE_EVERY
    try:
        while True:
            state = store.get_experiment(exp.id).state
            trials = store.list_trials(exp.id)
            if logs:
                for trial_id, line in tail.new_lines(trials):
                    print(f"[trial {trial_id}] {line}", flush=False)
            line = progress_line(store, exp.id, trials)
            if progress and line != last:
                print(line)
            last = line
            sys.stdout.flush()
            if state.is_terminal:
                break
            if not inprocess and time.monotonic() >= next_revive:
                next_revive = time.monotonic() + _REVIVE_EVERY
                revive(store.path)
            time.sleep(POLL_INTERVAL)
    except KeyboardInterrupt:
        if inprocess:
            hint = (
                f"its controller ran in this process and stops with it; `det-jupyter experiment wait {exp.id} "
                "--follow` lets the home's master resume it"
            )
        else:
            hint = f"it keeps running: `det-jupyter experiment wait {exp.id} --follow` follows it again"
        print(f"\ndet-jupyter: stopped following experiment {exp.id}; {hint}", file=sys.stderr)
        return INTERRUPTED
    if not progress:
        print(last)
    return _exit_status(exp, state)


def _exit_status(exp: Experiment, state: ExperimentState) -> int:
    if state == ExperimentState.COMPLETED:
        return 0
    row = exp.store.get_experiment(exp.id)
    if row.error:
        print(f"det-jupyter: experiment {exp.id} ended {state.value}: {row.error}", file=sys.stderr)
    for t in exp.store.list_trials(exp.id):
        if t.error:
            last_lines = "\n".join(t.error.strip().splitlines()[-10:])
            print(f"det-jupyter: trial {t.id} failed:\n{last_lines}", file=sys.stderr)
            break
    return 1


def follow_trial_logs(store: Store, trial_id: int, *, tail: int | None) -> int:
    """``det-jupyter trial logs ID --follow``: print lines (the last ``tail`` first) until the trial ends."""
    after, _, rows = store.logs_since(trial_id, tail=tail)
    try:
        while True:
            for r in rows:
                print(r.line)
            sys.stdout.flush()
            if store.get_trial(trial_id).state.is_terminal:
                _, _, rows = store.logs_since(trial_id, after_id=after)  # written before it ended
                for r in rows:
                    print(r.line)
                return 0
            time.sleep(POLL_INTERVAL)
            after, _, rows = store.logs_since(trial_id, after_id=after)
    except KeyboardInterrupt:
        print(f"\ndet-jupyter: stopped following trial {trial_id}", file=sys.stderr)
        return INTERRUPTED
