"""The family registry: detection from chat templates, and each record agreeing with itself."""

from __future__ import annotations

import json

import pytest

from lm_jupyter.chat.constraints import forced_calls
from lm_jupyter.chat.events import TextDelta, ToolCallArgs, ToolCallStart
from lm_jupyter.chat.families import FALLBACK, FAMILIES, Family, detect_family
from tests.unit.test_toolcalls import ds

TEMPLATES = [
    (
        "hermes",  # Qwen 2.5
        '{{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and '
        "arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n"
        '{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}',
    ),
    (
        "hermes",  # Qwen 3 (also reasons with <think>)
        "{%- if reasoning_content %}"
        "{{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content }}"
        '{%- endif %}{{- \'<tool_call>\\n{"name": "\' }}{{- tool_call.name }}',
    ),
    (
        "qwen3_coder",
        "{{- '\\n<tool_call>\\n<function=' + tool_call.name + '>\\n' }}"
        "{%- for args_name, args_value in tool_call.arguments|items %}"
        "{{- '<parameter=' + args_name + '>\\n' }}",
    ),
    (
        "seed_oss",
        "{{- '<seed:tool_call>\\n<function=' + tool_call.function.name + '>\\n' }}"
        "{{- '<parameter=' + arg_name + '>' + arg_value + '</parameter>\\n' }}",
    ),
    (
        "llama3",  # Llama 3.1
        '{%- if message.role == "ipython" or message.role == "tool" %}'
        '{{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}'
        "{{- '<|python_tag|>' + tool_call.name + '.call(' }}{{- '{\"name\": \"' + tool_call.name + '\", ' }}",
    ),
    ("llama3", '{{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}{{- \'"parameters": \' }}'),
    (
        "mistral",
        '{%- if message.tool_calls %}{{- "[TOOL_CALLS] [" }}{%- for tool_call in message.tool_calls %}',
    ),
    ("mistral", "{{- '[TOOL_CALLS]' + tool_call['function']['name'] + '[ARGS]' + arguments }}"),
    (
        "deepseek",
        "{{'<\uff5cAssistant\uff5c>"
        + ds("tool calls begin")
        + ds("tool call begin")
        + "' + tool['type'] + '"
        + ds("tool sep")
        + "' + tool['function']['name'] + '\\n' + '```json'}}",
    ),
    (
        "gpt_oss",
        '{{- "<|start|>assistant<|channel|>commentary to=" + tool_call.name'
        ' + " <|constrain|>json<|message|>" }}',
    ),
    (
        "functionary_v3",
        "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n>>>all\\n' + message['content'] }}",
    ),
    (
        "nemotron_nano_v2",
        "{{- '<TOOLCALL>[' }}{%- for tool in message.tool_calls %}{{- ']</TOOLCALL>' }}<think>",
    ),
    (
        "granite",
        "{{- '<|start_of_role|>' + message['role'] + '<|end_of_role|><|tool_call|>'"
        " + message['tool_calls'] | tojson }}",
    ),
    ("fallback", "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"),
    (
        "fallback",
        "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] }}",
    ),
    ("fallback", ""),
    ("fallback", None),
]


@pytest.mark.parametrize(("family", "template"), TEMPLATES)
def test_detect_family(family: str, template: str | None) -> None:
    assert detect_family(template).name == family


def test_detection_tries_families_by_priority() -> None:
    priorities = [family.priority for family in FAMILIES.values()]
    assert priorities == sorted(priorities) and len(set(priorities)) == len(priorities)
    assert list(FAMILIES)[-1] == "fallback" and FALLBACK.markers == ()


WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.mark.parametrize(
    "family", [f for f in FAMILIES.values() if f.call_wrapper is not None], ids=lambda f: f.name
)
def test_a_forced_call_is_read_back_by_its_familys_parser(family: Family) -> None:
    """What the grammar makes the model write (wrapper + arguments) is one call to the parser."""
    tools = [{"function": {"name": "get_weather", "parameters": WEATHER}}]
    forced = forced_calls(family, tools, None, several=False)
    (alternative,) = forced["alternatives"]
    text = alternative["prefix"] + json.dumps({"city": "Zürich"}) + alternative["suffix"]
    parser = family.parser(tool_names=["get_weather"])
    events = parser.feed(text) + parser.finish()
    assert [e.name for e in events if isinstance(e, ToolCallStart)] == ["get_weather"]
    assert json.loads("".join(e.text for e in events if isinstance(e, ToolCallArgs))) == {"city": "Zürich"}
    assert not "".join(e.text for e in events if isinstance(e, TextDelta)).strip()


def test_a_family_that_parses_its_own_reasoning_parses_every_reply() -> None:
    """Otherwise its reasoning would reach the answer of a request without tools."""
    assert all(family.always_parsed for family in FAMILIES.values() if family.parses_reasoning)
