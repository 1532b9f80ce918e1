"""LM Studio's default tool use for templates without tool support."""

from __future__ import annotations

import json

from lm_jupyter.chat.fallback_tools import fallback_messages, fallback_system_prompt
from tests.unit.test_toolcalls import parse

PARAMETERS = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}
FUNCTION = {"name": "search_products", "description": "Search the catalog", "parameters": PARAMETERS}
TOOLS = [{"type": "function", "function": FUNCTION}]


def test_fallback_system_prompt_teaches_the_format_and_lists_tools() -> None:
    prompt = fallback_system_prompt(TOOLS)
    assert (
        '[TOOL_REQUEST]{"name": "tool_name", "arguments": {"param1": "value1"}}[END_TOOL_REQUEST]' in prompt
    )
    listing = prompt.split("AVAILABLE TOOLS:\n", 1)[1].split("\n", 1)[0]
    assert json.loads(listing) == {"type": "toolArray", "tools": TOOLS}
    assert "RULES:" in prompt


def test_fallback_messages_turn_tool_turns_into_text() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Zürich and Tokyo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location": "Zürich"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location": "東京"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "12°C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "20°C"}]},
        {"role": "assistant", "content": "Zürich 12°C, Tokyo 20°C."},
        {"role": "user", "content": "Thanks"},
    ]
    original = json.dumps(messages)
    out = fallback_messages(messages)
    assert json.dumps(messages) == original, "the input is not modified"
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "tool_calls" not in out[2]
    requests = out[2]["content"]
    assert requests == (
        '[TOOL_REQUEST]{"name": "get_weather", "arguments": {"location": "Zürich"}}[END_TOOL_REQUEST]'
        '[TOOL_REQUEST]{"name": "get_weather", "arguments": {"location": "東京"}}[END_TOOL_REQUEST]'
    )
    # The model's own earlier requests parse back with the fallback parser.
    assert parse("fallback", [requests]).parsed_calls() == [
        ("get_weather", {"location": "Zürich"}),
        ("get_weather", {"location": "東京"}),
    ]
    results = out[3]["content"]
    assert "get_weather" in results and "12°C" in results and "20°C" in results and "call_2" in results
    assert out[5] == {"role": "user", "content": "Thanks"}


def test_fallback_messages_keep_text_and_merge_a_following_user_turn() -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "ping", "arguments": "not json"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c", "name": "ping", "content": "pong"},
        {"role": "user", "content": "And now?"},
    ]
    out = fallback_messages(messages)
    assert (
        out[1]["content"]
        == 'Checking.\n[TOOL_REQUEST]{"name": "ping", "arguments": "not json"}[END_TOOL_REQUEST]'
    )
    assert [m["role"] for m in out] == ["user", "assistant", "user"]
    assert "pong" in out[2]["content"] and out[2]["content"].endswith("\n\nAnd now?")
