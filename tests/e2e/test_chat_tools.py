"""``%%chat`` tool loops, structured output and the reasoning view in a real kernel.

Tiny random models are made deterministic where it matters: ``--tool-choice`` makes the server
force a call by grammar (its arguments then follow the function's schema), and for reasoning
the test wraps the kernel's client to add a ``grammar`` that spells out a ``<think>`` block.
The slow test lets Qwen2.5-Coder-1.5B call a real Python function of its own accord.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from lm_jupyter.client.discovery import ServerInfo

from .kernel_harness import (
    Kernel,
    chat_view,
    execute,
    execute_reply,
    send_custom,
    start_kernel,
    stop_kernel,
    value,
)

pytestmark = pytest.mark.timeout(180)
QWEN_TIMEOUT = 500  # a 1.5B model on a shared CPU: two requests of a few hundred prompt tokens

TOOLS = "test/tiny-tools"
THINK = "test/tiny-think"
CHAT = "test/tiny-chat"
QWEN = "qwen/qwen2.5-coder-1.5b-instruct"

FUNCTIONS = '''
from typing import Literal
calls = []

def paint(color: Literal["red", "blue"]) -> str:
    """Paint the wall.

    Args:
        color: The paint's color.
    """
    calls.append(color)
    return f"painted {color}"

TOOLS = [paint]
'''


@pytest.fixture(scope="module")
def kernel(server: ServerInfo) -> Iterator[Kernel]:
    env = {**os.environ, "LM_JUPYTER_URL": server.url, "LM_JUPYTER_TOKEN": server.token}
    kernel = start_kernel(env)
    try:
        execute(kernel, "%load_ext lm_jupyter").assert_no_error()
        execute(kernel, "_lm = get_ipython().magics_manager.registry['LmMagics']").assert_no_error()
        execute(kernel, FUNCTIONS).assert_no_error()
        yield kernel
    finally:
        stop_kernel(kernel)


def test_tool_loop_runs_python_functions(kernel: Kernel) -> None:
    run = execute(
        kernel,
        f"%%chat {TOOLS} --new --tools TOOLS --tool-choice required --auto-run --max-tokens 100\nPaint it.",
        timeout=150,  # a forced call, then a free answer: slow only on a loaded machine
    )
    run.assert_no_error()
    assert not run.stderr
    calls = value(kernel, "calls")
    assert len(calls) == 1 and calls[0] in ("red", "blue")
    view = chat_view(run)
    assert view.state["status"] == "done"
    tools = [b for b in view.state["blocks"] if b["type"] == "tool"]
    expected = ("paint", "done", f"painted {calls[0]}")
    assert [(t["name"], t["status"], t["result"]) for t in tools] == [expected]
    assert "2 requests" in view.state["footer"]
    assert "**Tool call** `paint(" in view.markdown and f"painted {calls[0]}" in view.markdown

    messages = value(kernel, "_lm.session.messages")
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    call = messages[1]["tool_calls"][0]
    assert call["function"]["name"] == "paint"
    assert messages[2] == {"role": "tool", "tool_call_id": call["id"], "content": f"painted {calls[0]}"}
    execute(kernel, "calls.clear()").assert_no_error()


def test_tool_calls_wait_for_the_users_approval(kernel: Kernel) -> None:
    comm: dict[str, str] = {}
    decided: list[str] = []

    def answer(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "comm_open":
            comm["id"] = msg["content"]["comm_id"]
        state = msg["content"].get("data", {}).get("state", {}) if msg["msg_type"] == "comm_msg" else {}
        if state.get("status") == "approval" and not decided:
            (pending,) = [b for b in state["blocks"] if b["type"] == "tool" and b["status"] == "pending"]
            decided.append(pending["id"])
            send_custom(kernel, comm["id"], {"type": "decide", "id": pending["id"], "allow": False})

    run = execute(
        kernel,
        f"%%chat {TOOLS} --new --tools TOOLS --tool-choice paint --max-tokens 100\nPaint it.",
        timeout=150,  # a forced call, then a free answer: slow only on a loaded machine
        on_message=answer,
    )
    run.assert_no_error()
    assert decided, "the cell never asked for approval"
    assert value(kernel, "calls") == []  # denied: never ran
    view = chat_view(run)
    (tool,) = [b for b in view.state["blocks"] if b["type"] == "tool"]
    assert tool["status"] == "denied" and tool["id"] == decided[0]
    messages = value(kernel, "_lm.session.messages")
    assert messages[2]["content"] == "The user did not allow this tool call."
    assert view.state["status"] == "done"


def test_insert_as_cell_becomes_the_cells_next_input(kernel: Kernel) -> None:
    """A code block's "Insert as cell" sends ``{"type": "insert", "code"}`` while the cell runs
    (here: while it waits for a tool approval); the kernel answers the cell with IPython's
    ``set_next_input`` payload, which JupyterLab and Notebook 7 turn into a new cell below."""
    comm: dict[str, str] = {}
    sent: list[bool] = []

    def insert_then_skip(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "comm_open":
            comm["id"] = msg["content"]["comm_id"]
        state = msg["content"].get("data", {}).get("state", {}) if msg["msg_type"] == "comm_msg" else {}
        if state.get("status") == "approval" and not sent:
            sent.append(True)
            send_custom(kernel, comm["id"], {"type": "insert", "code": "print('from the chat')\n"})
            (pending,) = [b for b in state["blocks"] if b["type"] == "tool" and b["status"] == "pending"]
            send_custom(kernel, comm["id"], {"type": "decide", "id": pending["id"], "allow": False})

    cell = f"%%chat {TOOLS} --new --tools TOOLS --tool-choice paint --max-tokens 100\nPaint it."
    run = execute(kernel, cell, timeout=150, on_message=insert_then_skip)
    run.assert_no_error()
    assert sent, "the cell never asked for approval"
    payload = execute_reply(kernel, run)["payload"]
    assert [(p["source"], p["text"], p["replace"]) for p in payload] == [
        ("set_next_input", "print('from the chat')", False)
    ]


def test_structured_output(kernel: Kernel) -> None:
    execute(
        kernel,
        "from typing import Literal\nfrom pydantic import BaseModel\n"
        "class Verdict(BaseModel):\n    answer: Literal['yes', 'no']\n"
        "SCHEMA = {'type': 'object', 'properties': {'answer': {'enum': ['yes', 'no']}}, "
        "'required': ['answer'], 'additionalProperties': False}",
    ).assert_no_error()
    run = execute(kernel, f"%%chat {CHAT} --new --json-schema SCHEMA --max-tokens 60\nYes or no?", timeout=60)
    run.assert_no_error()
    assert not run.stderr, run.stderr
    assert value(kernel, "_chat_result")["answer"] in ("yes", "no")

    cell = f"%%chat {CHAT} --new --json-schema Verdict --out verdict --max-tokens 60\nYes or no?"
    run = execute(kernel, cell, timeout=60)
    run.assert_no_error()
    assert not run.stderr, run.stderr
    assert value(kernel, "type(verdict).__name__") == "Verdict"
    assert value(kernel, "verdict.answer") in ("yes", "no")
    sent = value(kernel, "_lm.session.messages[-1]['content']")
    assert sent.replace(" ", "").startswith('{"answer":')


@pytest.mark.parametrize("mode", ["collapse", "show", "hide"])
def test_reasoning_view(kernel: Kernel, mode: str) -> None:
    execute(
        kernel,
        "_orig_stream = _lm.client.chat_stream\n"
        "_lm.client.chat_stream = lambda body: _orig_stream("
        "{**body, 'grammar': 'root ::= \"<think>Weigh both sides.</think>Warm.\"', 'max_tokens': 60})",
    ).assert_no_error()
    try:
        run = execute(kernel, f"%%chat {THINK} --new --reasoning {mode}\nWarm or cold?", timeout=60)
    finally:
        execute(kernel, "_lm.client.chat_stream = _orig_stream").assert_no_error()
    run.assert_no_error()
    view = chat_view(run)
    assert view.state["reasoning_mode"] == mode
    assert [(b["type"], b["text"]) for b in view.state["blocks"]] == [
        ("reasoning", "Weigh both sides."),
        ("text", "Warm."),
    ]
    assert value(kernel, "_chat_result") == "Warm."
    if mode == "hide":
        assert "Weigh" not in view.markdown
    elif mode == "collapse":
        assert "<details><summary>Reasoning</summary>\n\nWeigh both sides.\n\n</details>" in view.markdown
    else:
        opened = "<details open><summary>Reasoning</summary>\n\nWeigh both sides.\n\n</details>"
        assert opened in view.markdown  # open, and still foldable


@pytest.mark.slow
@pytest.mark.timeout(QWEN_TIMEOUT)
def test_qwen_calls_a_python_function(kernel: Kernel) -> None:
    execute(
        kernel,
        "added = []\n"
        "def add(a: int, b: int) -> int:\n"
        '    """Add two integers exactly."""\n'
        "    added.append((a, b))\n"
        "    return a + b\n",
    ).assert_no_error()
    run = execute(
        kernel,
        f"%%chat {QWEN} --new --tools add --auto-run --temperature 0 --max-tokens 120\n"
        "What is 48213 + 91877? Use the add tool, then state the result.",
        timeout=QWEN_TIMEOUT - 20,
    )
    run.assert_no_error()
    assert value(kernel, "added") == [[48213, 91877]]
    view = chat_view(run)
    (tool,) = [b for b in view.state["blocks"] if b["type"] == "tool"]
    assert tool["result"] == "140090"
    assert "140090" in value(kernel, "_chat_result").replace(",", "")
    execute(kernel, f"%lms unload {QWEN}")
