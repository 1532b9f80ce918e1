"""Tool calls and reasoning end to end: a tiny model forced (by grammar) to write each markup."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

TOOLS_MODEL = "test/tiny-tools"
MSGS = [{"role": "user", "content": "What is the weather in Zürich and the time in UTC?"}]
ASCII_ONLY = {str(5 + byte): -100 for byte in range(0x80, 0x100)}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "maxLength": 8}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "Get Time",  # not a valid identifier: normalised for the model, mapped back
            "parameters": {
                "type": "object",
                "properties": {"tz": {"enum": ["UTC", "CET"]}},
                "required": ["tz"],
            },
        },
    },
]


def gbnf_literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


CALLS_TEXT = (
    'Let me check.<tool_call>\n{"name": "get_weather", "arguments": {"city": "Zürich"}}\n</tool_call>'
    '<tool_call>\n{"name": "get_time", "arguments": {"tz": "UTC"}}\n</tool_call>'
)


def forced(text: str) -> dict:
    return {"grammar": f"root ::= {gbnf_literal(text)}", "max_tokens": 400}


def test_parallel_calls_non_streaming(openai_client: OpenAI) -> None:
    reply = openai_client.chat.completions.create(
        model=TOOLS_MODEL,
        messages=MSGS,
        tools=TOOLS,
        extra_body=forced(CALLS_TEXT),  # type: ignore[arg-type]
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    calls = choice.message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "Get Time"]  # the caller's own names
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Zürich"}, {"tz": "UTC"}]
    assert all(c.id.startswith("call_") and c.type == "function" for c in calls)
    assert len({c.id for c in calls}) == 2


def test_streamed_calls_accumulate_to_the_same_calls(openai_client: OpenAI) -> None:
    chunks = list(
        openai_client.chat.completions.create(
            model=TOOLS_MODEL,
            messages=MSGS,
            tools=TOOLS,
            stream=True,
            extra_body=forced(CALLS_TEXT),  # type: ignore[arg-type]
        )
    )
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == "Let me check." and "<tool_call>" not in content
    calls: dict[int, dict] = {}
    arg_deltas = 0
    for chunk in chunks:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            if call.index not in calls:
                assert call.id and call.type == "function" and call.function and call.function.name
                calls[call.index] = {"name": call.function.name, "arguments": call.function.arguments or ""}
            else:
                assert call.function is not None and not call.function.name
                calls[call.index]["arguments"] += call.function.arguments or ""
                arg_deltas += 1
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "Get Time"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Zürich"}
    assert arg_deltas > 2  # arguments stream as they are generated, not in one piece
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_the_openai_stream_helper_agrees(openai_client: OpenAI) -> None:
    with openai_client.chat.completions.stream(
        model=TOOLS_MODEL,
        messages=MSGS,
        tools=TOOLS,
        extra_body=forced(CALLS_TEXT),  # type: ignore[arg-type]
    ) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Zürich"}),
        ("Get Time", {"tz": "UTC"}),
    ]


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "Get Time"}}])
def test_tool_choice_is_enforced_by_grammar(http: httpx.Client, choice: object) -> None:
    for seed in (1, 2):
        body = {
            "model": TOOLS_MODEL,
            "messages": MSGS,
            "tools": TOOLS,
            "tool_choice": choice,
            "seed": seed,
            "max_tokens": 300,
            "logit_bias": ASCII_ONLY,
        }
        message = http.post("v1/chat/completions", json=body).json()["choices"][0]
        assert message["finish_reason"] == "tool_calls"
        calls = message["message"]["tool_calls"]
        assert calls and all(json.loads(c["function"]["arguments"]) is not None for c in calls)
        if isinstance(choice, dict):
            assert [c["function"]["name"] for c in calls] == ["Get Time"]
            assert json.loads(calls[0]["function"]["arguments"])["tz"] in {"UTC", "CET"}


def test_tool_choice_none_hides_the_tools(http: httpx.Client) -> None:
    base = {"model": TOOLS_MODEL, "messages": MSGS, "max_tokens": 1}
    plain = http.post("v1/chat/completions", json=base).json()["usage"]["prompt_tokens"]
    none = http.post("v1/chat/completions", json={**base, "tools": TOOLS, "tool_choice": "none"}).json()
    offered = http.post("v1/chat/completions", json={**base, "tools": TOOLS}).json()
    assert none["usage"]["prompt_tokens"] == plain < offered["usage"]["prompt_tokens"]


def test_unknown_named_function_is_a_400(http: httpx.Client) -> None:
    body = {
        "model": TOOLS_MODEL,
        "messages": MSGS,
        "tools": TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "launch_rockets"}},
    }
    response = http.post("v1/chat/completions", json=body)
    assert response.status_code == 400 and response.json()["error"]["param"] == "tool_choice"
    assert "launch_rockets" in response.json()["error"]["message"]


def test_tool_results_round_trip_through_the_template(http: httpx.Client) -> None:
    function = {"name": "Get Time", "arguments": '{"tz": "UTC"}'}
    call = {"id": "call_1", "type": "function", "function": function}
    history = [
        *MSGS,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "12:00"},
    ]
    body = {"model": TOOLS_MODEL, "messages": history, "tools": TOOLS, **forced("It is noon.")}
    reply = http.post("v1/chat/completions", json=body).json()["choices"][0]
    assert reply["message"]["content"] == "It is noon." and reply["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("text", "content"),
    [
        # No name: never became a call, so the text comes back exactly.
        (
            '<tool_call>\n{"nam": "get_weather"}\n</tool_call> sorry',
            '<tool_call>\n{"nam": "get_weather"}\n</tool_call> sorry',
        ),
        # Named but broken arguments: omitted from the whole response, the rest kept.
        ('Hm. <tool_call>\n{"name": "get_weather", "arguments": {"city": </tool_call> sorry', "Hm. "),
    ],
)
def test_malformed_calls_never_become_tool_calls(http: httpx.Client, text: str, content: str) -> None:
    reply = http.post(
        "v1/chat/completions", json={"model": TOOLS_MODEL, "messages": MSGS, "tools": TOOLS, **forced(text)}
    ).json()["choices"][0]
    assert reply["finish_reason"] == "stop" and "tool_calls" not in reply["message"]
    assert reply["message"]["content"].startswith(content)


@pytest.mark.parametrize("fmt", [None, "reasoning", "none"])
def test_reasoning_is_separated(http: httpx.Client, fmt: str | None) -> None:
    body = {"model": "test/tiny-think", "messages": MSGS, **forced("<think>Weigh it.</think>Warm.")}
    if fmt:
        body["reasoning_format"] = fmt
    reply = http.post("v1/chat/completions", json=body).json()
    message = reply["choices"][0]["message"]
    if fmt == "none":
        assert message["content"] == "<think>Weigh it.</think>Warm." and "reasoning_content" not in message
        return
    field = fmt or "reasoning_content"
    assert message[field] == "Weigh it." and message["content"] == "Warm."
    assert (
        0
        < reply["usage"]["completion_tokens_details"]["reasoning_tokens"]
        < reply["usage"]["completion_tokens"]
    )


def test_streamed_reasoning_and_unclosed_thinking(http: httpx.Client) -> None:
    body = {"model": "test/tiny-think", "messages": MSGS, "stream": True, **forced("<think>Still thinking")}
    with http.stream("POST", "v1/chat/completions", json=body) as response:
        deltas = [json.loads(line[6:])["choices"][0]["delta"] for line in response.iter_lines()
                  if line.startswith("data: {") and '"choices":[{' in line]  # fmt: skip
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    content = "".join(d.get("content") or "" for d in deltas)
    assert reasoning == "Still thinking" and content == ""  # hit the end while thinking: still reasoning


def test_capabilities_are_discoverable(http: httpx.Client) -> None:
    entries = {entry["id"]: entry for entry in http.get("api/v0/models").json()["data"]}
    assert entries["test/tiny-tools"]["capabilities"] == ["tool_use"]
    assert entries["test/tiny-think"]["capabilities"] == ["reasoning"]
    assert "capabilities" not in entries["test/tiny-chat"]  # plain ChatML: neither
    assert "capabilities" not in entries["test/tiny-embed"]
    v1 = {m["key"]: m for m in http.get("api/v1/models").json()["models"]}
    assert v1["test/tiny-think"]["capabilities"]["reasoning"]["default"] == "on"
    assert v1["qwen/qwen2.5-coder-1.5b-instruct"]["capabilities"]["trained_for_tool_use"] is True


def test_reasoning_effort_reaches_the_template(http: httpx.Client, models_dir: Path) -> None:
    """gpt-oss style templates read `reasoning_effort`; the prompt must change with it."""
    from tests.tiny_gguf import CHATML_TEMPLATE, write_tiny_model

    path = models_dir / "test" / "tiny-effort-GGUF" / "tiny-effort-F32.gguf"
    if not path.exists():
        effort = (
            "{% if reasoning_effort %}<|im_start|>system\nReasoning: {{ reasoning_effort }} effort, "
            "think hard<|im_end|>\n{% endif %}"
        )
        write_tiny_model(path, chat_template=effort + CHATML_TEMPLATE)
    base = {"model": "test/tiny-effort", "messages": MSGS, "max_tokens": 1}
    plain = http.post("v1/chat/completions", json=base).json()["usage"]["prompt_tokens"]
    high = http.post("v1/chat/completions", json={**base, "reasoning_effort": "high"}).json()
    assert high["usage"]["prompt_tokens"] > plain + 5


def test_forced_calls_follow_nested_schemas_with_defs(http: httpx.Client) -> None:
    import jsonschema

    schema = {
        "$defs": {
            "stop": {
                "type": "object",
                "properties": {"city": {"enum": ["Paris", "Rome"]}},
                "required": ["city"],
            }
        },
        "type": "object",
        "properties": {
            "stops": {"type": "array", "items": {"$ref": "#/$defs/stop"}, "minItems": 1, "maxItems": 2}
        },
        "required": ["stops"],
    }
    tools = [
        {"type": "function", "function": {"name": "plan_trip", "parameters": schema}},
        {"type": "function", "function": {"name": "ping"}},  # no parameters at all
    ]
    for name in ("plan_trip", "ping"):
        body = {
            "model": TOOLS_MODEL,
            "messages": MSGS,
            "tools": tools,
            "max_tokens": 200,
            "seed": 9,
            "tool_choice": {"type": "function", "function": {"name": name}},
            "logit_bias": ASCII_ONLY,
        }
        reply = http.post("v1/chat/completions", json=body).json()["choices"][0]
        (call,) = reply["message"]["tool_calls"]
        arguments = json.loads(call["function"]["arguments"])
        assert call["function"]["name"] == name
        if name == "plan_trip":
            jsonschema.validate(arguments, schema)
        else:
            assert isinstance(arguments, dict)
