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

**The kernel status stays "Busy".** Every shell message, a comm message on a subshell too, is
bracketed by ``status: busy`` / ``status: idle`` on IOPub, and JupyterLab sets the whole kernel's
status from every status message except those whose parent's ``msg_type`` the server lists as
untracked (``untracked_message_types``: ``comm_info_request``, ``kernel_info_request``, ...). So a
click handled while a cell runs flipped the status bar to "Idle". The idle message must still come
(ipywidgets counts it to throttle state syncs; the frontend routes it by the parent's ``msg_id``), so
:func:`route_to_subshell` tags the status messages of *these widgets'* comm messages with the untracked
parent type ``comm_info_request``: the click's future still completes, the kernel's status is left alone.
:func:`quiet_kernel_status` does the same for widgets whose messages need no subshell (a Plotly
figure reports every redraw back to the kernel: those flipped the status too).

Example:
    >>> import ipywidgets as w
    >>> route_to_subshell([w.Button()])   # False outside a kernel
    False
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

__all__ = [
    "UNTRACKED_PARENT",
    "control_subshell_id",
    "quiet_kernel_status",
    "route_to_subshell",
    "untracked_status_parent",
]

_create_lock = threading.Lock()  # two widgets built at once must not create two subshells
_ATTRIBUTE = "_det_jupyter_subshell_id"
_COMMS = "_det_jupyter_quiet_comms"
UNTRACKED_PARENT = "comm_info_request"
"""A parent ``msg_type`` that Jupyter servers list in ``untracked_message_types`` (their default)."""


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


def untracked_status_parent(parent: dict[str, Any], comm_ids: set[str]) -> dict[str, Any]:
    """The parent a status message should name: for a comm message to one of ``comm_ids``, a copy whose
    header's ``msg_type`` is :data:`UNTRACKED_PARENT` (same ``msg_id``); else ``parent`` itself.

    >>> msg = {"header": {"msg_id": "m1", "msg_type": "comm_msg"}, "content": {"comm_id": "c1"}}
    >>> untracked_status_parent(msg, {"c1"})["header"]
    {'msg_id': 'm1', 'msg_type': 'comm_info_request'}
    >>> untracked_status_parent(msg, {"other"}) is msg
    True
    """
    header = parent.get("header") or {}
    content = parent.get("content") or {}
    if header.get("msg_type") not in ("comm_msg", "comm_close") or content.get("comm_id") not in comm_ids:
        return parent
    return {**parent, "header": {**header, "msg_type": UNTRACKED_PARENT}}


def _quiet_status(kernel: Any, comm_ids: Iterable[str]) -> None:
    """Tag the status messages of these comms' messages as untracked (see the module docstring)."""
    quiet: set[str] | None = getattr(kernel, _COMMS, None)
    if quiet is None:
        publish = kernel._publish_status
        quiet = set()

        def publish_status(status: str, channel: str, parent: Any = None) -> Any:
            if status in ("busy", "idle"):
                parent = untracked_status_parent(parent or kernel.get_parent(channel), quiet)
            return publish(status, channel, parent)

        kernel._publish_status = publish_status
        setattr(kernel, _COMMS, quiet)
    quiet.update(comm_ids)


def quiet_kernel_status(widgets: Iterable[Any]) -> bool:
    """Leave the kernel's status alone when these widgets' frontends send messages (a figure's
    redraw reports, a table click); True if that is in effect (see the module docstring)."""
    kernel = _kernel()
    comms = [getattr(w, "comm", None) for w in widgets]
    ids = [str(c.comm_id) for c in comms if c is not None and getattr(c, "comm_id", None)]
    if kernel is None or not hasattr(kernel, "_publish_status") or not ids:
        return False
    _quiet_status(kernel, ids)
    return True


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
    quiet_kernel_status(widgets)
    return True
