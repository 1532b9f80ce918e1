"""Driving a real IPython kernel from tests: run code, collect its iopub messages, and read
widget state the way a frontend would (comm_open state plus every update).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel

KINDS = ("stream", "display_data", "update_display_data", "execute_result", "error", "comm_open", "comm_msg")


@dataclass
class Kernel:
    km: KernelManager
    kc: BlockingKernelClient


@dataclass
class Run:
    """The iopub messages one execution produced."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    msg_id: str = ""

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m["content"] for m in self.messages if m["msg_type"] == kind]

    def stream(self, name: str) -> str:
        return "".join(c["text"] for c in self.of("stream") if c["name"] == name)

    @property
    def stdout(self) -> str:
        return self.stream("stdout")

    @property
    def stderr(self) -> str:
        return self.stream("stderr")

    @property
    def result(self) -> dict[str, Any]:
        results = self.of("execute_result")
        assert len(results) == 1, self.messages
        return dict(results[0]["data"])

    def assert_no_error(self) -> None:
        assert not self.of("error"), self.of("error")
        assert "Traceback" not in self.stderr, self.stderr


def start_kernel(env: dict[str, str]) -> Kernel:
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=60, env=env)
    return Kernel(km, kc)


def stop_kernel(kernel: Kernel) -> None:
    kernel.kc.stop_channels()
    kernel.km.shutdown_kernel(now=True)


def execute(kernel: Kernel, code: str, timeout: float = 30, on_message: Any = None) -> Run:
    """Run ``code`` and collect its output messages until the kernel is idle again."""
    msg_id = kernel.kc.execute(code)
    run = Run(msg_id=msg_id)
    deadline = time.monotonic() + timeout
    while True:
        msg = kernel.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "status" and msg["content"]["execution_state"] == "idle":
            return run
        if kind in KINDS:
            run.messages.append(msg)
            if on_message is not None:
                on_message(msg)


def execute_reply(kernel: Kernel, run: Run, timeout: float = 10) -> dict[str, Any]:
    """The shell channel's reply to ``run`` (its ``payload`` holds ``set_next_input``)."""
    deadline = time.monotonic() + timeout
    while True:
        msg = kernel.kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") == run.msg_id and msg["msg_type"] == "execute_reply":
            return dict(msg["content"])


@dataclass
class ViewState:
    """A widget's state as a frontend would hold it: the comm_open state plus every update."""

    state: dict[str, Any]
    updates: int
    markdown: str
    static: str = ""


def widget_states(run: Run) -> dict[str, ViewState]:
    """The widgets this run opened. (Updates of widgets opened earlier, such as a refreshing
    ModelPanel's, may land in any cell: ipykernel routes background-thread output to the
    latest one.)"""
    states: dict[str, ViewState] = {}
    for msg in run.messages:
        content = msg["content"]
        if msg["msg_type"] == "comm_open":
            states[content["comm_id"]] = ViewState(dict(content["data"]["state"]), 0, "")
        elif msg["msg_type"] == "comm_msg" and content["data"].get("method") == "update":
            if content["comm_id"] not in states:
                continue
            view = states[content["comm_id"]]
            view.state.update(content["data"]["state"])
            view.updates += 1
    return states


VIEW_MIME = "application/vnd.jupyter.widget-view+json"


def finished_view(run: Run, widget_class: str) -> ViewState:
    """The one widget of ``widget_class`` the run showed, with the Markdown copy that replaced
    its output at the end (``markdown``: its plain text; the rendered copy is ``static``)."""
    views = {
        comm_id: v
        for comm_id, v in widget_states(run).items()
        if v.state.get("_anywidget_id", "").endswith(widget_class)
    }
    assert len(views) == 1, run.messages
    ((comm_id, view),) = views.items()
    (shown,) = [c for c in run.of("display_data") if c["data"].get(VIEW_MIME, {}).get("model_id") == comm_id]
    display_id = shown["transient"]["display_id"]
    updates = [c for c in run.of("update_display_data") if c["transient"]["display_id"] == display_id]
    assert updates, run.messages
    final = updates[-1]["data"]  # the finished view: no widget view left to lose on reopen
    assert set(final) == {"text/markdown", "text/plain"}, final
    view.markdown, view.static = final["text/plain"], final["text/markdown"]
    return view


def chat_view(run: Run) -> ViewState:
    """The one ChatView a %%chat cell showed, with its Markdown copy."""
    return finished_view(run, "ChatView")


def streamed_text(msg: dict[str, Any]) -> bool:
    """A ChatView update that carries answer text (the model is generating)."""
    if msg["msg_type"] != "comm_msg":
        return False
    blocks = msg["content"]["data"].get("state", {}).get("blocks") or []
    return any(block["type"] == "text" and block["text"] for block in blocks)


def send_custom(kernel: Kernel, comm_id: str, content: dict[str, Any]) -> None:
    """What a widget's ``model.send(content)`` in the browser puts on the shell channel."""
    data = {"method": "custom", "content": content}
    kernel.kc.shell_channel.send(kernel.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data}))


def value(kernel: Kernel, expression: str) -> Any:
    """Evaluate ``expression`` in the kernel; it must be JSON-serializable."""
    run = execute(kernel, f"import json as _json; print(_json.dumps({expression}))")
    run.assert_no_error()
    return json.loads(run.stdout)
