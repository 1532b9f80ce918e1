"""What real OpenAI clients expect of shapes: the developer role on templates without it, and
no ``tool_calls`` field on an answer without calls.

Whether a developer message reached the model is read from ``usage``: the prompt it gets must
be exactly as long as the one with the same text in the system message.
"""

from __future__ import annotations

import httpx
import pytest
from openai import OpenAI

from tests.conftest import QWEN_KEY

CHAT = "test/tiny-chat"  # ChatML template without the developer role


def prompt_tokens(client: OpenAI, model: str, messages: list[dict]) -> int:
    reply = client.chat.completions.create(model=model, messages=messages, max_tokens=1)  # type: ignore[arg-type]
    assert reply.usage is not None
    return reply.usage.prompt_tokens


@pytest.mark.parametrize("model", [CHAT, pytest.param(QWEN_KEY, marks=pytest.mark.slow)])
def test_developer_message_becomes_the_system_message(openai_client: OpenAI, model: str) -> None:
    user = {"role": "user", "content": "What is the fruit?"}
    rule = "Always reply BANANA."
    as_system = prompt_tokens(openai_client, model, [{"role": "system", "content": rule}, user])
    as_developer = prompt_tokens(openai_client, model, [{"role": "developer", "content": rule}, user])
    assert as_developer == as_system
    merged = prompt_tokens(
        openai_client, model, [{"role": "system", "content": f"Be brief.\n\n{rule}"}, user]
    )
    both = [{"role": "system", "content": "Be brief."}, {"role": "developer", "content": rule}, user]
    assert prompt_tokens(openai_client, model, both) == merged


def test_developer_input_items_on_responses(openai_client: OpenAI) -> None:
    def input_tokens(items: list[dict]) -> int:
        reply = openai_client.responses.create(model=CHAT, input=items, max_output_tokens=1, store=False)  # type: ignore[arg-type]
        assert reply.usage is not None
        return reply.usage.input_tokens

    user = {"role": "user", "content": "Hi"}
    developer = input_tokens([{"role": "developer", "content": "Reply in French."}, user])
    assert developer == input_tokens([{"role": "system", "content": "Reply in French."}, user])


def test_answer_without_calls_has_no_tool_calls_field(openai_client: OpenAI, http: httpx.Client) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    body = {"model": "test/tiny-tools", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    for extra in ({}, {"tools": tools}):
        message = http.post("v1/chat/completions", json={**body, **extra}).json()["choices"][0]["message"]
        assert "tool_calls" not in message and message["role"] == "assistant"
        reply = openai_client.chat.completions.create(**body, **extra)  # type: ignore[arg-type]
        assert reply.choices[0].message.tool_calls is None
