"""Streaming tool-call parsers: realistic transcripts per family, fed whole, a character at a
time and in random chunkings, must give the same content, reasoning and calls."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from lm_jupyter.chat import toolcalls
from lm_jupyter.chat.events import ReasoningDelta, StreamEvent, TextDelta, ToolCallArgs, ToolCallStart
from lm_jupyter.chat.families import FAMILIES, make_parser
from lm_jupyter.chat.toolcalls import ToolCallParser


def ds(words: str, space: str = "\u2581") -> str:
    """A DeepSeek special token, e.g. ds("tool sep"); written with escapes (fullwidth bars)."""
    return "<\uff5c" + space.join(words.split()) + "\uff5c>"


# --- harness -------------------------------------------------------------------------------------


@dataclass
class Outcome:
    content: str = ""
    reasoning: str = ""
    calls: list[tuple[str, str]] = field(default_factory=list)  # (name, arguments JSON text)
    args_events: list[int] = field(default_factory=list)  # ToolCallArgs events per call

    def parsed_calls(self) -> list[tuple[str, Any]]:
        return [(name, json.loads(args)) for name, args in self.calls]


def collapse(events: list[StreamEvent]) -> Outcome:
    """Fold events into a reply, checking the invariants every stream must keep."""
    out = Outcome()
    ids: set[str] = set()
    for event in events:
        if isinstance(event, TextDelta):
            assert event.text
            out.content += event.text
        elif isinstance(event, ReasoningDelta):
            assert event.text
            out.reasoning += event.text
        elif isinstance(event, ToolCallStart):
            assert event.index == len(out.calls), "calls are numbered 0, 1, ... in order"
            assert event.name, "a call starts with its name"
            assert event.id not in ids
            ids.add(event.id)
            out.calls.append((event.name, ""))
            out.args_events.append(0)
        else:
            assert isinstance(event, ToolCallArgs)
            assert event.index == len(out.calls) - 1, "arguments belong to the call just started"
            assert event.text
            name, args = out.calls[event.index]
            out.calls[event.index] = (name, args + event.text)
            out.args_events[event.index] += 1
    return out


def run(parser: ToolCallParser, pieces: list[str]) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    for piece in pieces:
        events += parser.feed(piece)
    events += parser.finish()
    assert not getattr(parser, "_crashed", False), "the parser fell back after an internal error"
    return events


def chunkings(text: str) -> Iterator[tuple[str, list[str]]]:
    yield "whole", [text]
    yield "chars", list(text)
    rng = random.Random(20240601)
    for round_ in range(4):
        cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(1, 16))))
        yield f"random{round_}", [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def counter_ids() -> Any:
    count = iter(range(1_000_000))
    return lambda: f"call_{next(count)}"


def parse(family: str, pieces: list[str], **kwargs: Any) -> Outcome:
    return collapse(run(make_parser(family, new_id=counter_ids(), **kwargs), pieces))


# --- transcripts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    family: str
    text: str
    content: str = ""
    reasoning: str = ""
    calls: tuple[tuple[str, Any], ...] = ()
    held: tuple[int, ...] = ()  # calls whose arguments come before their name (sent at the name)


WEATHER_ZURICH = ("get_weather", {"location": "Zürich", "unit": "celsius"})
WEATHER_TOKYO = ("get_weather", {"location": "東京", "unit": "celsius"})

CASES = [
    # Hermes 2 Pro / Qwen 2.5 / Qwen 3: JSON inside <tool_call> tags, one block per call.
    Case(
        "hermes-parallel",
        "hermes",
        "I'll check both cities.\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"location": "Zürich", "unit": "celsius"}}\n'
        "</tool_call>\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"location": "\\u6771\\u4eac", "unit": "celsius"}}\n'
        "</tool_call>",
        content="I'll check both cities.\n",
        calls=(WEATHER_ZURICH, WEATHER_TOKYO),
    ),
    Case(
        "hermes-nested-unicode",
        "hermes",
        '<tool_call>\n{"name": "send_message", "arguments": {"to": ["ana@example.com"], '
        '"body": "Bonne journée 🌞 {not a brace} \\"quoted\\" ]", '
        '"options": {"priority": 2, "silent": false, "ratio": -1.5e3, "tags": null}}}\n</tool_call>',
        calls=(
            (
                "send_message",
                {
                    "to": ["ana@example.com"],
                    "body": 'Bonne journée 🌞 {not a brace} "quoted" ]',
                    "options": {"priority": 2, "silent": False, "ratio": -1500.0, "tags": None},
                },
            ),
        ),
    ),
    Case(
        "hermes-answer",
        "hermes",
        "The capital of France is Paris. Use <b>bold</b>.",
        "The capital of France is Paris. Use <b>bold</b>.",
    ),
    Case(
        "hermes-args-before-name-and-string-args",
        "hermes",
        '<tool_call>{"arguments": {"q": "a"}, "name": "search"}</tool_call>'
        '<tool_call>{"name": "search", '
        '"arguments": "{\\"q\\": \\"b \\\\u00fc \\\\ud83d\\\\ude00\\"}"}</tool_call>',
        calls=(("search", {"q": "a"}), ("search", {"q": "b ü 😀"})),
        held=(0,),
    ),
    Case(
        "hermes-no-arguments-then-text",
        "hermes",
        '<tool_call>\n{"name": "list_files"}\n</tool_call>\n\nDone.',
        content="Done.",
        calls=(("list_files", {}),),
    ),
    # Qwen3-Coder: XML parameters; values are strings unless they are JSON literals/objects.
    Case(
        "qwen3_coder-values",
        "qwen3_coder",
        "I'll write the file.\n<tool_call>\n<function=write_file>\n"
        "<parameter=path>\n/tmp/notes.md\n</parameter>\n"
        '<parameter=content>\n# Notes\nZürich — 東京 🚄\n"quoted" {x} and a tab\t.\n</parameter>\n'
        "<parameter=overwrite>\ntrue\n</parameter>\n"
        '<parameter=options>\n{"mode": 420, "tags": ["a"]}\n</parameter>\n'
        "<parameter=count>\n-3.5\n</parameter>\n"
        "<parameter=date>\n2024-01-01\n</parameter>\n"
        "<parameter=label>\n42 apples\n</parameter>\n"
        "<parameter=story>\ntrue story\n</parameter>\n"
        "<parameter=empty>\n</parameter>\n"
        "</function>\n</tool_call>",
        content="I'll write the file.\n",
        calls=(
            (
                "write_file",
                {
                    "path": "/tmp/notes.md",
                    "content": '# Notes\nZürich — 東京 🚄\n"quoted" {x} and a tab\t.',
                    "overwrite": True,
                    "options": {"mode": 420, "tags": ["a"]},
                    "count": -3.5,
                    "date": "2024-01-01",
                    "label": "42 apples",
                    "story": "true story",
                    "empty": "",
                },
            ),
        ),
    ),
    Case(
        "qwen3_coder-parallel",
        "qwen3_coder",
        "<tool_call>\n<function=get_weather>\n<parameter=location>\nZürich\n</parameter>\n"
        "<parameter=unit>\ncelsius\n</parameter>\n</function>\n</tool_call>\n"
        "<tool_call>\n<function=get_weather>\n<parameter=location>\n東京\n</parameter>\n"
        "<parameter=unit>\ncelsius\n</parameter>\n</function>\n</tool_call>\n"
        "<tool_call>\n<function=list_files>\n</function>\n</tool_call>",
        calls=(WEATHER_ZURICH, WEATHER_TOKYO, ("list_files", {})),
    ),
    Case(
        "qwen3_coder-lenient",  # no wrapper, and no </parameter> before the next tag (vLLM accepts both)
        "qwen3_coder",
        "<function=get_weather>\n<parameter=location>\nZürich\n<parameter=unit>\ncelsius\n</function>",
        calls=(WEATHER_ZURICH,),
    ),
    # Seed-OSS: the same XML inside <seed:tool_call>.
    Case(
        "seed_oss",
        "seed_oss",
        "<seed:tool_call>\n<function=get_weather>\n<parameter=location>Zürich</parameter>\n"
        "<parameter=unit>celsius</parameter>\n</function>\n</seed:tool_call>"
        "<seed:tool_call>\n<function=get_weather>\n<parameter=location>東京</parameter>\n"
        "<parameter=unit>celsius</parameter>\n</function>\n</seed:tool_call>",
        calls=(WEATHER_ZURICH, WEATHER_TOKYO),
    ),
    # Llama 3.1-3.3: the whole reply is the JSON call(s).
    Case(
        "llama3-call",
        "llama3",
        '{"name": "get_weather", "parameters": {"location": "Zürich", "unit": "celsius"}}',
        calls=(WEATHER_ZURICH,),
    ),
    Case(
        "llama3-python-tag-parallel",
        "llama3",
        '<|python_tag|>{"name": "get_weather", "parameters": {"location": "Zürich", "unit": "celsius"}}; '
        '{"type": "function", "name": "get_weather", "parameters": {"location": "東京", "unit": "celsius"}}',
        calls=(WEATHER_ZURICH, WEATHER_TOKYO),
    ),
    Case(
        "llama3-leading-space-and-eom",
        "llama3",
        '\n\n{"name": "get_weather", "parameters": {"location": "Zürich", "unit": "celsius"}}<|eom_id|>',
        calls=(WEATHER_ZURICH,),
    ),
    Case("llama3-answer", "llama3", "  Zürich is in Switzerland. {x}", "  Zürich is in Switzerland. {x}"),
    Case("llama3-json-answer", "llama3", '{"answer": 42, "name": "x"}', '{"answer": 42, "name": "x"}'),
    # Mistral: JSON array before v11, name[ARGS]{...} from v11 on.
    Case(
        "mistral-array",
        "mistral",
        '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"location": "Zürich", "unit": "celsius"}, '
        '"id": "a1b2c3d4e"}, {"name": "get_weather", "arguments": {"location": "東京", "unit": "celsius"}, '
        '"id": "f5g6h7i8j"}]',
        calls=(WEATHER_ZURICH, WEATHER_TOKYO),
    ),
    Case(
        "mistral-v11",
        "mistral",
        "Checking.[TOOL_CALLS]get_weather[ARGS]"
        '{"location": "Zürich", "unit": "celsius"}'
        '[TOOL_CALLS] get_weather [CALL_ID]a1b2c3d4e[ARGS]{"location": "東京", "unit": "celsius"}',
        content="Checking.",
        calls=(WEATHER_ZURICH, WEATHER_TOKYO),
    ),
    # DeepSeek V3/R1 (type + fenced JSON) and V3.1 (name + bare JSON).
    Case(
        "deepseek-v3",
        "deepseek",
        "Let me look.\n\n"
        + ds("tool calls begin")
        + ds("tool call begin")
        + "function"
        + ds("tool sep")
        + 'get_weather\n```json\n{"location": "Zürich", "unit": "celsius"}\n```'
        + ds("tool call end")
        + "\n"
        + ds("tool call begin")
        + "function"
        + ds("tool sep")
        + 'get_weather\n```json\n{"location": "東京", "unit": "celsius"}\n```'
        + ds("tool call end")
        + ds("tool calls end"),
        content="Let me look.\n\n",
        calls=(WEATHER_ZURICH, WEATHER_TOKYO),
    ),
    Case(
        "deepseek-v31",
        "deepseek",
        ds("tool calls begin")
        + ds("tool call begin")
        + "get_weather"
        + ds("tool sep")
        + '{"location": "Zürich", "unit": "celsius"}'
        + ds("tool call end")
        + ds("tool calls end"),
        calls=(WEATHER_ZURICH,),
    ),
    Case(
        "deepseek-distill-spelling",
        "deepseek",
        ds("tool calls begin", "_")
        + ds("tool call begin")
        + "function"
        + ds("tool sep")
        + 'get_weather\n```json\n{"location": "Zürich", "unit": "celsius"}\n```'
        + ds("tool call end")
        + ds("tool calls end"),
        calls=(WEATHER_ZURICH,),
    ),
    # gpt-oss Harmony: analysis is reasoning, final is the answer, to=functions.f is a call.
    Case(
        "gpt_oss-call",
        "gpt_oss",
        "<|channel|>analysis<|message|>User wants the weather in Zürich. Call get_weather.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"
        '{"location":"Zürich","unit":"celsius"}<|call|>',
        reasoning="User wants the weather in Zürich. Call get_weather.",
        calls=(WEATHER_ZURICH,),
    ),
    Case(
        "gpt_oss-final",
        "gpt_oss",
        "<|channel|>analysis<|message|>Simple greeting.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>Hello! 👋 How can I help?<|return|>",
        content="Hello! 👋 How can I help?",
        reasoning="Simple greeting.",
    ),
    Case(
        "gpt_oss-recipient-in-role-parallel",
        "gpt_oss",
        "<|channel|>analysis<|message|>Two cities.<|end|>"
        "<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>"
        '{"location": "Zürich", "unit": "celsius"}<|call|>'
        "<|start|>assistant<|channel|>commentary<|message|>Now Tokyo.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"
        '{"location": "東京", "unit": "celsius"}<|call|>',
        content="Now Tokyo.",
        reasoning="Two cities.",
        calls=(WEATHER_ZURICH, WEATHER_TOKYO),
    ),
    # Functionary v3.2: >>>name\n per part; the prompt already ends with >>>.
    Case(
        "functionary-parallel",
        "functionary_v3",
        "all\nI'll check both.>>>get_weather\n"
        '{"location": "Zürich", "unit": "celsius"}>>>get_weather\n{"location": "東京", "unit": "celsius"}',
        content="I'll check both.",
        calls=(WEATHER_ZURICH, WEATHER_TOKYO),
    ),
    Case(
        "functionary-direct-call-and-raw-python",
        "functionary_v3",
        'get_weather\n{"location": "Zürich", "unit": "celsius"}>>>python\nprint("日本")\nx = {1: 2}',
        calls=(WEATHER_ZURICH, ("python", {"code": 'print("日本")\nx = {1: 2}'})),
    ),
    Case(
        "functionary-answer",
        "functionary_v3",
        "all\nUse >>> prompts in Python.",
        "Use >>> prompts in Python.",
    ),
    # NVIDIA Nemotron Nano v2 and IBM Granite 3: JSON arrays after a marker.
    Case(
        "nemotron",
        "nemotron_nano_v2",
        "<TOOLCALL>["
        '{"name": "get_weather", "arguments": {"location": "Zürich", "unit": "celsius"}}, '
        '{"name": "get_weather", "arguments": {"location": "東京", "unit": "celsius"}}'
        "]</TOOLCALL>",
        calls=(WEATHER_ZURICH, WEATHER_TOKYO),
    ),
    Case(
        "granite",
        "granite",
        '<|tool_call|>[{"arguments": {"location": "Zürich", "unit": "celsius"}, "name": "get_weather"}, '
        '{"name": "get_weather", "arguments": {"location": "東京", "unit": "celsius"}}]',
        calls=(WEATHER_ZURICH, WEATHER_TOKYO),
        held=(0,),
    ),
    # LM Studio's default format, for templates without tool support.
    Case(
        "fallback",
        "fallback",
        "I'll look that up.\n"
        '[TOOL_REQUEST]{"name": "get_weather", "arguments": {"location": "Zürich", "unit": "celsius"}}'
        "[END_TOOL_REQUEST]\n"
        '[TOOL_REQUEST]{"name": "get_weather", "arguments": {"location": "東京", "unit": "celsius"}}'
        "[END_TOOL_REQUEST]",
        content="I'll look that up.\n",
        calls=(WEATHER_ZURICH, WEATHER_TOKYO),
    ),
]
CALL_CASES = [case for case in CASES if case.calls]


def test_every_family_has_a_transcript() -> None:
    assert {case.family for case in CALL_CASES} == set(FAMILIES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_transcript_gives_the_same_reply_however_it_is_chunked(case: Case) -> None:
    for label, pieces in chunkings(case.text):
        out = parse(case.family, pieces)
        assert out.content == case.content, label
        assert out.reasoning == case.reasoning, label
        assert out.parsed_calls() == [(name, args) for name, args in case.calls], label


@pytest.mark.parametrize("case", CALL_CASES, ids=lambda case: case.id)
def test_arguments_stream_while_generated(case: Case) -> None:
    parser = make_parser(case.family)
    started_at: dict[int, int] = {}
    last_args_at: dict[int, int] = {}
    events: list[StreamEvent] = []
    for fed, char in enumerate(case.text, 1):
        for event in parser.feed(char):
            if isinstance(event, ToolCallStart):
                started_at[event.index] = fed
            elif isinstance(event, ToolCallArgs):
                last_args_at[event.index] = fed
            events.append(event)
    events += parser.finish()
    out = collapse(events)
    for index, (_, args) in enumerate(case.calls):
        if args and index not in case.held:
            assert out.args_events[index] > 1, (index, out.args_events)
            assert started_at[index] < last_args_at[index], "announced before its arguments end"
    assert parser.calls == len(case.calls)


@pytest.mark.parametrize(
    "case",
    # Raw python code ends only with the text, so there finish() legitimately closes the call.
    [case for case in CALL_CASES if case.id != "functionary-direct-call-and-raw-python"],
    ids=lambda case: case.id,
)
def test_finish_after_complete_calls_adds_nothing(case: Case) -> None:
    parser = make_parser(case.family)
    parser.feed(case.text)
    assert parser.finish() == []
    assert parser.finish() == []


# --- promptness ----------------------------------------------------------------------------------


def test_text_streams_at_once_holding_back_only_a_possible_marker() -> None:
    parser = make_parser("hermes", new_id=lambda: "call_1")
    assert parser.feed("Let me check. <to") == [TextDelta("Let me check. ")]
    assert parser.feed("ol") == []
    assert parser.feed("bar") == [TextDelta("<toolbar")]
    assert parser.feed("<tool_call>") == []
    assert parser.feed('\n{"name": "get_wea') == []
    assert parser.feed('ther"') == [ToolCallStart(0, "call_1", "get_weather")]
    assert parser.feed(', "arguments": {"loc') == [ToolCallArgs(0, '{"loc')]
    assert parser.feed('ation": "Zürich"}}\n</tool_call>') == [ToolCallArgs(0, 'ation": "Zürich"}')]
    assert parser.finish() == []
    assert parser.calls == 1


def test_xml_call_starts_at_the_function_tag_and_synthesises_json() -> None:
    parser = make_parser("qwen3_coder", new_id=lambda: "call_1")
    assert parser.feed("<tool_call>\n<function=get_weather") == []
    assert parser.feed(">") == [ToolCallStart(0, "call_1", "get_weather")]
    assert parser.feed("\n<parameter=location>\nZü") == [ToolCallArgs(0, '{"location": "Zü')]
    assert parser.feed("rich\n") == [ToolCallArgs(0, "rich")]  # the newline may precede </parameter>
    assert parser.feed("</parameter>\n") == [ToolCallArgs(0, '"')]
    assert parser.feed("</function>\n</tool_call>") == [ToolCallArgs(0, "}")]


@pytest.mark.parametrize(
    ("family", "first_piece"),
    [
        ("llama3", "Sure"),
        ("functionary_v3", "all\nSure"),
        ("gpt_oss", "<|channel|>final<|message|>Sure"),
        ("mistral", "Sure"),
        ("deepseek", "Sure"),
    ],
)
def test_answer_text_is_not_held_back(family: str, first_piece: str) -> None:
    assert make_parser(family).feed(first_piece) == [TextDelta("Sure")]


def test_gpt_oss_reasoning_streams() -> None:
    parser = make_parser("gpt_oss")
    assert parser.feed("<|channel|>analysis<|message|>Think") == [ReasoningDelta("Think")]
    assert parser.feed("ing<|e") == [ReasoningDelta("ing")]


# --- malformed and cut-off output ----------------------------------------------------------------

MALFORMED = [
    ("hermes", '<tool_call>\n{"arguments": {"a": 1}}\n</tool_call>'),  # no name
    ("hermes", "<tool_call>\n{name: get_weather}\n</tool_call>"),  # not JSON
    ("hermes", '<tool_call>\n{"name": "get_wea'),  # cut off before the name is complete
    ("hermes", "<tool_call>"),
    ("hermes", "Wrap calls in a <tool_call> tag."),
    ("hermes", "It ends with <tool_"),
    ("hermes", '<tool_call>{"name": "", "arguments": {}}</tool_call>'),  # empty name
    ("qwen3_coder", "<tool_call>\n<function=get_weather"),
    ("qwen3_coder", "<tool_call>\nplain words\n</tool_call>"),
    ("seed_oss", "<seed:tool_call>\n<function=>\n</function>\n</seed:tool_call>"),
    ("llama3", '{"name": 42, "parameters": {}}'),
    ("llama3", '<|python_tag|>brave_search.call(query="x")'),
    ("mistral", "[TOOL_CALLS]"),
    ("mistral", "[TOOL_CALLS] not a call"),
    ("mistral", "[TOOL_CALLS][{oops}]"),
    ("deepseek", ds("tool calls begin") + "garbage"),
    ("deepseek", ds("tool calls begin") + ds("tool call begin") + "function" + ds("tool sep")),
    ("gpt_oss", "<|channel|>commentary to=functions.get_weather <|constrain|>json"),
    ("gpt_oss", "Plain text without any Harmony header."),
    ("functionary_v3", '>>>get_weather\nnot json {"a": 1}'),
    ("functionary_v3", "Hello there"),
    ("nemotron_nano_v2", "<TOOLCALL>oops</TOOLCALL>"),
    ("granite", '<|tool_call|>[{"arguments": {"x": 1}}]'),
    ("fallback", "[TOOL_REQUEST]{'name': 'x'}[END_TOOL_REQUEST]"),
]


@pytest.mark.parametrize(("family", "text"), MALFORMED)
def test_malformed_call_comes_back_as_the_original_text(family: str, text: str) -> None:
    for label, pieces in chunkings(text):
        out = parse(family, pieces)
        assert (out.content, out.reasoning, out.calls) == (text, "", []), label


def test_bare_function_tag_needs_an_offered_name() -> None:
    # Qwen3-Coder sometimes drops the <tool_call> wrapper, so a bare <function=...> starts a call;
    # with the offered names known, prose that shows such a tag stays prose.
    text = "Use <function=name> tags."
    assert parse("qwen3_coder", [text], tool_names=["get_weather"]).content == text


def test_malformed_call_then_a_good_one() -> None:
    text = '<tool_call>{bad}</tool_call>\n<tool_call>{"name": "f", "arguments": {"x": 1}}</tool_call>'
    for label, pieces in chunkings(text):
        out = parse("hermes", pieces)
        assert out.content == "<tool_call>{bad}</tool_call>\n", label
        assert out.parsed_calls() == [("f", {"x": 1})], label


@pytest.mark.parametrize(
    ("family", "text", "name", "args"),
    [
        (
            "hermes",
            '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Zür',
            "get_weather",
            '{"location": "Zür',
        ),
        ("llama3", '{"name": "get_weather", "parameters": {"location": ', "get_weather", '{"location": '),
        (
            "qwen3_coder",
            "<tool_call>\n<function=get_weather>\n<parameter=location>\nZür",
            "get_weather",
            '{"location": "Zür',
        ),
        ("gpt_oss", '<|channel|>commentary to=functions.get_weather<|message|>{"loc', "get_weather", '{"loc'),
        ("mistral", '[TOOL_CALLS]get_weather[ARGS]{"location"', "get_weather", '{"location"'),
    ],
)
def test_call_cut_off_after_its_name_keeps_what_was_streamed(
    family: str, text: str, name: str, args: str
) -> None:
    # Announced calls cannot be recalled; truncated arguments stay as generated, like OpenAI's
    # with finish_reason "length".
    for label, pieces in chunkings(text):
        out = parse(family, pieces)
        assert (out.content, out.calls) == ("", [(name, args)]), label


def test_control_characters_in_argument_strings_are_escaped() -> None:
    out = parse(
        "hermes", ['<tool_call>{"name": "f", "arguments": {"text": "line 1\nline 2\tend"}}</tool_call>']
    )
    assert out.parsed_calls() == [("f", {"text": "line 1\nline 2\tend"})]


# --- tool names ----------------------------------------------------------------------------------


def test_offered_names_filter_and_canonicalise_calls() -> None:
    text = (
        '<tool_call>{"name": "getWeather", "arguments": {}}</tool_call>'
        '<tool_call>{"name": "delete_everything", "arguments": {}}</tool_call>'
    )
    out = parse("hermes", [text], tool_names=["get_weather"])
    assert out.calls == [("get_weather", "{}")]
    assert out.content == '<tool_call>{"name": "delete_everything", "arguments": {}}</tool_call>'
    assert parse("hermes", [text]).calls == [("getWeather", "{}"), ("delete_everything", "{}")]


def test_unknown_family_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown tool-call family"):
        make_parser("nope")


def test_default_call_id_is_openai_style() -> None:
    ids = {toolcalls.default_call_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"call_[A-Za-z0-9]{24}", call_id) for call_id in ids)


def test_hermes_accepts_a_fenced_json_call_but_not_other_code_blocks() -> None:
    """Qwen 2.5 Coder 1.5B writes its calls as ```json blocks (seen with the real model)."""
    fenced = 'Sure.\n```json\n{\n  "name": "get_weather",\n  "arguments": {"city": "Zürich"}\n}\n```'
    for pieces in ([fenced], list(fenced)):
        parser = make_parser("hermes", tool_names=["get_weather"])
        events = [e for piece in pieces for e in parser.feed(piece)] + parser.finish()
        text = "".join(e.text for e in events if isinstance(e, TextDelta))
        args = "".join(e.text for e in events if isinstance(e, ToolCallArgs))
        assert text.strip() == "Sure." and parser.calls == 1
        assert json.loads(args) == {"city": "Zürich"}
    code = 'Example:\n```json\n{"name": "not_a_tool", "arguments": {}}\n```\nand {"a": 1}'
    parser = make_parser("hermes", tool_names=["get_weather"])
    events = parser.feed(code) + parser.finish()
    assert parser.calls == 0 and "".join(e.text for e in events if isinstance(e, TextDelta)) == code


def _hermes_outcome(
    text: str, pieces: list[str], tools: tuple[str, ...] | None = ("convert_temperature",)
) -> tuple[str, str, int]:
    parser = make_parser("hermes", tool_names=None if tools is None else list(tools))
    events = [e for piece in pieces for e in parser.feed(piece)] + parser.finish()
    shown = "".join(e.text for e in events if isinstance(e, TextDelta))
    return shown, "".join(e.text for e in events if isinstance(e, ToolCallArgs)), parser.calls


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "convert_temperature", "arguments": {"value": 21.5, "unit": "celsius"}}',
        '{{"name": "convert_temperature", "arguments": {"value": 21.5, "unit": "celsius"}}}',
        'Calling it.\n{"name" : "convert_temperature", "arguments": {"value": 21.5, "unit": "celsius"}}',
    ],
)
def test_hermes_reads_a_bare_json_call_of_an_offered_tool(text: str) -> None:
    """Qwen 2.5 Coder 1.5B also writes a call as bare JSON, without <tool_call> (seen in the
    tools demo); llama.cpp's Hermes parser accepts that, so a client gets a call, not the JSON."""
    for pieces in ([text], list(text)):
        shown, args, calls = _hermes_outcome(text, pieces)
        assert calls == 1 and json.loads(args) == {"value": 21.5, "unit": "celsius"}, (shown, args)
        assert shown.strip() in ("", "Calling it.")


def test_hermes_leaves_other_bare_json_as_text() -> None:
    for text in ('{"name": "Alice", "age": 3}', '{"name": "other_tool", "arguments": {}}', '{"nam": 1}'):
        assert _hermes_outcome(text, list(text)) == (text, "", 0)
    text = '{"name": "convert_temperature", "arguments": {}}'
    assert _hermes_outcome(text, [text], tools=None) == (text, "", 0)  # no tools named: not a call
