"""``%lms load`` and a ``%%chat``'s just-in-time load show a LoadView in a real kernel, against
the shared real server: the estimate's bars, the progress, then the measured memory, ending in
a Markdown copy; errors and interrupts end it cleanly. The server's listing carries each
loading instance's progress (``server/load_progress.py``), checked on the real Qwen model,
whose load takes long enough to be watched."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lm_jupyter.client.discovery import ServerInfo
from tests.conftest import QWEN_KEY
from tests.e2e.test_cli import lmj

from .kernel_harness import VIEW_MIME, Kernel, execute, finished_view, start_kernel, stop_kernel, value

pytestmark = pytest.mark.timeout(180)

CHAT = "test/tiny-chat"


@pytest.fixture(scope="module")
def kernel(server: ServerInfo) -> Iterator[Kernel]:
    env = {**os.environ, "LM_JUPYTER_URL": server.url, "LM_JUPYTER_TOKEN": server.token}
    env.pop("JPY_PARENT_PID", None)
    kernel = start_kernel(env)
    try:
        execute(kernel, "%load_ext lm_jupyter").assert_no_error()
        execute(kernel, "_lm = get_ipython().magics_manager.registry['LmMagics']").assert_no_error()
        yield kernel
    finally:
        execute(kernel, "%lms unload --all")
        stop_kernel(kernel)


def _ps_memory(kernel: Kernel, identifier: str) -> str:
    table = value(kernel, "[(r[0], r[5]) for r in get_ipython().run_line_magic('lms', 'ps').rows]")
    return dict(table)[identifier]


def test_lms_load_shows_estimate_progress_and_measured_memory(kernel: Kernel) -> None:
    estimate = value(kernel, f"get_ipython().run_line_magic('lms', 'load {CHAT} --estimate-only --json')")
    execute(kernel, "%lms unload --all")
    run = execute(kernel, f"%lms load {CHAT}", timeout=60)
    run.assert_no_error()
    assert not run.stdout.strip() and not run.stderr  # everything is in the view and its copy
    view = finished_view(run, "LoadView")
    (opened,) = [
        m["content"]["data"]["state"]
        for m in run.messages
        if m["msg_type"] == "comm_open"
        and m["content"]["data"]["state"].get("_anywidget_id", "").endswith("LoadView")
    ]
    assert opened["status"] == "estimate" and opened["model"] == CHAT
    assert [bar["label"] for bar in opened["bars"]] == ["Total"]  # no GPU memory on this machine
    assert opened["where"] == "on the CPU" and opened["verdict"] == "Fits in memory."
    progress = [
        m["content"]["data"]["state"]["progress"]
        for m in run.messages
        if m["msg_type"] == "comm_msg" and "progress" in m["content"]["data"].get("state", {})
    ]
    assert progress == sorted(progress) and progress[-1] == 1.0  # the tiny load may be done in one look
    assert view.state["status"] == "loaded" and view.state["identifier"] == CHAT
    measured = view.state["measured"]
    assert measured and measured == _ps_memory(kernel, CHAT)  # the figure `ps` shows
    assert f"| Total | {view.state['estimated']} |" in view.static and f"| {measured} |" in view.static
    assert view.state["estimated"] == opened["bars"][0]["need"]
    assert view.state["estimated"] == value(
        kernel,
        f"__import__('lm_jupyter.client.tables').client.tables.format_size({estimate['memory']['totalBytes']})",
    )
    assert "Model loaded successfully in " in view.static and 'data-status="loaded"' in view.static
    assert value(kernel, "_lm.last_model") == CHAT  # the next %%chat uses it
    execute(kernel, "%lms unload --all").assert_no_error()


def test_lms_load_error_is_shown_once_in_the_view(kernel: Kernel) -> None:
    run = execute(kernel, f"%lms load {CHAT} --draft-model does/not-exist", timeout=60)
    run.assert_no_error()
    assert not run.stderr  # not printed again
    view = finished_view(run, "LoadView")
    assert view.state["status"] == "error" and "not downloaded" in view.state["error"]
    assert view.static.count("not downloaded") == 1 and "%lms ls" in view.static  # the notebook's command
    # a model that does not exist is refused before any view (one line on stderr)
    run = execute(kernel, "%lms load does/not-exist")
    assert "not downloaded" in run.stderr and not run.of("display_data")


def test_interrupted_load_ends_the_view_and_leaves_the_server_loading(
    kernel: Kernel, server: ServerInfo
) -> None:
    # The tiny model loads faster than anyone can interrupt: hold the kernel's load request
    # (the server's part stays real) until the interrupt has landed, which it does once the
    # request is on its way (the held thread says so), not while the view is being shown.
    execute(
        kernel,
        "import threading as _threading\n"
        "_gate, _plain_load = _threading.Event(), _lm.client.load\n"
        "def _held(*args, **kwargs):\n"
        "    print('load held', flush=True)\n"
        "    _gate.wait(60)\n"
        "    return _plain_load(*args, **kwargs)\n"
        "_lm.client.load = _held",
    ).assert_no_error()
    interrupted: list[bool] = []

    def interrupt_once_held(msg: dict[str, Any]) -> None:
        held = msg["msg_type"] == "stream" and "load held" in msg["content"]["text"]
        if held and not interrupted:
            interrupted.append(True)
            kernel.km.interrupt_kernel()

    try:
        run = execute(kernel, f"%lms load {CHAT}", timeout=60, on_message=interrupt_once_held)
        run.assert_no_error()
        view = finished_view(run, "LoadView")
        assert view.state["status"] == "interrupted" and "%lms ps" in view.state["message"]
        assert 'data-status="interrupted"' in view.static and "KeyboardInterrupt" not in run.stderr
    finally:
        execute(kernel, "_gate.set(); _lm.client.load = _plain_load").assert_no_error()
    execute(kernel, "%lms unload --all")


def test_chat_on_a_model_not_loaded_shows_its_load_above_the_chat(kernel: Kernel) -> None:
    execute(kernel, "%lms unload --all")
    run = execute(kernel, f"%%chat {CHAT} --new --max-tokens 4\nhello", timeout=90)
    run.assert_no_error()
    shown = [c["data"][VIEW_MIME]["model_id"] for c in run.of("display_data") if VIEW_MIME in c["data"]]
    load, chat = finished_view(run, "LoadView"), finished_view(run, "ChatView")
    states = {
        m["content"]["comm_id"]: m["content"]["data"]["state"].get("_anywidget_id", "")
        for m in run.messages
        if m["msg_type"] == "comm_open"
    }
    assert [states[model_id].rsplit(".", 1)[-1] for model_id in shown] == ["LoadView", "ChatView"]
    assert load.state["status"] == "loaded" and "just in time" in load.state["message"]
    assert load.state["measured"] and chat.state["status"] == "done"
    # an already loaded model shows no load view
    run = execute(kernel, f"%%chat {CHAT} --max-tokens 2\nagain", timeout=60)
    assert len([v for v in run.of("display_data") if VIEW_MIME in v["data"]]) == 1
    execute(kernel, "%lms unload --all").assert_no_error()


def test_one_figure_per_quantity(kernel: Kernel, server: ServerInfo) -> None:
    """One instance loaded: its estimate reads the same in `--estimate-only`, the LoadView and its
    copy; its memory the same in the LoadView and its copy, `%lms ps`, `lmj ps` and the model
    manager (its rows' figures and its static twin)."""
    execute(kernel, "%lms unload --all")
    text = execute(kernel, f"%lms load {CHAT} --estimate-only").stdout
    (estimated,) = [line.split(":", 1)[1].strip() for line in text.splitlines() if "Total Memory" in line]
    run = execute(kernel, f"%lms load {CHAT}", timeout=60)
    run.assert_no_error()
    view = finished_view(run, "LoadView")
    assert view.state["estimated"] == estimated and f"| Total | {estimated} |" in view.static
    measured = view.state["measured"]
    assert f"| {measured} |" in view.static and _ps_memory(kernel, CHAT) == measured
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LM_JUPYTER_", "JPY_"))}
    env.update(LM_JUPYTER_URL=server.url, LM_JUPYTER_TOKEN=server.token)
    ps = lmj(env, "ps").stdout
    (row,) = [line.split() for line in ps.splitlines() if line.startswith(CHAT)]
    assert " ".join(row[6:8]) == measured  # MEMORY, after IDENTIFIER MODEL STATUS QUEUED and SIZE
    execute(
        kernel,
        "from lm_jupyter.client.tables import format_size as _fs\n"
        "from lm_jupyter.kernel.widgets import ModelPanel as _Panel\n"
        "_panel = _Panel(client=_lm.client, refresh_seconds=0)\n"
        "_twin, _rows = _panel.static().markdown, [_fs(r['memoryBytes']) for r in _panel.loaded]\n"
        "_panel.close()",
    ).assert_no_error()
    twin, rows = value(kernel, "[_twin, _rows]")
    assert rows == [measured] and f"| {measured} |" in twin
    execute(kernel, "%lms unload --all").assert_no_error()


@pytest.mark.slow
def test_the_listing_carries_the_progress_of_a_load(http: httpx.Client) -> None:
    """Any client follows any load: ``GET /api/v1/models`` gives each loading instance's latest
    ``load_progress`` while another request loads it."""
    seen: list[float] = []
    done = threading.Event()

    def load() -> None:
        try:
            http.post(
                "api/v1/models/load", json={"model": QWEN_KEY, "context_length": 2048}
            ).raise_for_status()
        finally:
            done.set()

    threading.Thread(target=load).start()
    while not done.is_set():
        for model in http.get("api/v1/models").json()["models"]:
            for instance in model["loaded_instances"]:
                if instance["status"] == "loading" and model["key"] == QWEN_KEY:
                    seen.append(instance["load_progress"])
    try:
        assert seen and seen == sorted(seen) and all(0 <= p <= 1 for p in seen)
        assert len(set(seen)) > 2 and max(seen) > 0, seen  # it moved while we watched
        listing = http.get("api/v1/models").json()["models"]
        (instance,) = [i for m in listing if m["key"] == QWEN_KEY for i in m["loaded_instances"]]
        assert instance["status"] == "idle" and "load_progress" not in instance
    finally:
        http.post("api/v1/models/unload", json={"instance_id": QWEN_KEY})
