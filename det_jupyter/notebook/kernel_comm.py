"""Let widget clicks reach the kernel while it is busy running another cell.

A widget event (a button click) travels from the browser as a ``comm_msg`` on the kernel's shell
channel, and ipykernel handles shell messages one at a time on its main thread: while a cell runs,
the click waits until the cell ends. ipykernel 7 has *subshells* (JEP 91): extra threads with their
own event loops that handle shell messages concurrently with the main one, and its shell-channel
thread asks each comm which subshell its messages go to (``comm._reply_subshell_for``).
:func:`route_to_subshell` creates one det_jupyter subshell per kernel and points the given widgets'
comms at it, so their handlers (pause / activate / kill, table sorting) run at once, in that thread.

Where that is unavailable (ipykernel < 7.4, another kernel, no kernel) it does nothing and returns
False: clicks are then handled when the running cell ends, and ``%det kill ID`` or
``det-jupyter experiment kill ID`` in a terminal act at once.

Example:
    >>> import ipywidgets as w
    >>> route_to_subshell([w.Button()])   # False outside a kernel
    False
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["control_subshell_id", "route_to_subshell"]

_create_lock = threading.Lock()  # two widgets built at once must not create two subshells
_ATTRIBUTE = "_det_jupyter_subshell_id"


def _kernel() -> Any:
    try:
        from ipykernel.kernelbase import Kernel
    except ImportError:
        return None
    return Kernel.instance() if Kernel.initialized() else None


def control_subshell_id(timeout: float = 5.0) -> str | None:
    """The id of det_jupyter's subshell in this kernel (created on first use), or None where unsupported."""
    kernel = _kernel()
    thread = getattr(kernel, "shell_channel_thread", None)
    create = getattr(getattr(thread, "manager", None), "_create_subshell", None)
    if kernel is None or thread is None or create is None:
        return None
    with _create_lock:
        existing = getattr(kernel, _ATTRIBUTE, None)
        if existing is not None:
            return str(existing)
        box: dict[str, Any] = {}
        done = threading.Event()

        def make() -> None:  # subshells are created on the shell-channel thread only
            try:
                box["id"] = create()
            except Exception as exc:  # an ipykernel whose internals moved: fall back to the main shell
                box["error"] = exc
            finally:
                done.set()

        thread.io_loop.add_callback(make)
        if not done.wait(timeout) or "id" not in box:
            return None
        setattr(kernel, _ATTRIBUTE, box["id"])
        return str(box["id"])


def route_to_subshell(widgets: Iterable[Any]) -> bool:
    """Handle these widgets' frontend messages in det_jupyter's subshell; True if that is in effect."""
    widgets = list(widgets)
    comms: list[Any] = [getattr(w, "comm", None) for w in widgets]
    if not comms or any(c is None or not hasattr(c, "_reply_subshell_for") for c in comms):
        return False
    subshell = control_subshell_id()
    if subshell is None:
        return False
    for comm in comms:
        comm._reply_subshell_for = lambda data, default, _id=subshell: _id
    return True
