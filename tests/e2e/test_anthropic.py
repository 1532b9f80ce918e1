"""Anthropic's Messages API (``/v1/messages``) with the official ``anthropic`` SDK and raw HTTP.

Tiny models are made to say exact strings with a grammar (llama-server's ``grammar`` field,
sent through the SDK's ``extra_body``), so blocks, stop reasons and events are checked exactly.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator

import anthropic
import httpx
import pytest
from anthropic import Anthropic

from lm_jupyter.client.discovery import ServerInfo
from tests.e2e.test_lifecycle import NO_EOS, assert_goes_idle, load_long, unload_all, worker_pids
from tests.e2e.test_tools import ASCII_ONLY

CHAT = "test/tiny-chat"
TOOLS_MODEL = "test/tiny-tools"
THINK = "test/tiny-think"
LONG = "test/tiny-long"
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 8}},
        "required": ["city"],
    },
}
TIME = {
    "name": "get_time",
    "description": "The time in a time zone",
    "input_schema": {"type": "object", "properties": {"tz": {"enum": ["UTC", "CET"]}}, "required": ["tz"]},
}


SAFE = {"seed": 1, "logit_bias": ASCII_ONLY}  # random weights: seeded, and ASCII only


def forced(text: str) -> dict:
    """Make the random-weight model write exactly ``text``."""
    return {"grammar": f"root ::= {json.dumps(text)}"}


@pytest.fixture(scope="module")
def client(server: ServerInfo) -> Iterator[Anthropic]:
    """The SDK sends the Jupyter token as ``x-api-key``."""
    with Anthropic(base_url=server.url, api_key=server.token, max_retries=0, timeout=120) as sdk:
        yield sdk


def blocks(message: anthropic.types.Message) -> list[dict]:
    """Content blocks as data (the stream helper's blocks carry an extra ``parsed_output``)."""
    return [block.model_dump(exclude={"parsed_output"}) for block in message.content]


def sse_events(response: httpx.Response) -> list[tuple[str, dict]]:
    """(event name, payload) pairs of an SSE body; every event must carry both lines."""
    events = []
    name = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            payload = json.loads(line[6:])
            assert name == payload["type"], (name, payload)
            events.append((name, payload))
            name = None
    return events


def test_create_returns_an_anthropic_message(client: Anthropic) -> None:
    message = client.messages.create(
        model=CHAT,
        max_tokens=20,
        system="You are terse.",
        messages=[{"role": "user", "content": "Hi"}],
        extra_body=forced("Hello world."),
    )
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert message.model == CHAT
    assert [(block.type, block.text) for block in message.content] == [("text", "Hello world.")]  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.output_tokens >= 1 and message.usage.input_tokens > 0


def test_max_tokens_and_stop_sequences(client: Anthropic) -> None:
    capped = client.messages.create(model=CHAT, max_tokens=3, messages=ASK, extra_body={"logit_bias": NO_EOS})
    assert capped.stop_reason == "max_tokens" and capped.usage.output_tokens == 3
    stopped = client.messages.create(
        model=CHAT,
        max_tokens=40,
        messages=ASK,
        stop_sequences=["STOP", "END"],
        extra_body=forced("Sunny END and more"),
    )
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "END"
    assert stopped.content[0].text == "Sunny "  # type: ignore[union-attr]


def test_sampling_fields_are_accepted(client: Anthropic) -> None:
    """Sampling fields are gone from the 2026 SDK's signature; older clients still send them."""
    message = client.messages.create(
        model=CHAT,
        max_tokens=4,
        messages=ASK,
        metadata={"user_id": "u1"},
        extra_body={"temperature": 0.3, "top_p": 0.9, "top_k": 20},
    )
    assert message.usage.output_tokens <= 4


def test_multi_turn_and_content_blocks(client: Anthropic) -> None:
    message = client.messages.create(
        model=CHAT,
        max_tokens=10,
        system=[{"type": "text", "text": "Be brief."}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Hello."}]},
            {"role": "user", "content": "And now?"},
        ],
        extra_body=forced("Now."),
    )
    assert message.content[0].text == "Now."  # type: ignore[union-attr]


def test_stream_events_and_final_message_match_create(client: Anthropic) -> None:
    text = "Streaming works, token by token."
    greedy = {**forced(text), "temperature": 0}  # the grammar allows several tokenizations of the text
    with client.messages.stream(model=CHAT, max_tokens=60, messages=ASK, extra_body=greedy) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == text and len(pieces) > 1
    whole = client.messages.create(model=CHAT, max_tokens=60, messages=ASK, extra_body=greedy)
    assert blocks(final) == blocks(whole) and final.stop_reason == whole.stop_reason == "end_turn"
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.usage.input_tokens + (final.usage.cache_read_input_tokens or 0) == (
        whole.usage.input_tokens + (whole.usage.cache_read_input_tokens or 0)
    )


def test_raw_event_sequence(http: httpx.Client) -> None:
    body = {"model": CHAT, "max_tokens": 30, "messages": ASK, "stream": True, **forced("Hi there.")}
    with http.stream("POST", "v1/messages", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["input_tokens"] > 0
    assert "".join(p["delta"]["text"] for n, p in events if n == "content_block_delta") == "Hi there."
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] >= 1


# -- tools ------------------------------------------------------------------------------------


def test_forced_tool_loop(client: Anthropic) -> None:
    """tool_choice forces a call (by grammar, from the schema); the result goes back as a
    tool_result block and the model answers in text."""
    messages: list[dict] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.messages.create(
        model=TOOLS_MODEL,
        max_tokens=120,
        messages=messages,
        tools=[WEATHER, TIME],
        tool_choice={"type": "tool", "name": "get_weather"},
        extra_body=SAFE,
    )
    assert first.stop_reason == "tool_use"
    (call,) = [block for block in first.content if block.type == "tool_use"]
    assert call.name == "get_weather" and call.id.startswith("toolu_")
    assert set(call.input) == {"city"} and isinstance(call.input["city"], str)  # type: ignore[arg-type]
    assert len(call.input["city"]) <= 8  # type: ignore[index]

    messages += [
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C, sunny"}],
        },
    ]
    second = client.messages.create(
        model=TOOLS_MODEL,
        max_tokens=40,
        messages=messages,
        tools=[WEATHER, TIME],
        tool_choice={"type": "none"},
        extra_body=forced("It is sunny."),
    )
    assert second.stop_reason == "end_turn"
    assert [(b.type, b.text) for b in second.content] == [("text", "It is sunny.")]  # type: ignore[union-attr]


