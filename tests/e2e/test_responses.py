"""/v1/responses through the official openai client: objects, events, state, tools, reasoning.

The tiny random models are steered with a GBNF ``grammar`` (llama-server's extension, passed
through to generation) or a forced ``tool_choice``, so every assertion is deterministic.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import httpx
import jsonschema
import openai
import pytest
from openai import OpenAI

from lm_jupyter.client.discovery import ServerInfo
from tests.e2e.test_lifecycle import (
    LONG,
    NO_EOS,
    assert_goes_idle,
    instances,
    load_long,
    unload_all,
    worker_pids,
)

CHAT = "test/tiny-chat"
TOOLS_MODEL = "test/tiny-tools"
THINK = "test/tiny-think"
ASCII_ONLY = {str(5 + byte): -100 for byte in range(0x80, 0x100)}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 8}},
        "required": ["city"],
    },
}


def forced(text: str) -> dict:
    """Extra body fields that make a tiny model write exactly ``text`` and stop."""
    return {"grammar": f"root ::= {json.dumps(text, ensure_ascii=False)}"}


def create(client: OpenAI, text: str = "Hello there.", **kwargs):
    kwargs.setdefault("model", CHAT)
    kwargs.setdefault("input", "Say hello.")
    return client.responses.create(max_output_tokens=200, extra_body=forced(text), **kwargs)


def test_string_input_gives_a_completed_response(openai_client: OpenAI) -> None:
    response = create(openai_client, metadata={"run": "1"})
    assert re.fullmatch(r"resp_[0-9a-f]{48}", response.id)
    assert response.object == "response" and response.status == "completed"
    assert response.model == CHAT and response.metadata == {"run": "1"}
    assert response.output_text == "Hello there."
    [message] = response.output
    assert message.type == "message" and message.role == "assistant" and message.status == "completed"
    assert message.id.startswith("msg_")
    [part] = message.content
    assert part.type == "output_text" and part.text == "Hello there." and part.annotations == []
    usage = response.usage
    assert usage is not None and usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.output_tokens_details.reasoning_tokens == 0


def test_list_input_and_instructions(openai_client: OpenAI) -> None:
    items = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]},
        {"role": "user", "content": "Hi"},  # EasyInputMessage: no type
    ]
    response = create(openai_client, input=items, instructions="You are terse.")
    assert response.instructions == "You are terse." and response.output_text == "Hello there."
    listed = openai_client.responses.input_items.list(response.id, order="asc")
    assert [(item.type, item.role) for item in listed.data] == [("message", "developer"), ("message", "user")]
    assert listed.data[1].content[0].text == "Hi" and all(item.id for item in listed.data)


def test_max_output_tokens_makes_an_incomplete_response(openai_client: OpenAI) -> None:
    response = openai_client.responses.create(
        model=CHAT,
        input="Go on.",
        max_output_tokens=5,
        extra_body={"logit_bias": NO_EOS},  # random weights may end within 5 tokens otherwise
    )
    assert response.status == "incomplete"
    assert (
        response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    )
    assert response.usage is not None and response.usage.output_tokens == 5
    assert response.output[0].status == "incomplete"


def check_events(events: list, final) -> None:
    """Numbered from 0 without gaps, lifecycle first and last, every item added then done, and
    the deltas of every item concatenate to its final text."""
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert [event.type for event in events[:2]] == ["response.created", "response.in_progress"]
    assert events[-1].type in ("response.completed", "response.incomplete")
    assert events[0].response.id == final.id and events[0].response.status == "in_progress"
    assert events[0].response.output == []
    added = [e.output_index for e in events if e.type == "response.output_item.added"]
    done = [e.output_index for e in events if e.type == "response.output_item.done"]
    assert added == list(range(len(final.output))) and sorted(done) == added
    for index, item in enumerate(final.output):
        deltas = "".join(
            e.delta for e in events if getattr(e, "output_index", None) == index and hasattr(e, "delta")
        )
        if item.type in ("message", "reasoning"):
            assert deltas == item.content[0].text
        elif item.type == "function_call":
            assert deltas == item.arguments


def test_stream_true_event_sequence(openai_client: OpenAI) -> None:
    stream = openai_client.responses.create(
        model=CHAT, input="Say hello.", stream=True, max_output_tokens=200, extra_body=forced("Hi, you!")
    )
    events = list(stream)
    final = events[-1].response
    assert final.status == "completed" and final.output_text == "Hi, you!"
    check_events(events, final)
    types = [e.type for e in events]
    assert types[2:5] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert set(types[5:-4]) == {"response.output_text.delta"}
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    # the streamed response was stored, equal to its final event
    assert openai_client.responses.retrieve(final.id).output_text == "Hi, you!"


def test_stream_helper_accumulates_the_same_response(openai_client: OpenAI) -> None:
    with openai_client.responses.stream(
        model=CHAT, input="Say hello.", max_output_tokens=200, extra_body=forced("Streamed words.")
    ) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Streamed words."
    assert len(deltas) > 1


def test_raw_sse_frames_name_their_event(http: httpx.Client) -> None:
    body = {"model": CHAT, "input": "x", "stream": True, "max_output_tokens": 50, **forced("Ok.")}
    with http.stream("POST", "/v1/responses", json=body) as reply:
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
        frames = reply.read().decode().strip().split("\n\n")
    for frame in frames:
        event_line, data_line = frame.split("\n")
        assert event_line == f"event: {json.loads(data_line.removeprefix('data: '))['type']}"


def test_retrieve_delete_and_input_items(openai_client: OpenAI, http: httpx.Client) -> None:
    response = create(openai_client, input=[{"role": "user", "content": f"message {i}"} for i in range(3)])
    again = openai_client.responses.retrieve(response.id)
    assert again.model_dump() == response.model_dump()
    newest_first = openai_client.responses.input_items.list(response.id)
    assert [item.content[0].text for item in newest_first.data] == ["message 2", "message 1", "message 0"]
    page = openai_client.responses.input_items.list(response.id, order="asc", limit=2)
    assert [item.content[0].text for item in page.data] == ["message 0", "message 1"] and page.has_more
    rest = openai_client.responses.input_items.list(response.id, order="asc", after=page.last_id)
    assert [item.content[0].text for item in rest.data] == ["message 2"] and not rest.has_more

    deleted = http.delete(f"/v1/responses/{response.id}").json()
    assert deleted == {"id": response.id, "object": "response.deleted", "deleted": True}
    for call in (
        lambda: openai_client.responses.retrieve(response.id),
        lambda: openai_client.responses.delete(response.id),
        lambda: openai_client.responses.input_items.list(response.id),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.body["code"] == "not_found" and response.id in caught.value.body["message"]


def test_two_turns_and_branching(openai_client: OpenAI) -> None:
    first = create(openai_client, "First answer.", input="First question?")
    second = create(openai_client, "Second answer.", input="Second question?", previous_response_id=first.id)
    assert second.previous_response_id == first.id and second.output_text == "Second answer."
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    # the first turn's prompt and answer are still in the instance's KV cache
    assert second.usage.input_tokens_details.cached_tokens >= first.usage.input_tokens
    # continue from the middle again: a branch sees the first turn but not the second
    branch = create(openai_client, "Branch.", input="Second question?", previous_response_id=first.id)
    assert branch.usage.input_tokens == second.usage.input_tokens
    third = create(openai_client, "Third.", input="Third?", previous_response_id=second.id)
    assert third.usage.input_tokens > second.usage.input_tokens + second.usage.output_tokens
    # input_items lists only a response's own input, not the history it continues
    assert [i.content[0].text for i in openai_client.responses.input_items.list(third.id).data] == ["Third?"]


def test_store_false_is_not_kept(openai_client: OpenAI) -> None:
    response = create(openai_client, store=False)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError) as caught:
        create(openai_client, previous_response_id=response.id)
    body = caught.value.body
    assert body["param"] == "previous_response_id" and body["code"] == "previous_response_not_found"


def test_function_tool_round_trip(openai_client: OpenAI) -> None:
    first = openai_client.responses.create(
        model=TOOLS_MODEL,
        input="What is the weather in Paris?",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=200,
        extra_body={"logit_bias": ASCII_ONLY},
    )
    [call] = first.output
    assert call.type == "function_call" and call.name == "get_weather" and call.status == "completed"
    assert call.call_id.startswith("call_") and call.id.startswith("fc_")
    assert set(json.loads(call.arguments)) == {"city"}
    assert first.status == "completed" and first.output_text == ""

    second = create(
        openai_client,
        "It is sunny.",
        model=TOOLS_MODEL,
        tools=[WEATHER],
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "sunny"}'}],
    )
    assert second.output_text == "It is sunny."
    # the call and its result are in the prompt the model continued from (cached from turn one)
    assert second.usage.input_tokens_details.cached_tokens > 0
    [listed] = openai_client.responses.input_items.list(second.id).data
    assert listed.type == "function_call_output" and listed.call_id == call.call_id


def test_streamed_function_call_events(openai_client: OpenAI) -> None:
    events = list(
        openai_client.responses.create(
            model=TOOLS_MODEL,
            input="Weather?",
            tools=[WEATHER],
            tool_choice="required",
            parallel_tool_calls=False,
            stream=True,
            max_output_tokens=200,
            extra_body={"logit_bias": ASCII_ONLY},
        )
    )
    final = events[-1].response
    check_events(events, final)
    [call] = final.output
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [e.arguments for e in done] == [call.arguments] and json.loads(call.arguments)


def test_stateless_history_with_function_call_items(openai_client: OpenAI) -> None:
    """Clients that keep the history themselves send calls and outputs back as input items."""
    history = [
        {"role": "user", "content": "Weather in Bern?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Bern"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "cold"},
    ]
    response = create(openai_client, "It is cold.", model=TOOLS_MODEL, tools=[WEATHER], input=history)
    assert response.output_text == "It is cold."


def test_reasoning_item_and_events(openai_client: OpenAI) -> None:
    response = create(
        openai_client, "<think>Weigh it.</think>Warm.", model=THINK, reasoning={"effort": "low"}
    )
    reasoning, message = response.output
    assert reasoning.type == "reasoning" and reasoning.id.startswith("rs_") and reasoning.summary == []
    assert [(c.type, c.text) for c in reasoning.content] == [("reasoning_text", "Weigh it.")]
    assert message.type == "message" and response.output_text == "Warm."
    assert response.reasoning.effort == "low"
    details = response.usage.output_tokens_details
    assert 0 < details.reasoning_tokens < response.usage.output_tokens

    events = list(
        openai_client.responses.create(
            model=THINK,
            input="x",
            stream=True,
            max_output_tokens=200,
            extra_body=forced("<think>Weigh it.</think>Warm."),
        )
    )
    final = events[-1].response
    check_events(events, final)
    types = [e.type for e in events]
    assert types.index("response.reasoning_text.done") < types.index("response.output_text.delta")
    [done] = [e for e in events if e.type == "response.reasoning_text.done"]
    assert done.text == "Weigh it." and done.output_index == 0


def test_reasoning_effort_reaches_the_template(http: httpx.Client, models_dir: Path) -> None:
    """gpt-oss style templates read ``reasoning_effort``: ``reasoning.effort`` must change the prompt."""
    from tests.tiny_gguf import CHATML_TEMPLATE, write_tiny_model

    path = models_dir / "test" / "tiny-effort-responses-GGUF" / "tiny-effort-responses-F32.gguf"
    if not path.exists():
        effort = (
            "{% if reasoning_effort %}<|im_start|>system\nReasoning: {{ reasoning_effort }}<|im_end|>\n"
            "{% endif %}"
        )
        write_tiny_model(path, chat_template=effort + CHATML_TEMPLATE)
    base = {"model": "test/tiny-effort-responses", "input": "hi", "max_output_tokens": 1}
    plain = http.post("v1/responses", json=base).json()
    high = http.post("v1/responses", json={**base, "reasoning": {"effort": "high"}}).json()
    assert high["usage"]["input_tokens"] > plain["usage"]["input_tokens"] + 3
    assert high["reasoning"]["effort"] == "high" and plain["reasoning"]["effort"] is None


def test_structured_output_with_text_format(openai_client: OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 10}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    response = openai_client.responses.create(
        model=CHAT,
        input="Describe a person.",
        text={"format": {"type": "json_schema", "name": "person", "schema": schema, "strict": True}},
        max_output_tokens=300,
        extra_body={"logit_bias": ASCII_ONLY, "seed": 1},
    )
    assert response.status == "completed"
    jsonschema.validate(json.loads(response.output_text), schema)
    assert response.text.format.type == "json_schema" and response.text.format.name == "person"


def test_responses_parse_with_a_pydantic_model(openai_client: OpenAI) -> None:
    """The official client's structured-output path: its strict schema, then its parser."""
    from pydantic import BaseModel, Field

    class Person(BaseModel):
        name: str = Field(max_length=10)
        age: int

    parsed = openai_client.responses.parse(
        model=CHAT,
        input="Describe a person.",
        text_format=Person,
        max_output_tokens=300,
        extra_body={"logit_bias": ASCII_ONLY, "seed": 2},
    )
    assert isinstance(parsed.output_parsed, Person) and len(parsed.output_parsed.name) <= 10


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"input": 5}, "input", "invalid_type"),
        ({"input": []}, "input", None),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input.0.call_id", None),
        ({"input": [{"type": "image_generation_call"}]}, "input.0.type", None),
        ({"input": [{"role": "robot", "content": "x"}]}, "input.0.role", None),
        ({"temperature": "hot"}, "temperature", "invalid_type"),
        ({"max_output_tokens": 0}, "max_output_tokens", "invalid_value"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools.0", None),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice", None),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema", None),
        ({"text": {"format": {"type": "json_schema", "schema": {"type": "integer", "maximum": 9}}}},
         "text.format", "unsupported_schema"),
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort", "invalid_value"),
        ({"tools": [{"type": "mcp", "server_label": "x", "server_url": "http://127.0.0.1:9/mcp"}]},
         "tools.0.type", "mcp_disabled"),
    ],
)  # fmt: skip
def test_bad_requests_are_400s_naming_the_field(
    http: httpx.Client, body: dict, param: str, code: str
) -> None:
    reply = http.post("/v1/responses", json={"model": CHAT, "input": "x", **body})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error", error
    if code is not None:
        assert error["code"] == code
    if code == "mcp_disabled":
        assert "--LmJupyterApp.enable_remote_mcp=True" in error["message"]


