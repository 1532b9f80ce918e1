"""Anthropic's Messages API, pure layer: validation, Messages -> chat, errors and the event builder."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lm_jupyter.api.anthropic import (
    MessagesInput,
    MessagesRequest,
    chat_messages,
    chat_request,
    error_body,
    rename_param,
)
from lm_jupyter.api.anthropic_events import MessageEvents
from lm_jupyter.api.completions import Outcome
from lm_jupyter.api.errors import APIError
from lm_jupyter.api.requests import ChatCompletionRequest, parse_request

WEATHER = {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}], **fields}


def parse(**fields: Any) -> MessagesRequest:
    return parse_request(MessagesRequest, json.dumps(body(**fields)).encode())


def error_of(raw: dict[str, Any], model: type = MessagesRequest) -> APIError:
    with pytest.raises(APIError) as caught:
        parse_request(model, json.dumps(raw).encode())
    assert caught.value.status == 400
    return caught.value


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ({k: v for k, v in body().items() if k != "max_tokens"}, "max_tokens"),
        (body(max_tokens=0), "max_tokens"),
        (body(max_tokens="16"), "max_tokens"),
        (body(messages=[]), "messages"),
        (body(messages=[{"role": "system", "content": "x"}]), "messages.0.role"),
        (body(messages=[{"role": "user", "content": [{"type": "text"}]}]), "messages.0.content.0.text"),
        (body(messages=[{"role": "user", "content": [{"type": "video"}]}]), "messages.0.content.0.type"),
        (
            body(messages=[{"role": "user", "content": [{"type": "image", "source": {}}]}]),
            "messages.0.content.0.type",
        ),
        (
            body(messages=[{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]),
            "messages.0.content.0.tool_use_id",
        ),
        (
            body(
                messages=[
                    {"role": "user", "content": "q"},
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "x"}],
                    },
                ]
            ),
            "messages.1.content.0.input",
        ),
        (
            body(
                messages=[
                    {"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}
                ]
            ),
            "messages.0.content",
        ),
        (body(system=[{"type": "text", "text": 1}]), "system.0.text"),
        (body(temperature=1.5), "temperature"),
        (body(top_k=-1), "top_k"),
        (body(stop_sequences="END"), "stop_sequences"),
        (body(tools=[{"name": "f"}]), "tools.0.input_schema"),
        (body(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools.0.type"),
        (body(tool_choice={"type": "any"}), "tool_choice"),
        (body(tools=[WEATHER], tool_choice={"type": "tool"}), "tool_choice.name"),
        (body(tools=[WEATHER], tool_choice={"type": "tool", "name": "nope"}), "tool_choice.name"),
        (body(tools=[WEATHER], tool_choice={"type": "sometimes"}), "tool_choice.type"),
        (body(thinking={"type": "enabled"}), "thinking.budget_tokens"),
        (body(thinking={"type": "enabled", "budget_tokens": 0}), "thinking.budget_tokens"),
    ],
)
def test_bad_requests_name_the_field(raw: dict[str, Any], param: str) -> None:
    error = error_of(raw)
    assert error.param == param, error.message
    assert f"'{param}'" in error.message


def test_count_tokens_needs_no_max_tokens_but_checks_the_rest() -> None:
    request = parse_request(
        MessagesInput, json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}).encode()
    )
    assert chat_request(request, {})["messages"] == [{"role": "user", "content": "x"}]
    assert error_of({"model": "m"}, MessagesInput).param == "messages"


def test_conversation_becomes_chat_messages() -> None:
    request = parse(
        system=[
            {"type": "text", "text": "Be brief."},
            {"type": "text", "text": "Use tools.", "cache_control": {}},
        ],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "I should call the tool.", "signature": "sig"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Lyon"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": [{"type": "text", "text": "no data"}],
                        "is_error": True,
                    },
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
    )
    assert chat_messages(request) == [
        {"role": "system", "content": "Be brief.\nUse tools."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no data"},
        {"role": "user", "content": "And tomorrow?"},
    ]


def test_assistant_turn_of_only_calls_has_no_content() -> None:
    request = parse(
        messages=[
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
        ]
    )
    messages = chat_messages(request)
    assert messages[1]["content"] is None and messages[1]["tool_calls"][0]["function"]["arguments"] == "{}"
    assert messages[2:] == [{"role": "tool", "tool_call_id": "t1", "content": ""}]


@pytest.mark.parametrize(
    ("choice", "chat_choice", "parallel"),
    [
        ({"type": "auto"}, "auto", True),
        ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
        ({"type": "none"}, "none", True),
        (
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
            True,
        ),
    ],
)
def test_tool_choice_maps_to_chat(choice: dict, chat_choice: Any, parallel: bool) -> None:
    chat = chat_request(parse(tools=[WEATHER], tool_choice=choice), {})
    assert chat["tool_choice"] == chat_choice and chat["parallel_tool_calls"] is parallel
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}},
        }
    ]
    ChatCompletionRequest.model_validate(chat)  # a valid chat request


def test_sampling_and_extensions_pass_to_chat() -> None:
    raw = body(
        temperature=0.5,
        top_p=0.9,
        top_k=5,
        stop_sequences=["END"],
        stream=True,
        grammar='root ::= "x"',
        ttl=60,
    )
    chat = chat_request(parse_request(MessagesRequest, json.dumps(raw).encode()), raw)
    assert {
        k: chat[k] for k in ("max_tokens", "temperature", "top_p", "top_k", "stop", "grammar", "ttl")
    } == {
        "max_tokens": 16,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 5,
        "stop": ["END"],
        "grammar": 'root ::= "x"',
        "ttl": 60,
    }
    assert chat["stream"] is False and "tools" not in chat  # the handler streams; no tools offered


def test_chat_errors_name_the_messages_field() -> None:
    error = rename_param(APIError("Invalid 'stop': at most 4 stop sequences are allowed.", param="stop"))
    assert error.param == "stop_sequences" and "'stop_sequences'" in error.message
    error = rename_param(APIError("Bad 'tools.0.function.parameters'.", param="tools.0.function.parameters"))
    assert error.param == "tools.0.input_schema"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (499, "invalid_request_error"),
        (500, "api_error"),
        (503, "overloaded_error"),
    ],
)
def test_errors_in_anthropics_shape(status: int, kind: str) -> None:
    assert error_body(APIError("nope", status=status)) == {
        "type": "error",
        "error": {"type": kind, "message": "nope"},
    }


# -- events -----------------------------------------------------------------------------------


def outcome(reason: str = "eosFound", **fields: Any) -> Outcome:
    values = {
        "prompt_tokens": 30,
        "completion_tokens": 12,
        "time_to_first_token": 0.1,
        "generation_time": 0.5,
    }
    return Outcome(stop_reason=reason, **{**values, **fields})


def call_start(index: int, name: str) -> dict[str, Any]:
    return {
        "tool_calls": [
            {
                "index": index,
                "id": f"call_{index}",
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
        ]
    }


def call_args(index: int, text: str) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, "function": {"arguments": text}}]}


def run(deltas: list[dict[str, Any]], result: Outcome, **options: Any) -> MessageEvents:
    events = MessageEvents("test/model", **options)
    events.start(30)
    for delta in deltas:
        events.delta(delta)
    events.finish(result, result.stop_string)
    return events


def test_thinking_text_and_tool_use_blocks_and_their_events() -> None:
    deltas = [
        {"reasoning_content": "Need "},
        {"reasoning_content": "weather."},
        {"content": "Let me "},
        {"content": "check."},
        call_start(0, "get_weather"),
        call_args(0, '{"city": '),
        call_args(0, '"Paris"}'),
        call_start(1, "Get Time"),
        call_args(1, "{}"),
    ]
    events = run(deltas, outcome("toolCalls", cached_tokens=10, reasoning_tokens=3))
    message = events.message
    assert message["id"].startswith("msg_") and len(message["id"]) == 28
    assert message["stop_reason"] == "tool_use" and message["stop_sequence"] is None
    assert message["usage"] == {
        "input_tokens": 20,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 10,
        "output_tokens": 12,
        "output_tokens_details": {"thinking_tokens": 3},
    }
    blocks = message["content"]
    assert blocks[0] == {"type": "thinking", "thinking": "Need weather.", "signature": ""}
    assert blocks[1] == {"type": "text", "text": "Let me check."}
    assert [(b["type"], b["name"], b["input"]) for b in blocks[2:]] == [
        ("tool_use", "get_weather", {"city": "Paris"}),
        ("tool_use", "Get Time", {}),
    ]
    assert all(b["id"].startswith("toolu_") for b in blocks[2:]) and blocks[2]["id"] != blocks[3]["id"]
    sequence = [
        (name, payload.get("index"), (payload.get("delta") or {}).get("type"))
        for name, payload in events.drain()
    ]
    assert sequence == [
        ("message_start", None, None),
        ("ping", None, None),
        ("content_block_start", 0, None),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, None),
        ("content_block_delta", 1, "text_delta"),
        ("content_block_delta", 1, "text_delta"),
        ("content_block_stop", 1, None),
        ("content_block_start", 2, None),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_stop", 2, None),
        ("content_block_start", 3, None),
        ("content_block_delta", 3, "input_json_delta"),
        ("content_block_stop", 3, None),
        ("message_delta", None, None),
        ("message_stop", None, None),
    ]


def test_stream_payloads_are_anthropics() -> None:
    events = run([{"content": "Hi"}, call_start(0, "f"), call_args(0, "{}")], outcome("toolCalls"))
    payloads = [payload for _, payload in events.drain()]
    start = payloads[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["input_tokens"] == 30
    assert start["usage"]["output_tokens"] == 0
    assert payloads[2] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert payloads[3] == {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "Hi"},
    }
    tool_start = payloads[5]["content_block"]
    assert tool_start == {"type": "tool_use", "id": tool_start["id"], "name": "f", "input": {}}
    assert payloads[6]["delta"] == {"type": "input_json_delta", "partial_json": "{}"}
    assert payloads[-2] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": events.message["usage"],
    }
    assert payloads[-1] == {"type": "message_stop"}


@pytest.mark.parametrize(
    ("reason", "stop_string", "stop_reason", "stop_sequence"),
    [
        ("eosFound", None, "end_turn", None),
        ("stopStringFound", "END", "stop_sequence", "END"),
        ("maxPredictedTokensReached", None, "max_tokens", None),
        ("contextLengthReached", None, "model_context_window_exceeded", None),
        ("userStopped", None, "end_turn", None),
    ],
)
def test_stop_reasons(
    reason: str, stop_string: str | None, stop_reason: str, stop_sequence: str | None
) -> None:
    message = run([{"content": "x"}], outcome(reason, stop_string=stop_string)).message
    assert (message["stop_reason"], message["stop_sequence"]) == (stop_reason, stop_sequence)


def test_cut_off_tool_call_is_left_out_of_the_whole_message() -> None:
    events = run(
        [{"content": "Hm."}, call_start(0, "f"), call_args(0, '{"city": ')],
        outcome("maxPredictedTokensReached"),
    )
    assert events.message["content"] == [{"type": "text", "text": "Hm."}]
    assert events.message["stop_reason"] == "max_tokens"


def test_disabled_thinking_leaves_reasoning_out() -> None:
    events = run([{"reasoning_content": "hmm"}, {"content": "Yes."}], outcome(), thinking="none")
    assert events.message["content"] == [{"type": "text", "text": "Yes."}]
    assert all(payload.get("index") in (None, 0) for _, payload in events.drain())


def test_omitted_thinking_sends_empty_blocks() -> None:
    events = run([{"reasoning_content": "hmm"}, {"content": "Yes."}], outcome(), thinking="omitted")
    assert events.message["content"] == [
        {"type": "thinking", "thinking": "", "signature": ""},
        {"type": "text", "text": "Yes."},
    ]
    deltas = [payload["delta"]["type"] for name, payload in events.drain() if name == "content_block_delta"]
    assert deltas == ["text_delta"]


@pytest.mark.parametrize(
    ("thinking", "display"),
    [
        (None, "summarized"),
        ({"type": "enabled", "budget_tokens": 2048}, "summarized"),
        ({"type": "adaptive", "display": "omitted"}, "omitted"),
        ({"type": "between_tools"}, "summarized"),
        ({"type": "disabled"}, "none"),
    ],
)
def test_thinking_display(thinking: dict | None, display: str) -> None:
    assert parse(thinking=thinking).thinking_display() == display


def test_output_config_maps_to_effort_and_structured_output() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    chat = chat_request(
        parse(output_config={"effort": "max", "format": {"type": "json_schema", "schema": schema}}), {}
    )
    assert chat["reasoning_effort"] == "high"
    assert chat["response_format"] == {"type": "json_schema", "json_schema": {"schema": schema}}
    ChatCompletionRequest.model_validate(chat)
    error = rename_param(APIError("x", param="response_format.json_schema.schema.properties"))
    assert error.param == "output_config.format.schema.properties"


def test_error_event_after_the_stream_began() -> None:
    events = MessageEvents("m")
    events.start(3)
    events.drain()
    events.fail(error_body(APIError("The model crashed.", status=500)))
    assert events.drain() == [
        ("error", {"type": "error", "error": {"type": "api_error", "message": "The model crashed."}})
    ]