def test_any_tool_without_parallel_calls(client: Anthropic) -> None:
    message = client.messages.create(
        model=TOOLS_MODEL,
        max_tokens=300,
        messages=ASK,
        tools=[WEATHER, TIME],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        extra_body=SAFE,
    )
    (call,) = [block for block in message.content if block.type == "tool_use"]
    assert message.stop_reason == "tool_use" and call.name in ("get_weather", "get_time")


def test_streamed_tool_use_accumulates_input_json(client: Anthropic, http: httpx.Client) -> None:
    text = 'Checking.<tool_call>\n{"name": "get_time", "arguments": {"tz": "UTC"}}\n</tool_call>'
    with client.messages.stream(
        model=TOOLS_MODEL, max_tokens=200, messages=ASK, tools=[WEATHER, TIME], extra_body=forced(text)
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [block.type for block in final.content] == ["text", "tool_use"]
    assert final.content[0].text == "Checking." and final.content[1].input == {"tz": "UTC"}  # type: ignore[union-attr]
    body = {
        "model": TOOLS_MODEL,
        "max_tokens": 200,
        "messages": ASK,
        "tools": [WEATHER, TIME],
        "stream": True,
    }
    with http.stream("POST", "v1/messages", json={**body, **forced(text)}) as response:
        events = sse_events(response)
    starts = [p["content_block"] for n, p in events if n == "content_block_start"]
    assert starts[1] == {"type": "tool_use", "id": starts[1]["id"], "name": "get_time", "input": {}}
    partial = "".join(
        p["delta"]["partial_json"] for n, p in events if p.get("index") == 1 and n == "content_block_delta"
    )
    assert json.loads(partial) == {"tz": "UTC"}


# -- thinking -------------------------------------------------------------------------------


def test_thinking_blocks_from_a_reasoning_model(client: Anthropic) -> None:
    text = "<think>Weigh it.</think>Warm."
    message = client.messages.create(model=THINK, max_tokens=40, messages=ASK, extra_body=forced(text))
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "Weigh it." and message.content[1].text == "Warm."  # type: ignore[union-attr]
    assert message.usage.output_tokens_details is not None
    assert 0 < message.usage.output_tokens_details.thinking_tokens < message.usage.output_tokens

    with client.messages.stream(
        model=THINK,
        max_tokens=40,
        messages=ASK,
        thinking={"type": "enabled", "budget_tokens": 1024},
        extra_body=forced(text),
    ) as stream:
        kinds = [event.delta.type for event in stream if event.type == "content_block_delta"]
        final = stream.get_final_message()
    assert "thinking_delta" in kinds and "text_delta" in kinds
    assert blocks(final) == blocks(message)

    hidden = client.messages.create(
        model=THINK, max_tokens=40, messages=ASK, thinking={"type": "disabled"}, extra_body=forced(text)
    )
    assert [(b.type, b.text) for b in hidden.content] == [("text", "Warm.")]  # type: ignore[union-attr]
    # Earlier thinking sent back with its signature is accepted (and dropped, as templates do).
    again = client.messages.create(
        model=THINK,
        max_tokens=10,
        messages=[*ASK, {"role": "assistant", "content": [b.model_dump() for b in message.content]}, *ASK],
        extra_body=forced("Yes."),
    )
    assert again.content[0].text == "Yes."  # type: ignore[union-attr]


# -- token counting -------------------------------------------------------------------------


def test_count_tokens_equals_what_the_model_is_fed(client: Anthropic, http: httpx.Client) -> None:
    request = {
        "model": TOOLS_MODEL,
        "system": "You check the weather.",
        "messages": [{"role": "user", "content": "Weather in Lyon, please?"}],
        "tools": [WEATHER, TIME],
    }
    counted = client.messages.count_tokens(**request)  # type: ignore[arg-type]
    unload_all(http)  # a fresh instance: nothing comes from the prefix cache
    reply = client.messages.create(**request, max_tokens=1)  # type: ignore[arg-type]
    assert reply.usage.cache_read_input_tokens == 0
    assert counted.input_tokens == reply.usage.input_tokens
    without_tools = client.messages.count_tokens(model=TOOLS_MODEL, messages=request["messages"])  # type: ignore[arg-type]
    assert without_tools.input_tokens < counted.input_tokens  # the template lists the tools
    again = client.messages.create(**request, max_tokens=1)  # type: ignore[arg-type]
    assert again.usage.cache_read_input_tokens and again.usage.cache_read_input_tokens > 0
    assert again.usage.input_tokens + again.usage.cache_read_input_tokens == counted.input_tokens


def test_assistant_prefill_is_continued(client: Anthropic, http: httpx.Client) -> None:
    """A final assistant message is the start of the answer (Anthropic's prefill): the model is
    fed the conversation with the assistant turn opened, then exactly the prefill's tokens, and
    the reply is only what follows; OpenAI chat's ``continue_final_message`` is the same path."""
    prefill = "The weather in Paris is"
    messages = [*ASK, {"role": "assistant", "content": prefill}]
    plain = client.messages.count_tokens(model=CHAT, messages=ASK).input_tokens  # type: ignore[arg-type]
    counted = client.messages.count_tokens(model=CHAT, messages=messages).input_tokens  # type: ignore[arg-type]
    prefill_tokens = http.post("tokenize", json={"model": CHAT, "content": prefill, "parse_special": False})
    assert counted == plain + len(prefill_tokens.json()["tokens"])
    reply = client.messages.create(
        model=CHAT,
        messages=messages,
        max_tokens=6,
        extra_body={"temperature": 0, **SAFE},  # type: ignore[arg-type]
    )
    assert reply.usage.input_tokens + (reply.usage.cache_read_input_tokens or 0) == counted
    chat = http.post(
        "v1/chat/completions",
        json={"model": CHAT, "messages": messages, "continue_final_message": True, "temperature": 0,
              "max_tokens": 6, **SAFE},
    ).json()  # fmt: skip
    text = chat["choices"][0]["message"]["content"]
    assert text and [block.text for block in reply.content if block.type == "text"] == [text]
    assert chat["usage"]["prompt_tokens"] == counted and not text.startswith(prefill)

    trailing = http.post(
        "v1/messages",
        json={"model": CHAT, "max_tokens": 3, "messages": [*ASK, {"role": "assistant", "content": "It is "}]},
    )
    assert trailing.status_code == 400 and "trailing whitespace" in trailing.json()["error"]["message"]
    for bad in ([*ASK], [{"role": "assistant", "content": "alone"}]):
        wrong = http.post(
            "v1/chat/completions",
            json={"model": CHAT, "messages": bad, "continue_final_message": True, "max_tokens": 3},
        )
        assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "continue_final_message"


# -- auth and errors ------------------------------------------------------------------------


def test_bearer_and_missing_credentials(server: ServerInfo) -> None:
    with Anthropic(base_url=server.url, auth_token=server.token, max_retries=0) as bearer:
        assert bearer.messages.create(model=CHAT, max_tokens=2, messages=ASK).usage.output_tokens <= 2
    with (
        Anthropic(base_url=server.url, api_key="wrong", max_retries=0) as wrong,
        pytest.raises(anthropic.AuthenticationError) as caught,
    ):
        wrong.messages.create(model=CHAT, max_tokens=2, messages=ASK)
    body = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"  # type: ignore[index]
    assert "x-api-key" in body["error"]["message"] and server.token not in str(body)  # type: ignore[index]
    response = httpx.post(f"{server.url}v1/messages/count_tokens", json={"model": CHAT, "messages": ASK})
    assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"


def test_unknown_model_is_not_found(client: Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="nobody/nothing", max_tokens=2, messages=ASK)
    error = caught.value.body["error"]  # type: ignore[index]
    assert error["type"] == "not_found_error" and "nobody/nothing" in error["message"]
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="nobody/nothing", messages=ASK)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": CHAT, "messages": ASK}, "max_tokens"),
        ({"model": CHAT, "max_tokens": 5}, "messages"),
        ({"model": CHAT, "max_tokens": 5, "messages": ASK, "temperature": 3}, "temperature"),
        (
            {"model": CHAT, "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image"}]}]},
            "messages.0.content.0.type",
        ),
        ({"model": CHAT, "max_tokens": 5, "messages": ASK, "tool_choice": {"type": "any"}}, "tool_choice"),
        (
            {"model": CHAT, "max_tokens": 5, "messages": ASK, "stop_sequences": ["a", "b", "c", "d", "e"]},
            "stop_sequences",
        ),
        ({"model": CHAT, "max_tokens": 5, "messages": ASK, "grammar": "root ::= nothing"}, "grammar"),
    ],
)
def test_bad_fields_are_named_in_anthropics_shape(http: httpx.Client, body: dict, field: str) -> None:
    response = http.post("v1/messages", json=body)
    assert response.status_code == 400, response.text
    payload = response.json()
    assert payload["type"] == "error" and payload["error"]["type"] == "invalid_request_error"
    assert field in payload["error"]["message"], payload
    assert set(payload["error"]) == {"type", "message"}


