"""The finalize rule: what a trial's state becomes when one of its runs ends (pure).

Killed → CANCELED; completed and not stopped (or stopped having reached ``max_time``) → COMPLETED;
stopped by the searcher → STOPPED; paused (and not failed) → PAUSED; anything else (error, lost
worker, a task cancelled outside det_jupyter) → restart from the latest checkpoint while
``restarts <= max_restarts`` (PAUSED instead if the experiment is paused), then ERROR with the
searcher told ``ERRORED``. The same user error twice with no new checkpoint in between ends the trial
ERROR at once (:func:`failure_signature` says what "the same" means).
:class:`~det_jupyter.engine.lifecycle.Lifecycle` calls :func:`finalize` for every ended run.

Example:
    >>> from det_jupyter.engine.runs import Outcome, OutcomeStatus, RunRecord, TrialRecord
    >>> t = TrialRecord(id=1, request_id=1, hparams={}, run_id=0)
    >>> [d.state for d in finalize(RunRecord(t, 0, "k"), Outcome(OutcomeStatus.COMPLETED),
    ...                            state=ExperimentState.ACTIVE, max_restarts=0, max_time=10)]
    [<TrialState.COMPLETED: 'COMPLETED'>]
"""

from __future__ import annotations

from typing import Any

from det_jupyter.engine.runs import (
    AppendLog,
    Decision,
    EndTrial,
    Outcome,
    OutcomeStatus,
    RunRecord,
    StopReason,
    UpdateTrial,
)
from det_jupyter.searcher import ExitReason
from det_jupyter.states import ExperimentState, TrialState

__all__ = ["failure_signature", "finalize"]


def finalize(
    run: RunRecord, outcome: Outcome, *, state: ExperimentState, max_restarts: int, max_time: float
) -> list[Decision]:
    """What to do with a trial whose run ended (the run is already forgotten by the caller).

    Args:
        run: the ended run (its ``stop_reason`` and trial's ``searcher_time`` / ``restarts`` matter).
        outcome: how it ended.
        state: the experiment's state now.
        max_restarts: the config's ``max_restarts``.
        max_time: the searcher's ``max_time`` (``math.inf`` when none).

    Example:
        >>> from det_jupyter.engine.runs import TrialRecord
        >>> t = TrialRecord(id=1, request_id=1, hparams={}, run_id=0)
        >>> finalize(RunRecord(t, 0, "k"), Outcome(OutcomeStatus.COMPLETED), state=ExperimentState.ACTIVE,
        ...          max_restarts=0, max_time=10)[0].state
        <TrialState.COMPLETED: 'COMPLETED'>
    """
    trial, reason, status = run.trial, run.stop_reason, outcome.status
    told = state != ExperimentState.STOPPING_CANCELED  # a killed search hears of no more exits
    if reason == StopReason.KILL:
        return [EndTrial(trial, TrialState.CANCELED, None)]
    if status == OutcomeStatus.COMPLETED and (reason is None or trial.searcher_time >= max_time):
        return [EndTrial(trial, TrialState.COMPLETED, ExitReason.COMPLETED if told else None)]
    if reason == StopReason.SEARCHER:
        return [EndTrial(trial, TrialState.STOPPED, ExitReason.STOPPED if told else None)]
    if reason == StopReason.PAUSE and status != OutcomeStatus.ERROR:
        return [UpdateTrial(trial.id, {"state": TrialState.PAUSED})]  # resubmitted by the caller if ACTIVE
    error = outcome.traceback or "the trial's task was cancelled outside det_jupyter"
    trial.restarts += 1
    out: list[Decision] = [AppendLog(trial.id, trial.run_id, f"[det_jupyter] run {trial.run_id} failed:")]
    # The deterministic-error rule: the same user error twice, with no checkpoint in between, will
    # happen on every restart (a typo'd metric name, a missing column): say so instead of retrying.
    signature = failure_signature(outcome.traceback) if status == OutcomeStatus.ERROR else None
    failure = (signature, trial.latest_checkpoint_steps) if signature is not None else None
    repeated = failure is not None and failure == trial.last_failure
    trial.last_failure = failure
    if repeated and trial.restarts <= max_restarts:
        note = (
            f"[det_jupyter] failed twice the same way; not retrying (runs {trial.run_id - 1} and "
            f"{trial.run_id} raised the same error at the same line, with no new checkpoint in between; "
            f"max_restarts={max_restarts} would have restarted it {max_restarts - trial.restarts + 1} more "
            "times). Fix the error, then create the experiment again"
        )
        out.append(AppendLog(trial.id, trial.run_id, note))
        return [
            *out,
            UpdateTrial(trial.id, {"error": f"{error.rstrip()}\n\n{note}", "restarts": trial.restarts}),
            EndTrial(trial, TrialState.ERROR, ExitReason.ERRORED if told else None),
        ]
    values: dict[str, Any] = {"error": error, "restarts": trial.restarts}
    if trial.restarts <= max_restarts and state == ExperimentState.ACTIVE:
        return [*out, UpdateTrial(trial.id, values)]  # the caller resubmits
    if trial.restarts <= max_restarts:  # paused meanwhile: activate resubmits it
        return [*out, UpdateTrial(trial.id, {**values, "state": TrialState.PAUSED})]
    return [
        *out,
        UpdateTrial(trial.id, values),
        EndTrial(trial, TrialState.ERROR, ExitReason.ERRORED if told else None),
    ]


def failure_signature(traceback: str | None) -> str | None:
    r"""What makes two failures "the same": the innermost frame and the exception (type and message).

    ``None`` when the text is not a Python traceback (a lost worker, a cut-off): those are never
    treated as deterministic. Only the final exception of a chain counts.

    Example:
        >>> tb = (
        ...     "Traceback (most recent call last):\n"
        ...     '  File "/w/runtime.py", line 160, in run_trial\n'
        ...     "    call_entrypoint(entrypoint, ctx)\n"
        ...     '  File "<cell>", line 4, in train\n'
        ...     '    y = row["lable"]\n'
        ...     "KeyError: 'lable'\n"
        ... )
        >>> print(failure_signature(tb))
          File "<cell>", line 4, in train
        KeyError: 'lable'
        >>> failure_signature("KilledWorker: x (the worker running the trial died or was lost)") is None
        True
    """
    if not traceback:
        return None
    lines = traceback.rstrip().splitlines()
    frames = [i for i, line in enumerate(lines) if line.startswith('  File "')]
    if not frames:
        return None
    last = frames[-1]
    exception = [line for line in lines[last + 1 :] if line and not line[0].isspace()]
    return "\n".join([lines[last], *exception]) if exception else None
