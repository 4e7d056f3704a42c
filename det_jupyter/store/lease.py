"""The experiment lease: who runs an experiment, and when another controller may take it over.

A controller owns an experiment as ``host:pid:nonce`` and writes a heartbeat every 2 s
(``experiments.owner`` / ``heartbeat``). :func:`lease_is_free` is the one rule that the store's
``claim_experiment``, the master's scan and the master revival share.

Example:
    >>> lease_is_free(None, None)
    True
"""

from __future__ import annotations

import socket
import time

import psutil

__all__ = ["LEASE_STALE", "lease_is_free"]


LEASE_STALE = 20.0
"""Seconds after which an owner's heartbeat is stale (the controller beats every 2 s)."""


def lease_is_free(
    owner: str | None,
    heartbeat: float | None,
    *,
    now: float | None = None,
    stale_after: float = LEASE_STALE,
    claimant: str | None = None,
) -> bool:
    """Whether an experiment's lease may be taken: the one rule the store, the master and revival share.

    It is free when there is no owner, when ``claimant`` already holds it, when the owner names a
    process on this host that is gone (owners are ``host:pid:nonce``; a zombie counts as gone), or when
    its heartbeat is missing or older than ``stale_after`` seconds (an owner on another host is judged
    by its heartbeat alone).

    Example:
        >>> import os, socket, time
        >>> lease_is_free(None, None)
        True
        >>> me = f"{socket.gethostname()}:{os.getpid()}:x"
        >>> lease_is_free(me, time.time()), lease_is_free(me, time.time() - 60, stale_after=20)
        (False, True)
    """
    if not owner or owner == claimant:
        return True
    if _owner_is_dead(owner):
        return True
    now = time.time() if now is None else now
    return heartbeat is None or heartbeat < now - stale_after


def _owner_is_dead(owner: str) -> bool:
    """True when ``owner`` names a process on this host that no longer runs (or is a zombie)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        return bool(psutil.Process(int(pid_text)).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:  # AccessDenied: someone else's live process
        return False