def test_bad_json_and_sdk_error_type(client: Anthropic, http: httpx.Client) -> None:
    response = http.post("v1/messages", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model=CHAT, max_tokens=5, messages=[{"role": "user", "content": []}])
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_disconnect_stops_the_generation(http: httpx.Client) -> None:
    load_long(http)
    body = {"model": LONG, "max_tokens": 30000, "messages": ASK, "stream": True, "logit_bias": NO_EOS}
    with http.stream("POST", "v1/messages", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("event: content_block_delta"):
                break
    assert_goes_idle(http)
    unload_all(http)


def test_worker_crash_mid_stream_is_an_error_event(http: httpx.Client, server: ServerInfo) -> None:
    load_long(http)
    (pid,) = worker_pids(server)
    events: list[tuple[str, dict]] = []
    generating = threading.Event()

    def read() -> None:
        body = {"model": LONG, "max_tokens": 30000, "messages": ASK, "stream": True, "logit_bias": NO_EOS}
        with http.stream("POST", "v1/messages", json=body) as response:
            name = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name or "", json.loads(line[6:])))
                    if name == "content_block_delta":
                        generating.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert generating.wait(30)
    os.kill(pid, signal.SIGKILL)
    reader.join(30)
    name, payload = events[-1]
    assert name == "error" and payload["type"] == "error"
    assert payload["error"]["type"] == "api_error" and "signal 9" in payload["error"]["message"]
    assert "message_stop" not in [n for n, _ in events]
    unload_all(http)