def test_unknown_model_and_previous_id_are_404s(http: httpx.Client) -> None:
    for stream in (False, True):  # nothing was streamed yet: a plain JSON error either way
        reply = http.post("/v1/responses", json={"model": "nobody/nothing", "input": "x", "stream": stream})
        assert reply.status_code == 404 and reply.json()["error"]["code"] == "model_not_found"
        assert reply.headers["content-type"].startswith("application/json")
    reply = http.post(
        "/v1/responses", json={"model": CHAT, "input": "x", "previous_response_id": "resp_" + "0" * 48}
    )
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "previous_response_not_found"


def test_ttl_passes_through_to_the_jit_load(http: httpx.Client) -> None:
    http.post("/api/v1/models/unload", json={"instance_id": "test/tiny-long"})
    reply = http.post(
        "/v1/responses",
        json={"model": "test/tiny-long", "input": "x", "ttl": 321, "max_output_tokens": 2},
    )
    assert reply.status_code == 200, reply.text
    instances = [i for m in http.get("/api/v1/models").json()["models"] for i in m["loaded_instances"]]
    [instance] = [i for i in instances if i["id"] == "test/tiny-long"]
    assert instance["ttl_seconds"] == 321
    http.post("/api/v1/models/unload", json={"instance_id": "test/tiny-long"})


