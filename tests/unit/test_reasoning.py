"""Reasoning split off streamed text, alone and in front of a tool-call parser."""

from __future__ import annotations

import json

import pytest

from lm_jupyter.chat.events import StreamEvent, ToolCallArgs, ToolCallStart
from lm_jupyter.chat.families import make_parser
from lm_jupyter.chat.reasoning import ReasoningDelta, ReasoningSplitter, TextDelta, reasoning_markers
from tests.unit.test_toolcalls import chunkings


def split(splitter: ReasoningSplitter, pieces: list[str]) -> tuple[str, str]:
    """(reasoning, content) after feeding the pieces and finishing."""
    events: list[TextDelta | ReasoningDelta] = []
    for piece in pieces:
        events += splitter.feed(piece)
    events += splitter.finish()
    assert all(event.text for event in events)
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    content = "".join(e.text for e in events if isinstance(e, TextDelta))
    return reasoning, content


SPLITS = [
    # (id, start, end, inside, text, reasoning, content)
    (
        "qwen3",
        "<think>",
        "</think>",
        False,
        "<think>\nThe user greets me in German. Antworte auf Deutsch 🇩🇪.\n</think>\n\nHallo! Wie geht's?",
        "The user greets me in German. Antworte auf Deutsch 🇩🇪.",
        "Hallo! Wie geht's?",
    ),
    (
        "r1-prompt-opened",
        "<think>",
        "</think>",
        True,
        "Okay, 2+2 is 4. Check: 4 < 5 and <b> is not a tag.\n</think>\n\nThe answer is **4**.",
        "Okay, 2+2 is 4. Check: 4 < 5 and <b> is not a tag.",
        "The answer is **4**.",
    ),
    (
        "opened-and-repeated",
        "<think>",
        "</think>",
        True,
        "<think>\nhmm\n</think>answer",
        "hmm",
        "answer",
    ),
    (
        "no-reasoning",
        "<think>",
        "</think>",
        False,
        "Just an answer with </think> in it.",
        "",
        "Just an answer with </think> in it.",
    ),
    (
        "seed",
        "<seed:think>",
        "</seed:think>",
        False,
        "<seed:think>東京 first</seed:think>Tokyo.",
        "東京 first",
        "Tokyo.",
    ),
    (
        "cut-off-stays-reasoning",
        "<think>",
        "</think>",
        False,
        "<think>\nStill thinking about Zür",
        "Still thinking about Zür",
        "",
    ),
    ("cut-off-inside", "<think>", "</think>", True, "Still thinking </thi", "Still thinking </thi", ""),
    ("magistral", "[THINK]", "[/THINK]", False, "[THINK]a[b]c[/THINK]Done.", "a[b]c", "Done."),
    ("leading-space", "<think>", "</think>", False, "\n\n<think>x</think>y", "x", "y"),
    ("leading-space-kept-in-answer", "<think>", "</think>", False, "  plain", "", "  plain"),
    ("partial-marker-is-text", "<think>", "</think>", False, "a <thin b", "", "a <thin b"),
]


@pytest.mark.parametrize(
    ("start", "end", "inside", "text", "reasoning", "content"),
    [case[1:] for case in SPLITS],
    ids=[case[0] for case in SPLITS],
)
def test_split(start: str, end: str, inside: bool, text: str, reasoning: str, content: str) -> None:
    for label, pieces in chunkings(text):
        assert split(ReasoningSplitter(start, end, inside=inside), pieces) == (reasoning, content), label


def test_reasoning_and_text_stream_promptly() -> None:
    splitter = ReasoningSplitter()
    assert splitter.feed("<thi") == []
    assert splitter.feed("nk>\nStep one") == [ReasoningDelta("Step one")]
    assert splitter.feed(". </th") == [ReasoningDelta(". ")]
    assert splitter.feed("ink>\n\nThe answer") == [TextDelta("The answer")]
    assert splitter.feed(" is <b>") == [TextDelta(" is <b>")]
    assert splitter.finish() == []


def test_thinking_about_a_tool_call_does_not_call_it() -> None:
    """The server feeds the tool parser only answer text (LM Studio BT#1592)."""
    text = (
        "<think>\nI could write <tool_call>\n"
        '{"name": "delete_files", "arguments": {"path": "/"}}\n</tool_call> but better not.\n</think>\n\n'
        "Checking the weather instead.\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"location": "Zürich"}}\n</tool_call>'
    )
    for label, pieces in chunkings(text):
        splitter = ReasoningSplitter()
        tools = make_parser("hermes")
        events: list[StreamEvent] = []
        for piece in pieces:
            for event in splitter.feed(piece):
                events += tools.feed(event.text) if isinstance(event, TextDelta) else [event]
        for event in splitter.finish():
            events += tools.feed(event.text) if isinstance(event, TextDelta) else [event]
        events += tools.finish()
        reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
        content = "".join(e.text for e in events if isinstance(e, TextDelta))
        starts = [e for e in events if isinstance(e, ToolCallStart)]
        args = "".join(e.text for e in events if isinstance(e, ToolCallArgs))
        assert "delete_files" in reasoning and "<tool_call>" in reasoning, label
        assert content == "Checking the weather instead.\n", label
        assert [s.name for s in starts] == ["get_weather"], label
        assert json.loads(args) == {"location": "Zürich"}, label
        assert tools.calls == 1


R1_TEMPLATE = (
    "{% if not ns.is_tool %}{{'<\uff5cAssistant\uff5c>' + content"
    " + '<\uff5cend\u2581of\u2581sentence\uff5c>'}}{% endif %}"
    "{% if add_generation_prompt and not ns.is_tool %}{{'<\uff5cAssistant\uff5c><think>\\n'}}{% endif %}"
)
QWEN3_TEMPLATE = (
    "{{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n')"
    " + '\\n</think>\\n\\n' }}"
    "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n"
    "    {%- if enable_thinking is defined and enable_thinking is false %}\n"
    "        {{- '<think>\\n\\n</think>\\n\\n' }}\n    {%- endif %}\n{%- endif %}"
)
QWEN3_THINKING_TEMPLATE = (
    "{{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content + '\\n</think>\\n\\n' }}"
    "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n<think>\\n' }}\n{%- endif %}"
)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (R1_TEMPLATE, ("<think>", "</think>", True)),
        (QWEN3_TEMPLATE, ("<think>", "</think>", False)),
        (QWEN3_THINKING_TEMPLATE, ("<think>", "</think>", True)),
        (
            "{{- '<seed:think>' + message.reasoning_content + '</seed:think>' }}",
            ("<seed:think>", "</seed:think>", False),
        ),
        (
            "{%- if message.reasoning_content %}[THINK]{{ message.reasoning_content }}[/THINK]",
            ("[THINK]", "[/THINK]", False),
        ),
        ("{{- '<|start|>assistant<|channel|>analysis<|message|>' + thinking + '<|end|>' }}", None),
        ("{{- '<|im_start|>assistant\\n' }}<tool_call>", None),
        ("", None),
        (None, None),
    ],
    ids=[
        "deepseek-r1",
        "qwen3",
        "qwen3-thinking",
        "seed-oss",
        "magistral",
        "gpt-oss",
        "qwen2.5",
        "empty",
        "none",
    ],
)
def test_reasoning_markers(template: str | None, expected: tuple[str, str, bool] | None) -> None:
    assert reasoning_markers(template) == expected
