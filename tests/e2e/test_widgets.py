"""The widgets' kernel side without a browser: traits and the state deltas a frontend receives.

ipywidgets talks through ``comm``; outside a kernel, ``comm.create_comm`` is swapped for a comm
that records what it would send, so the tests see exactly the ``update`` messages (state
deltas) a browser would. The ModelPanel talks to a real server whose models may use at most
40 MiB (``ModelManager.max_memory``), so both verdicts of the estimate are reachable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import comm
import httpx
import pytest
from comm.base_comm import BaseComm
from tiny_gguf import TOOLS_TEMPLATE, write_tiny_model

from lm_jupyter.client.client import Client
from lm_jupyter.client.discovery import ServerInfo, free_port, start_headless, stop_process
from lm_jupyter.kernel.widgets import ChatView, ModelPanel

MODEL = "me/tiny"
TOOLS = "me/tiny-tools"


class RecordingComm(BaseComm):
    sent: list[dict[str, Any]] = []

    def publish_msg(
        self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any
    ) -> None:
        RecordingComm.sent.append({"msg_type": msg_type, "data": data, "comm_id": self.comm_id})


@pytest.fixture(autouse=True)
def recording_comm(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    RecordingComm.sent = []
    monkeypatch.setattr(comm, "create_comm", lambda *args, **kwargs: RecordingComm(*args, **kwargs))
    yield RecordingComm.sent


def updates(sent: list[dict[str, Any]], comm_id: str) -> list[dict[str, Any]]:
    return [
        m["data"]["state"]
        for m in sent
        if m["comm_id"] == comm_id and m["data"] and m["data"].get("method") == "update"
    ]


def frontend_sends(widget: Any, content: dict[str, Any]) -> None:
    """A custom message from the browser (``model.send(content)``)."""
    widget.comm.handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    root = tmp_path_factory.mktemp("widgets")
    write_tiny_model(root / "models" / "me" / "tiny-GGUF" / "tiny-F32.gguf", context_length=32768)
    write_tiny_model(
        root / "models" / "me" / "tiny-tools-GGUF" / "tiny-tools-F32.gguf", chat_template=TOOLS_TEMPLATE
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_RUNTIME_DIR", str(root / "runtime"))
        info = start_headless(
            port=free_port("127.0.0.1", 0),
            models_dir=str(root / "models"),
            config=["--ModelManager.max_memory=40MiB"],
        )
    try:
        yield info
    finally:
        assert info.pid is not None
        stop_process(info.pid)


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_model_manager_lists_estimates_loads_and_unloads(capped: ServerInfo, recording_comm: list) -> None:
    manager = ModelPanel(client=Client(capped), refresh_seconds=0)
    try:
        rows = {row["key"]: row for row in manager.models}
        assert set(rows) == {MODEL, TOOLS}
        assert rows[MODEL]["architecture"] == "llama" and rows[MODEL]["max_context_length"] == 32768
        assert rows[TOOLS]["capabilities"] == ["tool use"] and rows[MODEL]["capabilities"] == []
        assert manager.loaded == [] and manager.estimate == {}

        # the browser moves the selection and the sliders: the kernel answers with an estimate
        manager.selected, manager.context_length = MODEL, 2048
        small = manager.estimate
        # No slider moved: the server chooses the offload (none here: no usable GPU, no control).
        assert manager.gpu is None and small["gpu_offload"] == 0.0 and small["gpu_usable"] is False
        assert small["model"] == MODEL and small["context_length"] == 2048 and small["passesGuardrails"]
        assert small["available"]["ram_bytes"] == 40 * 1024**2  # the cap is what there is
        manager.context_length = 32768
        large = manager.estimate
        assert large["memory"]["totalBytes"] > small["memory"]["totalBytes"]
        assert not large["passesGuardrails"]  # the bars turn red
        sent = updates(recording_comm, manager.comm.comm_id)
        assert [s["estimate"]["context_length"] for s in sent if "estimate" in s][-2:] == [2048, 32768]

        # a load button click arrives as a message; the load runs on a thread
        manager.context_length = 2048
        frontend_sends(manager, {"type": "load", "model": MODEL})
        wait_for(lambda: not manager.busy and bool(manager.loaded))
        (row,) = manager.loaded
        assert (row["identifier"], row["status"], row["contextLength"]) == (MODEL, "idle", 2048)
        assert manager.message.startswith(f"Loaded {MODEL} in ") and not manager.error
        frontend_sends(manager, {"type": "load", "model": MODEL})  # a second click: no second copy
        assert manager.error == f"{MODEL} is already loaded as {MODEL}; unload it first."
        assert manager.estimate["available"]["ram_bytes"] < 40 * 1024**2  # "free" moved with the load
        assert [row["identifier"] for row in manager.loaded] == [MODEL] and not manager.busy
        # the static twin a saved notebook shows once the view is gone: ls and ps as tables
        twin = manager.static()._repr_mimebundle_()["text/markdown"]
        assert '<div class="lmj-static lmj-mm-static">' in twin
        assert ".jp-OutputArea-child:has(.lmj-mm)" in twin
        assert f"| {MODEL} | {MODEL} | IDLE |" in twin and f"| {TOOLS} |" in twin

        frontend_sends(manager, {"type": "unload", "id": MODEL})
        wait_for(lambda: not manager.busy and not manager.loaded)
        assert manager.message == f"Unloaded {MODEL}."

        # a refused load reports the server's one-line reason
        manager.context_length = 32768
        manager.load().join(30)
        assert "insufficient" in manager.error.lower() or "memory" in manager.error.lower()
        assert manager.loaded == []
    finally:
        manager.close()


def test_model_manager_sees_loads_from_elsewhere(capped: ServerInfo) -> None:
    manager = ModelPanel(client=Client(capped), refresh_seconds=0.2)
    headers = {"Authorization": f"Bearer {capped.token}"}
    try:
        assert manager.loaded == []
        response = httpx.post(
            capped.url + "api/v1/models/load",
            headers=headers,
            timeout=60,
            json={"model": TOOLS, "context_length": 1024, "ttl": 600, "identifier": "cli"},
        )
        response.raise_for_status()
        wait_for(lambda: [r["identifier"] for r in manager.loaded] == ["cli"], timeout=10)
        (row,) = manager.loaded
        assert row["ttlMs"] == 600_000 and 0 < row["ttlRemainingMs"] <= 600_000
        assert manager.refreshed_at > 0
    finally:
        manager.close()
        httpx.post(
            capped.url + "api/v1/models/unload", headers=headers, json={"instance_id": "cli"}, timeout=30
        )
    assert manager._closed.is_set()


def test_chat_view_state_and_messages(recording_comm: list) -> None:
    view = ChatView(prompt="Hi", model="m", reasoning_mode="show")
    with view.hold_sync():
        view.blocks = [
            {"type": "reasoning", "text": "hmm"},
            {"type": "text", "text": "Hello **you**"},
            {"type": "tool", "id": "c1", "name": "f", "arguments": "{}", "result": "1", "status": "done"},
        ]
        view.status, view.footer = "done", "m · 3 tokens"
    (delta,) = [s for s in updates(recording_comm, view.comm.comm_id) if "blocks" in s]
    assert delta["status"] == "done" and len(delta["blocks"]) == 3  # one batched update

    frontend_sends(view, {"type": "decide", "id": "c1", "allow": True})
    frontend_sends(view, {"type": "decide", "id": 5, "allow": True})  # malformed: ignored
    assert view.decision("c1") is True and view.decision("c2") is None
    assert not view.stop_requested.is_set()
    frontend_sends(view, {"type": "stop"})
    assert view.stop_requested.is_set()

    data, _ = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data["text/markdown"] == (
        "> Hi\n\n<details open><summary>Reasoning</summary>\n\nhmm\n\n</details>\n\n"
        "Hello **you**\n\n**Tool call** `f({})`\n\n```\n1\n```\n\n"
        "<sub>m · 3 tokens</sub>"
    )
    assert data["text/plain"] == data["text/markdown"]
    static = view.static()._repr_mimebundle_()  # what replaces the view when the exchange ends
    assert set(static) == {"text/markdown", "text/plain"} and static["text/plain"] == data["text/markdown"]
    assert static["text/markdown"].startswith('<div class="lmj-static lmj-chat-static" data-status="done">')