@pytest.mark.slow
def test_qwen_calls_a_function_and_uses_its_result(openai_client: OpenAI) -> None:
    from tests.conftest import QWEN_KEY

    openai_client = openai_client.with_options(timeout=600)  # a 1.5B model on a shared CPU

    weather = {
        "type": "function",
        "name": "get_current_weather",
        "description": "Get the current weather in a given city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city, e.g. Paris"}},
            "required": ["city"],
        },
    }
    first = openai_client.responses.create(
        model=QWEN_KEY,
        input="What is the weather like in Paris right now?",
        tools=[weather],
        temperature=0,
        max_output_tokens=128,
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1, first.output
    assert calls[0].name == "get_current_weather"
    assert json.loads(calls[0].arguments)["city"].lower() == "paris"
    second = openai_client.responses.create(
        model=QWEN_KEY,
        previous_response_id=first.id,
        input=[
            {
                "type": "function_call_output",
                "call_id": calls[0].call_id,
                "output": json.dumps({"temperature_celsius": 31, "sky": "clear"}),
            },
            # Without it Qwen 1.5B may write the call again as bare JSON, which the lenient Hermes
            # parser (as llama.cpp's) reads as a call: the question is about using the result.
            {"role": "user", "content": "Now answer my question in one sentence."},
        ],
        tools=[weather],
        temperature=0,
        max_output_tokens=128,
    )
    assert second.status == "completed" and "31" in second.output_text
    assert second.usage.input_tokens_details.cached_tokens > 0


def test_disconnect_stops_generation(http: httpx.Client, server: ServerInfo) -> None:
    load_long(http)
    body = {"model": LONG, "input": "go", "stream": True, "logit_bias": NO_EOS}  # up to 32k tokens
    own = httpx.Client(base_url=server.url, headers=http.headers, timeout=60)
    deltas = 0
    with own, own.stream("POST", "v1/responses", json=body) as reply:
        for line in reply.iter_lines():
            deltas += '"response.output_text.delta"' in line and line.startswith("data: ")
            if deltas == 20:
                assert instances(http, LONG)[0]["status"] == "generating"
                break
    assert_goes_idle(http)
    # a non-streaming request is cancelled the same way
    with contextlib.suppress(httpx.TimeoutException):
        httpx.post(
            server.url + "v1/responses", json={**body, "stream": False}, headers=http.headers, timeout=1
        )
    assert_goes_idle(http)
    unload_all(http)


def test_worker_crash_mid_stream_is_an_error_event_then_failed(
    http: httpx.Client, server: ServerInfo
) -> None:
    load_long(http)
    (pid,) = worker_pids(server)
    events: list[dict] = []
    started = threading.Event()

    def read() -> None:
        body = {"model": LONG, "input": "go", "stream": True, "logit_bias": NO_EOS}
        with http.stream("POST", "v1/responses", json=body) as reply:
            for line in reply.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    started.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert started.wait(30)
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    reader.join(30)
    error, failed = events[-2:]
    assert error["type"] == "error" and error["code"] == "model_crashed" and "signal 9" in error["message"]
    assert failed["type"] == "response.failed" and failed["response"]["status"] == "failed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    stored = http.get(f"v1/responses/{failed['response']['id']}").json()
    assert stored["status"] == "failed" and "signal 9" in stored["error"]["message"]
    unload_all(http)


@pytest.mark.parametrize(
    "drafting",
    [{"draft_model": TOOLS_MODEL, "draft_min_probability": 0}, {"prompt_lookup": True}],
    ids=["draft-model", "prompt-lookup"],
)
def test_speculative_fields_pass_through_and_keep_greedy_text(openai_client: OpenAI, drafting: dict) -> None:
    """tiny-tools has tiny-chat's weights, so as a draft model it agrees; the text must not change."""
    common = {"model": CHAT, "input": "Tell me a story.", "max_output_tokens": 40, "temperature": 0}
    bias = {"logit_bias": ASCII_ONLY | NO_EOS}
    plain = openai_client.responses.create(**common, extra_body=bias)
    drafted = openai_client.responses.create(**common, extra_body={**bias, **drafting})
    assert drafted.output_text == plain.output_text and drafted.output_text
    assert drafted.usage.output_tokens == plain.usage.output_tokens
    bad = openai_client.with_options(max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        bad.responses.create(**common, extra_body={"draft_model": TOOLS_MODEL, "prompt_lookup": True})
    assert refused.value.status_code == 400
