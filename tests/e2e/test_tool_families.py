"""Every tool-call family end to end: a tiny model whose template carries the family's markers,
forced by grammar to write that family's exact markup, read back by the official client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openai import OpenAI

from tests.tiny_gguf import CHATML_TEMPLATE, write_tiny_model
from tests.unit.test_families import TEMPLATES

WEATHER = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
ARGS = '{"city": "Paris"}'
OUTPUTS = {
    "hermes": f'<tool_call>\n{{"name": "get_weather", "arguments": {ARGS}}}\n</tool_call>',
    "qwen3_coder": (
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>"
    ),
    "seed_oss": (
        "<seed:tool_call>\n<function=get_weather>\n<parameter=city>Paris</parameter>\n</function>\n"
        "</seed:tool_call>"
    ),
    "llama3": f'{{"name": "get_weather", "parameters": {ARGS}}}',
    "mistral": f"[TOOL_CALLS]get_weather[ARGS]{ARGS}",
    "deepseek": (
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"  # noqa: RUF001
        f"```json\n{ARGS}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"  # noqa: RUF001
    ),
    "gpt_oss": (
        "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>commentary "
        f"to=functions.get_weather <|constrain|>json<|message|>{ARGS}<|call|>"
    ),
    "functionary_v3": f">>>get_weather\n{ARGS}",
    "nemotron_nano_v2": f'<TOOLCALL>[{{"name": "get_weather", "arguments": {ARGS}}}]</TOOLCALL>',
    "granite": f'<|tool_call|>[{{"name": "get_weather", "arguments": {ARGS}}}]',
    "fallback": f'[TOOL_REQUEST]{{"name": "get_weather", "arguments": {ARGS}}}[END_TOOL_REQUEST]',
}
FAMILY_TEMPLATES = {family: template for family, template in reversed(TEMPLATES) if template}


@pytest.mark.parametrize("family", sorted(OUTPUTS))
@pytest.mark.parametrize("stream", [False, True])
def test_family_round_trip(openai_client: OpenAI, models_dir: Path, family: str, stream: bool) -> None:
    path = models_dir / "families" / f"{family}-GGUF" / f"{family}-F32.gguf"
    if not path.exists():
        # Rendered as ChatML; the family's own markers sit in a comment, where detection finds them.
        template = CHATML_TEMPLATE + "{# " + FAMILY_TEMPLATES.get(family, "") + " #}"
        write_tiny_model(path, chat_template=template)
    args = {
        "model": f"families/{family}",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": WEATHER,
        "extra_body": {
            "grammar": f"root ::= {json.dumps(OUTPUTS[family], ensure_ascii=False)}",
            "max_tokens": 300,
        },
    }
    if stream:
        with openai_client.chat.completions.stream(**args) as events:  # type: ignore[arg-type]
            reply = events.get_final_completion()
    else:
        reply = openai_client.chat.completions.create(**args)  # type: ignore[call-overload]
    message = reply.choices[0].message
    assert reply.choices[0].finish_reason == "tool_calls", message
    (call,) = message.tool_calls or []
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert not (message.content or "").strip(), message.content  # no markup leaks into content
