"""A real tool-calling model (Qwen2.5-Coder-1.5B-Instruct) through Anthropic's tool loop with
the official SDK: shapes and stop reasons are asserted, not the model's words."""

from __future__ import annotations

import json

import pytest
from anthropic import Anthropic

from lm_jupyter.client.discovery import ServerInfo
from tests.conftest import QWEN_KEY
from tests.e2e.test_qwen_tools import WEATHER as OPENAI_WEATHER

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # 1.5B on a shared CPU

# The OpenAI tool of test_qwen_tools.py in Anthropic's shape.
WEATHER = {
    "name": OPENAI_WEATHER["function"]["name"],
    "description": OPENAI_WEATHER["function"]["description"],
    "input_schema": OPENAI_WEATHER["function"]["parameters"],
}


def test_tool_round_trip(server: ServerInfo) -> None:
    client = Anthropic(base_url=server.url, api_key=server.token, max_retries=0, timeout=600)
    messages: list[dict] = [{"role": "user", "content": "What is the weather like in Paris right now?"}]
    first = client.messages.create(
        model=QWEN_KEY,
        max_tokens=128,
        messages=messages,  # type: ignore[arg-type]
        tools=[WEATHER],  # type: ignore[list-item]
        extra_body={"temperature": 0},
    )
    assert first.stop_reason == "tool_use", first.content
    (call,) = [block for block in first.content if block.type == "tool_use"]
    assert call.name == "get_current_weather" and call.id.startswith("toolu_")
    assert isinstance(call.input, dict) and "paris" in str(call.input.get("city", "")).lower()
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0

    messages += [
        {
            "role": "assistant",
            "content": [block.model_dump(exclude={"parsed_output"}) for block in first.content],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": call.id,
                    "content": json.dumps({"temperature": 18, "sky": "sunny"}),
                },
                {"type": "text", "text": "Now answer my question in one sentence."},
            ],
        },
    ]
    with client.messages.stream(
        model=QWEN_KEY,
        max_tokens=16,  # enough to see a text answer begin; the machine may be slow
        messages=messages,  # type: ignore[arg-type]
        tools=[WEATHER],  # type: ignore[list-item]
        extra_body={"temperature": 0},
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    # Qwen 1.5B mostly answers, but may repeat the call as bare JSON, which the lenient Hermes
    # parser reads as a call (as llama.cpp's does): either way the shapes must be Anthropic's.
    kinds = [block.type for block in final.content]
    assert kinds in (["text"], ["tool_use"], ["text", "tool_use"]), final.content
    assert "".join(block.text for block in final.content if block.type == "text") == text  # type: ignore[union-attr]
    if "tool_use" in kinds:
        assert final.stop_reason in ("tool_use", "max_tokens")
        assert [block.name for block in final.content if block.type == "tool_use"] == [WEATHER["name"]]  # type: ignore[union-attr]
    else:
        assert final.stop_reason in ("end_turn", "max_tokens") and text.strip()
    counted = client.messages.count_tokens(model=QWEN_KEY, messages=messages, tools=[WEATHER])  # type: ignore[arg-type]
    assert counted.input_tokens == final.usage.input_tokens + (final.usage.cache_read_input_tokens or 0)
