"""Experiment and trial states, in Determined's vocabulary.

Example:
    >>> TrialState.COMPLETED.is_terminal
    True
    >>> ExperimentState("PAUSED").is_terminal
    False
"""

from __future__ import annotations

from enum import Enum

__all__ = ["ControlAction", "ExperimentState", "TrialState"]


class ExperimentState(str, Enum):
    """Lifecycle of an experiment.

    ACTIVE: the searcher is creating and running trials. PAUSED: trials checkpointed and stopped;
    ``activate()`` resumes them. STOPPING_CANCELED: a kill was requested, trials are exiting.
    COMPLETED / CANCELED / ERROR: terminal.
    """

    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    STOPPING_CANCELED = "STOPPING_CANCELED"
    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"
    ERROR = "ERROR"

    @property
    def is_terminal(self) -> bool:
        """True once the experiment will never run again."""
        return self in (ExperimentState.COMPLETED, ExperimentState.CANCELED, ExperimentState.ERROR)


class TrialState(str, Enum):
    """Lifecycle of a trial.

    QUEUED: waiting for a slot. ACTIVE: running on a worker. PAUSED: checkpointed and stopped with its
    experiment. COMPLETED: trained to the searcher's max length. STOPPED: stopped early by the searcher
    (ASHA). CANCELED: killed by the user. ERROR: failed more than ``max_restarts`` times.
    """

    QUEUED = "QUEUED"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    STOPPED = "STOPPED"
    CANCELED = "CANCELED"
    ERROR = "ERROR"

    @property
    def is_terminal(self) -> bool:
        """True once the trial will never run again."""
        return self in (TrialState.COMPLETED, TrialState.STOPPED, TrialState.CANCELED, TrialState.ERROR)


class ControlAction(str, Enum):
    """A control request written into the store by any reader (widget, sidebar, CLI, API)."""

    PAUSE = "PAUSE"
    ACTIVATE = "ACTIVATE"
    KILL = "KILL"
