"""Remote MCP tools on /v1/responses against a real MCP server (the SDK's MCPServer, streamable HTTP).

The tiny tool model is forced to call a given MCP tool with ``tool_choice``; ``max_tool_calls: 1``
then leaves the next round without tools, so it answers and the loop ends.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from lm_jupyter.client.discovery import free_port
from lm_jupyter.server.responses_runner import MAX_ROUNDS
from tests.e2e.isolated_server import IsolatedServer, isolated_server
from tests.e2e.test_responses import ASCII_ONLY, check_events

MODEL = "test/tiny-tools"
TIMEOUT = 3  # the server's mcp_timeout
SERVER_SCRIPT = Path(__file__).with_name("mcp_test_server.py")
ANSWER = {"grammar": 'root ::= "Done."'}  # a forced tool call wins over it; rounds without tools answer this


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    port = free_port("127.0.0.1", 0)
    process = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the MCP test server did not start") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def own(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedServer]:
    config = ["--LmJupyterApp.enable_remote_mcp=True", f"--LmJupyterApp.mcp_timeout={TIMEOUT}"]
    with isolated_server(tmp_path_factory.mktemp("mcp"), models_dir, config) as server:
        yield server


@pytest.fixture(scope="module")
def client(own: IsolatedServer) -> OpenAI:
    return OpenAI(base_url=own.info.v1, api_key=own.info.token, max_retries=0, timeout=120)


def mcp_tool(url: str, **options: object) -> dict:
    return {"type": "mcp", "server_label": "calc", "server_url": url, **options}


def call(client: OpenAI, url: str, tool: str | None, *, approval: str = "never", **kwargs):
    kwargs.setdefault("input", "Use the tool.")
    kwargs.setdefault("extra_body", {"logit_bias": ASCII_ONLY, **ANSWER})
    kwargs.setdefault("tools", [mcp_tool(url, require_approval=approval)])
    if tool is not None:
        kwargs.setdefault("tool_choice", {"type": "mcp", "server_label": "calc", "name": tool})
    return client.responses.create(model=MODEL, max_output_tokens=200, **{"max_tool_calls": 1, **kwargs})


def test_tools_are_listed_called_and_fed_back(client: OpenAI, mcp_url: str) -> None:
    response = call(client, mcp_url, "add", tools=[mcp_tool(mcp_url, require_approval="never")])
    listing, mcp_call, message = response.output
    assert listing.type == "mcp_list_tools" and listing.server_label == "calc" and listing.error is None
    assert [tool.name for tool in listing.tools] == ["add", "explode", "hang", "whoami"]
    assert listing.tools[0].input_schema["required"] == ["a", "b"]
    assert mcp_call.type == "mcp_call" and mcp_call.name == "add" and mcp_call.status == "completed"
    arguments = json.loads(mcp_call.arguments)
    assert mcp_call.output == str(arguments["a"] + arguments["b"]) and mcp_call.error is None
    assert message.type == "message" and response.output_text == "Done."  # the round after the call
    assert response.usage.input_tokens_details.cached_tokens > 0  # round two reused round one's prefix
    stored = client.responses.retrieve(response.id)
    assert [item.type for item in stored.output] == ["mcp_list_tools", "mcp_call", "message"]


def test_allowed_tools_filter_the_listing(client: OpenAI, mcp_url: str) -> None:
    tool = mcp_tool(mcp_url, allowed_tools=["add"], require_approval="never")
    response = call(client, mcp_url, "add", tools=[tool])
    assert [t.name for t in response.output[0].tools] == ["add"]


def test_headers_reach_the_mcp_server_and_are_not_echoed(client: OpenAI, mcp_url: str) -> None:
    tool = mcp_tool(mcp_url, require_approval="never", headers={"X-Test-Token": "secret-1"})
    response = call(client, mcp_url, "whoami", tools=[tool])
    assert response.output[1].type == "mcp_call" and response.output[1].output == "secret-1"
    for echoed in (response, client.responses.retrieve(response.id)):
        [shown] = echoed.tools
        assert shown.server_label == "calc" and "secret-1" not in shown.model_dump_json()


def test_streamed_mcp_events(client: OpenAI, mcp_url: str) -> None:
    stream = client.responses.create(
        model=MODEL,
        input="Add.",
        tools=[mcp_tool(mcp_url, require_approval="never")],
        tool_choice={"type": "mcp", "server_label": "calc", "name": "add"},
        max_tool_calls=1,
        max_output_tokens=200,
        stream=True,
        extra_body={"logit_bias": ASCII_ONLY, **ANSWER},
    )
    events = list(stream)
    final = events[-1].response
    check_events(events, final)
    types = [e.type for e in events]
    order = [
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
    ]
    assert [types.index(kind) for kind in order] == sorted(types.index(kind) for kind in order)
    assert [item.type for item in final.output][:2] == ["mcp_list_tools", "mcp_call"]


def test_approval_request_then_approved_call(client: OpenAI, mcp_url: str) -> None:
    first = call(client, mcp_url, "add", approval="always")
    _listing, request = first.output
    assert request.type == "mcp_approval_request" and request.name == "add" and request.server_label == "calc"
    assert first.status == "completed"
    arguments = json.loads(request.arguments)

    second = call(
        client,
        mcp_url,
        None,
        approval="always",
        previous_response_id=first.id,
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}],
    )
    kinds = [item.type for item in second.output]
    assert kinds == ["mcp_list_tools", "mcp_call", "message"]
    executed = second.output[1]
    assert executed.approval_request_id == request.id and executed.arguments == request.arguments
    assert executed.output == str(arguments["a"] + arguments["b"])


def test_declined_approval_runs_nothing(client: OpenAI, mcp_url: str) -> None:
    first = call(client, mcp_url, "add", approval="always")
    request = first.output[1]
    second = call(
        client,
        mcp_url,
        None,
        approval="always",
        tool_choice="none",
        previous_response_id=first.id,
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": False}],
    )
    assert [item.type for item in second.output] == ["mcp_list_tools", "message"]
    assert second.output_text == "Done."


def test_unknown_approval_request_is_a_400(own: IsolatedServer, mcp_url: str) -> None:
    reply = httpx.post(
        f"{own.info.url}v1/responses",
        headers={"Authorization": f"Bearer {own.info.token}"},
        json={
            "model": MODEL,
            "tools": [mcp_tool(mcp_url)],
            "input": [{"type": "mcp_approval_response", "approval_request_id": "mcpr_x", "approve": True}],
        },
        timeout=60,
    )
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == "input.0.approval_request_id" and error["code"] == "approval_request_not_found"


def test_tool_rounds_are_bounded(client: OpenAI, mcp_url: str) -> None:
    """A model that keeps calling (here: forced to) gets a last round without tools and answers."""
    response = call(client, mcp_url, "add", max_tool_calls=None)
    kinds = [item.type for item in response.output]
    assert kinds == ["mcp_list_tools", *["mcp_call"] * (MAX_ROUNDS - 1), "message"]
    assert response.output_text == "Done."


def test_a_failing_tool_is_an_error_item(client: OpenAI, mcp_url: str) -> None:
    response = call(client, mcp_url, "explode")
    failed = response.output[1]
    assert failed.type == "mcp_call" and failed.status == "failed" and failed.output is None
    assert failed.error is not None and failed.error.type == "mcp_tool_execution_error"
    assert response.status == "completed" and response.output_text == "Done."


def test_a_hanging_tool_times_out(client: OpenAI, mcp_url: str) -> None:
    started = time.monotonic()
    response = call(client, mcp_url, "hang")
    assert time.monotonic() - started < 10 * TIMEOUT
    hung = response.output[1]
    assert hung.type == "mcp_call" and hung.status == "failed"
    assert hung.error.type == "mcp_protocol_error" and "time" in hung.error.message
    assert response.output_text == "Done."


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/mcp"
    listener.close()


def test_unreachable_and_silent_servers_give_listing_errors(client: OpenAI, silent_url: str) -> None:
    closed = f"http://127.0.0.1:{free_port('127.0.0.1', 0)}/mcp"
    for url in (closed, silent_url):
        started = time.monotonic()
        response = client.responses.create(
            model=MODEL, input="hi", tools=[mcp_tool(url)], max_output_tokens=10, extra_body=ANSWER
        )
        assert time.monotonic() - started < 10 * TIMEOUT
        listing = response.output[0]
        assert listing.type == "mcp_list_tools" and listing.tools == []
        assert listing.error and "calc" in listing.error
        assert response.output_text == "Done."  # the model still answered, without the tools
