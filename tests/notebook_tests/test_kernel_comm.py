"""kernel_comm: a widget's comm messages leave the kernel's status alone (JupyterLab's status bar).

The browser half (a click while ``exp.wait()`` runs keeps the status bar on Busy) is in
``tests/browser_tests/test_widget_render.py``; here the status messages themselves, on a stand-in kernel.
"""

from __future__ import annotations

from typing import Any

from det_jupyter.notebook import kernel_comm


class FakeKernel:
    """What ``_quiet_status`` touches of an ipykernel ``Kernel``: ``_publish_status`` and ``get_parent``."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.parent: dict[str, Any] = {}

    def get_parent(self, channel: str | None = None) -> dict[str, Any]:
        return self.parent

    def _publish_status(self, status: str, channel: str, parent: Any = None) -> None:
        self.sent.append((status, parent or self.get_parent(channel)))


def _msg(msg_type: str, comm_id: str | None = None) -> dict[str, Any]:
    content = {} if comm_id is None else {"comm_id": comm_id, "data": {}}
    return {"header": {"msg_id": f"id-{msg_type}-{comm_id}", "msg_type": msg_type}, "content": content}


def test_status_of_our_comm_messages_names_an_untracked_parent() -> None:
    kernel = FakeKernel()
    kernel_comm._quiet_status(kernel, ["ours"])
    kernel_comm._quiet_status(kernel, ["figure"])  # a second widget: the same wrapper, more comms
    for parent in (_msg("comm_msg", "ours"), _msg("comm_msg", "figure"), _msg("comm_msg", "theirs"),
                   _msg("execute_request")):  # fmt: skip
        kernel.parent = parent
        kernel._publish_status("busy", "shell")
        kernel._publish_status("idle", "shell")
    kinds = [(status, p["header"]["msg_type"], p["header"]["msg_id"]) for status, p in kernel.sent]
    assert kinds == [
        ("busy", "comm_info_request", "id-comm_msg-ours"),  # same msg_id: the click's future completes
        ("idle", "comm_info_request", "id-comm_msg-ours"),
        ("busy", "comm_info_request", "id-comm_msg-figure"),
        ("idle", "comm_info_request", "id-comm_msg-figure"),
        ("busy", "comm_msg", "id-comm_msg-theirs"),  # other widgets' messages: as ipykernel sends them
        ("idle", "comm_msg", "id-comm_msg-theirs"),
        ("busy", "execute_request", "id-execute_request-None"),
        ("idle", "execute_request", "id-execute_request-None"),
    ]
    assert kernel.parent["header"]["msg_type"] == "execute_request"  # the kernel's own parent untouched


def test_outside_a_kernel_nothing_changes() -> None:
    import ipywidgets as w

    assert kernel_comm.quiet_kernel_status([w.Button()]) is False
    assert kernel_comm.route_to_subshell([w.Button()]) is False
