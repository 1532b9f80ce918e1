"""``%lms`` and ``%%chat`` in a real IPython kernel talking to a real headless server.

One headless server (tiny random-weight models) and one kernel serve the whole module; a
second kernel checks discovery through ``JPY_PARENT_PID``. Everything the tests see comes
from iopub messages, exactly what a notebook frontend receives.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tiny_gguf import write_tiny_model  # tests/ is on sys.path (conftest.py)

from lm_jupyter.client.discovery import ServerInfo, start_headless, stop_headless

from .kernel_harness import (
    Kernel,
    chat_view,
    execute,
    finished_view,
    send_custom,
    start_kernel,
    stop_kernel,
    streamed_text,
    value,
    widget_states,
)

pytestmark = pytest.mark.timeout(120)

CHAT = "test/tiny-chat"
# Seed 1 under greedy sampling never produces an end-of-generation token for thousands of
# tokens, so with a 32k context the generation is certainly still running when we interrupt.
LONG = "test/tiny-long"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def magics_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    root = tmp_path_factory.mktemp("magics")
    models = root / "models"
    write_tiny_model(models / "test/tiny-chat-GGUF/tiny-chat-F32.gguf")
    write_tiny_model(
        models / "test/tiny-long-GGUF/tiny-long-F32.gguf", name="tiny-long", context_length=32768, seed=1
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_RUNTIME_DIR", str(root / "runtime"))
        for name in ("LM_JUPYTER_URL", "LM_JUPYTER_TOKEN"):
            mp.delenv(name, raising=False)
        info = start_headless(port=_free_port(), models_dir=str(models))
        try:
            yield info
        finally:
            stop_headless()


@pytest.fixture(scope="module")
def kernel(magics_server: ServerInfo) -> Iterator[Kernel]:
    env = {**os.environ, "LM_JUPYTER_URL": magics_server.url, "LM_JUPYTER_TOKEN": magics_server.token}
    kernel = start_kernel(env)
    try:
        run = execute(kernel, "%load_ext lm_jupyter")
        run.assert_no_error()
        execute(kernel, "_lm = get_ipython().magics_manager.registry['LmMagics']").assert_no_error()
        yield kernel
    finally:
        stop_kernel(kernel)


def _instances(server: ServerInfo) -> dict[str, dict[str, Any]]:
    response = httpx.get(
        server.url + "api/v1/models", headers={"Authorization": f"Bearer {server.token}"}, timeout=10
    )
    response.raise_for_status()
    return {inst["id"]: inst for model in response.json()["models"] for inst in model["loaded_instances"]}


def _wait_idle(server: ServerInfo, identifier: str) -> None:
    deadline = time.monotonic() + 2
    while _instances(server)[identifier]["status"] != "idle":
        assert time.monotonic() < deadline, "the server kept generating after the stop"
        time.sleep(0.05)


def test_lms_commands(kernel: Kernel, magics_server: ServerInfo) -> None:
    run = execute(kernel, "%lms ls")
    run.assert_no_error()
    assert CHAT in run.result["text/html"]
    assert "<table>" in run.result["text/html"]
    assert CHAT in run.result["text/plain"]

    run = execute(kernel, "%lms ls --json")
    run.assert_no_error()
    assert f"'modelKey': '{CHAT}'" in run.result["text/plain"]
    keys = value(kernel, "[m['modelKey'] for m in get_ipython().run_line_magic('lms', 'ls --json')]")
    assert sorted(keys) == [CHAT, LONG]

    run = execute(kernel, f"%lms load {CHAT}")
    run.assert_no_error()
    loaded = finished_view(run, "LoadView").static  # the view's copy (tests/e2e/test_load_view.py)
    assert "Model loaded successfully in " in loaded
    assert f'To use the model in the API/SDK, use the identifier "{CHAT}".' in loaded

    run = execute(kernel, "%lms ps")
    run.assert_no_error()
    assert CHAT in run.result["text/html"]
    assert "IDLE" in run.result["text/html"]
    rows = value(kernel, "get_ipython().run_line_magic('lms', 'ps --json')")
    assert [(row["identifier"], row["status"]) for row in rows] == [(CHAT, "idle")]

    run = execute(kernel, "%lms unload")  # exactly one loaded: that one
    assert run.stdout.strip() == f'Model "{CHAT}" unloaded.'
    assert execute(kernel, "%lms unload").stdout.strip() == "No models to unload."

    execute(kernel, f"%lms load {CHAT}\n%lms load {CHAT} --identifier second").assert_no_error()
    assert set(_instances(magics_server)) == {CHAT, "second"}
    run = execute(kernel, "%lms unload")  # two loaded: ask which
    run.assert_no_error()
    assert "2 models are loaded" in run.stderr and run.stderr.count("\n") == 1
    run = execute(kernel, "%lms unload --all")
    assert run.stdout.strip() == "Unloaded 2 models."
    assert _instances(magics_server) == {}


def test_bare_lms_shows_one_model_manager(kernel: Kernel) -> None:
    first, second = execute(kernel, "%lms"), execute(kernel, "%lms")
    first.assert_no_error()
    view = "application/vnd.jupyter.widget-view+json"
    (panel, twin), (again, _) = (run.of("display_data") for run in (first, second))
    assert panel["data"][view]["model_id"] == again["data"][view]["model_id"]  # one poller per kernel
    assert set(twin["data"]) == {"text/markdown", "text/plain"}  # the copy a saved notebook shows
    assert "lmj-mm-static" in twin["data"]["text/markdown"] and CHAT in twin["data"]["text/markdown"]
    states = widget_states(first).values()
    (manager,) = [v for v in states if v.state.get("_anywidget_id", "").endswith("ModelPanel")]
    keys = sorted(row["key"] for row in manager.state["models"])
    assert keys == [CHAT, LONG]
    execute(kernel, "_lm._manager.close()").assert_no_error()  # stop its refresh thread
    third = execute(kernel, "%lms")  # a closed manager is replaced
    assert third.of("display_data")[0]["data"][view]["model_id"] != panel["data"][view]["model_id"]
    execute(kernel, "_lm._manager.close()").assert_no_error()


def test_bad_input_prints_one_line(kernel: Kernel) -> None:
    for code, expected in [
        ("%lms load does/not-exist", "not downloaded"),
        ("%lms frobnicate", "invalid choice"),
        ("%lms load", "required"),
        ("%lms load x --context-length many", "invalid int value"),
        ('%lms load "unclosed', "Cannot parse"),
        ("%%chat --max-tokens x\nhi", "invalid int value"),
        ("%%chat\nhi", "no model is loaded"),
        ("%lms history --verbose", "unrecognized arguments"),
    ]:
        run = execute(kernel, code)
        run.assert_no_error()
        assert expected in run.stderr, (code, run.stderr)
        assert run.stderr.count("\n") == 1, (code, run.stderr)
        assert not run.of("execute_result"), code
    # a request the server refuses: the error shows once, in the chat's output, not on stderr too
    run = execute(kernel, "%%chat does/not-exist\nhi")
    run.assert_no_error()
    assert not run.stderr
    final = run.of("update_display_data")[-1]["data"]["text/markdown"]
    assert final.count("not downloaded") == 1 and 'data-status="error"' in final and "tokens" not in final


def test_chat_streams_and_keeps_history(kernel: Kernel, magics_server: ServerInfo) -> None:
    execute(kernel, f"%lms load {CHAT}").assert_no_error()
    # record what the magics send, to check that history goes to the server
    execute(
        kernel,
        "_sent = []\n"
        "_orig = _lm.client.chat_stream\n"
        "_lm.client.chat_stream = lambda body: (_sent.append(body), _orig(body))[1]",
    ).assert_no_error()
    try:
        run = execute(kernel, f"%%chat {CHAT} --max-tokens 8\nHello there")
        run.assert_no_error()
        assert not run.stderr
        view = chat_view(run)
        assert view.state["prompt"] == "Hello there" and view.state["model"] == CHAT
        assert view.state["status"] == "done"
        # The tiny model answers 8 tokens within one update period (50 ms), so it may be one update;
        # streaming over many updates is checked with an endless generation in the stop tests.
        assert view.updates >= 1
        final = view.markdown
        tokens = re.search(r"· (\d+) tokens?\b", final)  # the footer; the model may stop early
        assert tokens and int(tokens.group(1)) <= 8 and CHAT in final, final
        assert view.state["stats"]["completion_tokens"] == int(tokens.group(1))
        assert view.state["stats"]["ttft_s"] > 0 and view.state["footer"] in final
        reply = value(kernel, "_lm.session.last_reply")
        assert value(kernel, "_chat_result") == reply
        assert final.startswith("> Hello there\n\n" + reply)
        assert value(kernel, "len(_lm.session.messages)") == 2

        run = execute(kernel, "%%chat --max-tokens 8 --temperature 0.5 --out answer\nAnd again")  # last model
        run.assert_no_error()
        assert chat_view(run).state["status"] == "done"
        assert value(kernel, "len(_lm.session.messages)") == 4
        assert value(kernel, "answer") == value(kernel, "_lm.session.last_reply")
        sent = value(kernel, "_sent[-1]")
        assert sent["model"] == CHAT and sent["temperature"] == 0.5 and sent["max_tokens"] == 8
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
        assert sent["messages"][1]["content"] == reply

        history = execute(kernel, "%lms history")
        history.assert_no_error()
        assert history.result["text/markdown"].startswith("**user:** Hello there\n\n**assistant:** ")
        messages = value(kernel, "get_ipython().run_line_magic('lms', 'history --json')")
        assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]

        execute(kernel, "topic = 'owls'").assert_no_error()
        run = execute(
            kernel,
            "%%chat --new --system 'Be brief.' --max-tokens 4 --draft-model test/tiny-chat\n"
            'Tell me about {topic} and {{braces}} and {"json": 1}',
        )
        run.assert_no_error()
        assert value(kernel, "len(_lm.session.messages)") == 2
        sent = value(kernel, "_sent[-1]")
        assert [m["role"] for m in sent["messages"]] == ["system", "user"]
        assert sent["messages"][1]["content"] == 'Tell me about owls and {braces} and {"json": 1}'
        assert sent["draft_model"] == CHAT  # passed through for speculative decoding

        run = execute(kernel, "%chat --new")
        assert run.stdout.strip() == "Started a new conversation."
        assert value(kernel, "len(_lm.session.messages)") == 0
        assert execute(kernel, "%lms history").result["text/markdown"] == "*No conversation yet.*"
    finally:
        execute(kernel, "_lm.client.chat_stream = _orig\n%lms unload --all").assert_no_error()


def test_chat_input_errors_are_one_line(kernel: Kernel) -> None:
    execute(kernel, "def f(x: int) -> int:\n    return x\nnot_a_schema = 3").assert_no_error()
    for code, expected in [
        (f"%%chat {CHAT}\nHello {{nobody}}", "'nobody' is not defined"),
        (f"%%chat {CHAT} --tools missing\nhi", "no variable named 'missing'"),
        (f"%%chat {CHAT} --tools not_a_schema\nhi", "--tools needs a function"),
        (f"%%chat {CHAT} --json-schema not_a_schema\nhi", "give a dict (JSON schema) or a pydantic"),
        (f"%%chat {CHAT} --tool-choice required\nhi", "--tool-choice needs --tools"),
        (f"%%chat {CHAT} --tools f --tool-choice g\nhi", "no such tool"),
        (f"%%chat {CHAT} --reasoning loud\nhi", "invalid choice"),
        (f"%%chat {CHAT} --model other\nhi", "give the model once"),
    ]:
        run = execute(kernel, code)
        run.assert_no_error()
        assert expected in run.stderr, (code, run.stderr)
        assert run.stderr.count("\n") == 1, (code, run.stderr)


def test_interrupt_stops_generation(kernel: Kernel, magics_server: ServerInfo) -> None:
    execute(kernel, f"%lms load {LONG} --context-length 32768").assert_no_error()
    interrupted_at: list[float] = []

    def interrupt_once_text_streams(msg: dict[str, Any]) -> None:
        if streamed_text(msg) and not interrupted_at:
            assert _instances(magics_server)[LONG]["status"] == "generating"
            interrupted_at.append(time.monotonic())
            kernel.km.interrupt_kernel()

    run = execute(
        kernel,
        f"%%chat {LONG} --max-tokens -1 --temperature 0\nTell me a very long story.",
        on_message=interrupt_once_text_streams,
    )
    assert interrupted_at, "the generation ended before it could be interrupted"
    assert time.monotonic() - interrupted_at[0] < 5
    run.assert_no_error()
    view = chat_view(run)
    assert view.state["status"] == "stopped" and view.state["error"] == "Interrupted."
    assert "\n\n*Interrupted.*\n\n<sub>test/tiny-long · " in view.markdown and view.state["blocks"][0]["text"]
    assert value(kernel, "len(_lm.session.messages)") == 0  # the partial answer is not history
    _wait_idle(magics_server, LONG)
    # the client still works after the interrupted stream
    run = execute(kernel, "%lms ps")
    run.assert_no_error()
    assert "IDLE" in run.result["text/html"]
    execute(kernel, "%lms unload --all").assert_no_error()


def test_stop_button_cancels_on_the_server(kernel: Kernel, magics_server: ServerInfo) -> None:
    """The widget's stop message arrives on the shell channel while the cell is still running."""
    execute(kernel, f"%lms load {LONG} --context-length 32768").assert_no_error()
    pressed_at: list[float] = []
    comm_ids: dict[str, str] = {}

    streamed: list[bool] = []

    def press_stop(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "comm_open":  # the ChatView opens last (after its Layout)
            comm_ids["view"] = msg["content"]["comm_id"]
        if streamed_text(msg):
            streamed.append(True)
        if len(streamed) == 10 and not pressed_at:  # let it stream for a while (~0.5 s)
            assert _instances(magics_server)[LONG]["status"] == "generating"
            pressed_at.append(time.monotonic())
            send_custom(kernel, comm_ids["view"], {"type": "stop"})

    run = execute(
        kernel,
        f"%%chat {LONG} --max-tokens -1 --temperature 0\nTell me a very long story.",
        on_message=press_stop,
    )
    assert pressed_at, "the generation ended before the stop button could be pressed"
    assert time.monotonic() - pressed_at[0] < 5
    run.assert_no_error()
    view = chat_view(run)
    assert view.state["status"] == "stopped" and view.state["error"] == "Stopped."
    # updates are batched: at most 20 a second, however fast the tokens come
    stamps = [m["header"]["date"] for m in run.messages if streamed_text(m)]
    seconds = (stamps[-1] - stamps[0]).total_seconds()
    assert len(stamps) >= 2 and (len(stamps) - 1) / max(seconds, 1e-3) <= 20 * 1.2, (len(stamps), seconds)
    assert view.state["stats"]["completion_tokens"] > 2 * len(stamps)  # several tokens per update
    _wait_idle(magics_server, LONG)
    assert value(kernel, "len(_lm.session.messages)") == 0
    execute(kernel, "%lms unload --all").assert_no_error()


def test_chat_called_from_code_in_a_kernel(kernel: Kernel, magics_server: ServerInfo) -> None:
    """``run_cell_magic`` from code is synchronous: it runs on a helper thread, and an
    interrupt still stops the generation on the server."""
    run = execute(kernel, f"get_ipython().run_cell_magic('chat', '{CHAT} --new --max-tokens 4', 'Hi')")
    run.assert_no_error()
    assert chat_view(run).state["status"] == "done"
    assert value(kernel, "len(_lm.session.messages)") == 2

    execute(kernel, f"%lms load {LONG} --context-length 32768").assert_no_error()
    interrupted: list[bool] = []

    def interrupt(msg: dict[str, Any]) -> None:
        if streamed_text(msg) and not interrupted:
            interrupted.append(True)
            kernel.km.interrupt_kernel()

    code = f"get_ipython().run_cell_magic('chat', '{LONG} --new --max-tokens -1 --temperature 0', 'Story')"
    run = execute(kernel, code, on_message=interrupt)
    run.assert_no_error()
    assert interrupted and chat_view(run).state["status"] == "stopped"
    _wait_idle(magics_server, LONG)
    assert value(kernel, "len(_lm.session.messages)") == 0
    execute(kernel, "%lms unload --all").assert_no_error()


def test_chat_in_a_terminal_is_text(magics_server: ServerInfo, tmp_path: Any) -> None:
    """No kernel (plain IPython): the answer is streamed as text with the footer in brackets."""
    env = {
        **os.environ,
        "LM_JUPYTER_URL": magics_server.url,
        "LM_JUPYTER_TOKEN": magics_server.token,
        "IPYTHONDIR": str(tmp_path),
    }
    code = f"%load_ext lm_jupyter\nget_ipython().run_cell_magic('chat', '{CHAT} --max-tokens 6', 'Hi')\n"
    done = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "--colors=nocolor", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    footer = re.search(rf"\[{re.escape(CHAT)} · (\d+) tokens? ·", done.stdout)
    assert footer and int(footer.group(1)) <= 6, done.stdout
    assert "Traceback" not in done.stderr


def test_discovery_through_parent_pid(magics_server: ServerInfo) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LM_JUPYTER_")}
    kernel = start_kernel(env)  # its JPY_PARENT_PID is this test process: no Jupyter server
    try:
        execute(kernel, "%load_ext lm_jupyter").assert_no_error()
        status = value(kernel, "get_ipython().run_line_magic('lms', 'server status --json')")
        assert status["source"] == "headless" and status["url"] == magics_server.url and status["running"]

        # as if the headless server (a Jupyter server) had launched this kernel
        execute(
            kernel,
            f"import os; os.environ['JPY_PARENT_PID'] = '{magics_server.pid}'\n"
            "get_ipython().magics_manager.registry['LmMagics']._client = None",
        ).assert_no_error()
        status = value(kernel, "get_ipython().run_line_magic('lms', 'server status --json')")
        assert status["source"] == "parent" and status["pid"] == magics_server.pid and status["running"]
        run = execute(kernel, "%lms server status")
        run.assert_no_error()
        assert "the Jupyter server that started this kernel" in run.stdout
        assert magics_server.url in run.stdout
    finally:
        stop_kernel(kernel)


def test_chat_widget_shows_prefill_progress_on_long_prompts(kernel: Kernel) -> None:
    """``%%chat`` asks for prompt progress on long prompts; while a prompt longer than one 512-token batch is
    processed, the ChatView's ``prefill`` trait holds how far it is, and it is empty again once
    the answer comes. The stream is paced (each partial progress waits until the kernel-side view
    shows it), so no update can be skipped by the 20 Hz rendering."""
    execute(kernel, f"%lms load {CHAT}").assert_no_error()
    execute(
        kernel,
        "import time as _time\n"
        "from ipywidgets.widgets.widget import _instances as _widgets\n"
        "from lm_jupyter.kernel.widgets import ChatView as _ChatView\n"
        "_shown, _bodies, _plain = [], [], _lm.client.chat_stream\n"
        "def _paced(body):\n"
        "    _bodies.append(body)\n"
        "    for chunk in _plain(body):\n"
        "        yield chunk\n"
        "        p = chunk.get('prompt_progress')\n"
        "        if p and p['processed'] < p['total']:\n"
        "            view = [w for w in _widgets.values() if isinstance(w, _ChatView)][-1]\n"
        "            want = {'processed': p['processed'], 'total': p['total']}\n"
        "            deadline = _time.monotonic() + 10\n"
        "            while view.prefill != want and _time.monotonic() < deadline:\n"
        "                _time.sleep(0.01)\n"
        "            _shown.append((dict(view.prefill), view.status))\n"
        "_lm.client.chat_stream = _paced",
    ).assert_no_error()
    try:
        run = execute(kernel, "%%chat " + CHAT + " --new --max-tokens 2\n" + "hello world " * 90, timeout=120)
        run.assert_no_error()
        assert value(kernel, "_bodies[-1]['return_progress']") is True
        shown = value(kernel, "_shown")
        assert len(shown) >= 2  # about 1,450 prompt tokens: three chunks, two of them partial
        processed = [state["processed"] for state, _ in shown]
        assert processed == sorted(processed) and all(0 < p < shown[0][0]["total"] for p in processed)
        assert all(status == "processing" for _, status in shown)
        prefills = [
            msg["content"]["data"]["state"]["prefill"]
            for msg in run.messages
            if msg["msg_type"] == "comm_msg" and "prefill" in msg["content"]["data"].get("state", {})
        ]
        assert [p for p in prefills if p] == [state for state, _ in shown]  # what the browser got
        view = chat_view(run)
        assert view.state["status"] == "done" and view.state["prefill"] == {}
        short = execute(kernel, "%%chat --new --max-tokens 2\nhi")  # short: no progress asked, no bar
        short.assert_no_error()
        assert chat_view(short).state["prefill"] == {}
        assert "return_progress" not in value(kernel, "_bodies[-1]")
        assert all(
            not p
            for p in (
                m["content"]["data"].get("state", {}).get("prefill")
                for m in short.messages
                if m["msg_type"] == "comm_msg"
            )
        )
    finally:
        execute(kernel, "_lm.client.chat_stream = _plain\n%chat --new\n%lms unload --all").assert_no_error()
