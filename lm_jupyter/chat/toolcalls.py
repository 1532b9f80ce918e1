"""Streaming tool-call parsers for each model family, and LM Studio's default tool prompting.

Models write tool calls as text in their own trained format. The server picks the format from
the model's chat template (:func:`detect_family`), feeds every generated piece of the answer
(not the reasoning) to :func:`make_parser`'s parser, and forwards the events it returns:

- answer text streams out at once, holding back only what could be the start of a marker;
- a call is announced (:class:`ToolCallStart`) as soon as its name is complete, then its
  arguments stream as JSON text fragments (:class:`ToolCallArgs`) while they are generated, as
  OpenAI and LM Studio (0.3.17+) stream them; formats whose arguments are not JSON
  (Qwen3-Coder's XML parameters) get JSON synthesised on the fly;
- anything that starts like a call but is not one comes back as the text it was, never an error.
  Once a call has been announced it cannot be recalled: if the arguments are then cut off
  (``max_tokens``) they stay as generated, as OpenAI's do (the client sees finish ``length``).

Formats (name: what the model writes):

- ``hermes`` (Hermes 2 Pro, Qwen 2.5/3): ``<tool_call>{"name": f, "arguments": {...}}</tool_call>``
- ``qwen3_coder``: ``<tool_call><function=f><parameter=x>value</parameter></function></tool_call>``
- ``seed_oss``: the same inside ``<seed:tool_call>``
- ``llama3`` (3.1-3.3): the whole reply is ``{"name": f, "parameters": {...}}`` (``;``-separated
  for several), optionally after ``<|python_tag|>``
- ``mistral``: ``[TOOL_CALLS][{"name": f, "arguments": {...}, "id": ...}]`` (before v11) or
  ``[TOOL_CALLS]f[ARGS]{...}`` (v11+, repeated for parallel calls)
- ``deepseek`` (V3/R1 and V3.1): ``<|tool▁calls▁begin|><|tool▁call▁begin|>function<|tool▁sep|>f``
  + a fenced JSON block, or (V3.1) ``...<|tool▁call▁begin|>f<|tool▁sep|>{...}`` (the bars in
  DeepSeek's tokens are fullwidth, U+FF5C)
- ``gpt_oss`` (Harmony): channels; ``analysis`` is reasoning, ``final`` (and commentary with no
  recipient) is the answer, ``commentary to=functions.f ... <|message|>{...}<|call|>`` a call.
  This parser emits :class:`ReasoningDelta` itself, so use it even for requests without tools.
- ``functionary_v3`` (v3.2): ``>>>f\\n{...}`` per call, ``>>>all\\ntext`` for the answer (the
  prompt already ends with ``>>>``); also for requests without tools.
- ``nemotron_nano_v2``: ``<TOOLCALL>[{...}]</TOOLCALL>``
- ``granite`` (3.x): ``<|tool_call|>[{...}]``
- ``fallback``: LM Studio's default format for templates without tool support,
  ``[TOOL_REQUEST]{"name": f, "arguments": {...}}[END_TOOL_REQUEST]``, taught to the model by
  :func:`fallback_system_prompt` and :func:`fallback_messages`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import string
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from lm_jupyter.chat._stream import Machine, Malformed, Sink, Step, StringDecoder, StringWriter
from lm_jupyter.chat.events import (
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallArgs,
    ToolCallStart,
)

__all__ = [
    "FAMILIES",
    "ReasoningDelta",
    "StreamEvent",
    "TextDelta",
    "ToolCallArgs",
    "ToolCallParser",
    "ToolCallStart",
    "default_call_id",
    "detect_family",
    "fallback_messages",
    "fallback_system_prompt",
    "make_parser",
    "normalize_tool_name",
]


class ToolCallParser(Protocol):
    def feed(self, text: str) -> list[StreamEvent]:
        """Add generated text (any chunking); return the events it completes."""
        ...

    def finish(self) -> list[StreamEvent]:
        """Generation ended: flush held text; an unfinished call that was never announced
        comes back as text."""
        ...

    @property
    def calls(self) -> int:
        """How many calls were announced (finish reason ``tool_calls`` when > 0)."""
        ...


_ALPHANUMERIC = string.ascii_letters + string.digits


def default_call_id() -> str:
    """A call id in OpenAI's style: ``call_`` and 24 random letters and digits."""
    return "call_" + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(24))


# --- the call-aware machine ----------------------------------------------------------------------

_NAME_KEYS = frozenset({"name"})
_ARGS_KEYS = frozenset({"arguments", "parameters"})

Program = Callable[["_CallMachine"], Step[None]]


def _ignore(text: str) -> None:
    """Sink for JSON values a call carries besides its name and arguments (ids, types)."""


class _CallMachine(Machine):
    """A :class:`Machine` that numbers, names and streams tool calls for one family's program."""

    def __init__(self, program: Program, tool_names: list[str] | None, new_id: Callable[[], str]) -> None:
        super().__init__()
        self._program = program
        self._new_id = new_id
        self._names = None if tool_names is None else _name_table(tool_names)
        self.calls = 0

    def run(self) -> Step[None]:
        yield from self._program(self)

    def begin_call(self, name: str) -> None:
        """Announce a call; Malformed (nothing emitted) when the name is empty or not offered."""
        resolved = self._resolve(name.strip())
        self.settle()
        self.emit(ToolCallStart(self.calls, self._new_id(), resolved))
        self.calls += 1

    def emit_args(self, text: str) -> None:
        if text:
            self.emit(ToolCallArgs(self.calls - 1, text))

    def _resolve(self, name: str) -> str:
        if not name:
            raise Malformed("call without a name")
        if self._names is None:
            return name
        found = self._names.get(name) or self._names.get(normalize_tool_name(name))
        if found is None:
            raise Malformed(f"no tool named {name!r} was offered")
        return found

    def arguments(self, sink: Sink) -> Step[None]:
        """Stream an arguments value: JSON text as is, a JSON string holding JSON decoded."""
        if (yield from self.peek()) == '"':
            decoder = StringDecoder(sink)
            yield from self.json_value(decoder.write)
            decoder.close()
        else:
            yield from self.json_value(sink)

    def json_call(self, *, first_keys: frozenset[str] = frozenset()) -> Step[None]:
        """One ``{"name": ..., "arguments": {...}}`` object; the arguments stream as they come.

        ``first_keys`` makes a reply that is plain JSON (not a call) fail at its first key.
        Arguments written before the name are held until the name comes.
        """
        yield from self.expect("{")
        yield from self.skip_ws()
        name: str | None = None
        held: list[str] = []
        has_args = False
        closed = yield from self.accept("}")
        while not closed:
            key = yield from self.json_string()
            if first_keys and name is None and not has_args and key not in first_keys:
                raise Malformed("not a call object")
            yield from self.skip_ws()
            yield from self.expect(":")
            yield from self.skip_ws()
            if key in _NAME_KEYS and name is None and (yield from self.peek()) == '"':
                name = yield from self.json_string()
                self.begin_call(name)
                self.emit_args("".join(held))
            elif key in _ARGS_KEYS and not has_args:
                has_args = True
                yield from self.arguments(self.emit_args if name is not None else held.append)
            else:
                yield from self.json_value(_ignore)
            yield from self.skip_ws()
            closed = yield from self.accept("}")
            if not closed:
                yield from self.expect(",")
                yield from self.skip_ws()
        if name is None:
            raise Malformed("call without a name")
        if not has_args:
            self.emit_args("{}")

    def json_calls(self, *, first_keys: frozenset[str] = frozenset()) -> Step[None]:
        """A call object, or a JSON array of them."""
        if (yield from self.peek()) != "[":
            yield from self.json_call(first_keys=first_keys)
            return
        yield from self.expect("[")
        yield from self.skip_ws()
        done = yield from self.accept("]")
        while not done:
            yield from self.json_call(first_keys=first_keys)
            yield from self.skip_ws()
            done = yield from self.accept("]")
            if not done:
                yield from self.expect(",")
                yield from self.skip_ws()


def _name_table(names: list[str]) -> dict[str, str]:
    table = {normalize_tool_name(name): name for name in names}
    table.update({name: name for name in names})
    return table


def _is_name_char(char: str) -> bool:
    return char.isalnum() or char in "_-.:"


def _is_name_or_space(char: str) -> bool:
    return char == " " or _is_name_char(char)


def _is_key_char(char: str) -> bool:
    return char not in "<>\n"


def _is_header_char(char: str) -> bool:
    return char != "\n"


# --- families built from shared blocks -----------------------------------------------------------


@dataclass(frozen=True)
class _JsonBlock:
    """``start`` + a call object or a JSON array of them + optional ``end`` marker."""

    starts: tuple[str, ...]
    end: str = ""

    def parse(self, p: _CallMachine, marker: str) -> Step[None]:
        yield from p.skip_ws()
        yield from p.json_calls()
        if self.end:
            yield from p.skip_ws()
            yield from p.accept(self.end)


_FUNCTION = "<function="
_FUNCTION_END = "</function>"
_PARAMETER = "<parameter="
_PARAMETER_END = "</parameter>"


@dataclass(frozen=True)
class _XmlBlock:
    """``<function=f><parameter=k>value</parameter>...</function>`` inside ``start`` ... ``end``.

    A bare ``<function=`` starts a call too (Qwen3-Coder sometimes drops the wrapper, and vLLM
    accepts that), and a Hermes-style JSON object inside the wrapper is read as one.
    """

    starts: tuple[str, ...]
    end: str

    def parse(self, p: _CallMachine, marker: str) -> Step[None]:
        if marker == _FUNCTION:
            p.pos -= len(marker)
        yield from p.skip_ws()
        if (yield from p.peek()) in ("{", "["):
            yield from p.json_calls()
        else:
            yield from p.expect(_FUNCTION)
            more = True
            while more:
                yield from self._function(p)
                yield from p.skip_ws()
                more = yield from p.accept(_FUNCTION)
        yield from p.skip_ws()
        yield from p.accept(self.end)

    def _function(self, p: _CallMachine) -> Step[None]:
        name, _ = yield from p.read_until((">",), _is_name_char)
        p.begin_call(name)
        tags = (_PARAMETER_END, _PARAMETER, _FUNCTION_END, self.end)
        value_ends = tags + tuple("\n" + tag for tag in tags)  # the newline before a tag is layout
        count = 0
        while True:
            yield from p.skip_ws()
            if (yield from p.accept(_PARAMETER)):
                key, _ = yield from p.read_until((">",), _is_key_char)
                p.emit_args(
                    ("{" if count == 0 else ", ") + json.dumps(key.strip(), ensure_ascii=False) + ": "
                )
                count += 1
                yield from p.accept("\n")
                value = _LooseValue(p.emit_args)
                found = yield from p.text_until(value_ends, value.write)
                if found is None:
                    raise Malformed("parameter cut off")
                value.close()
                if not found.endswith(_PARAMETER_END):
                    p.pos -= len(found)  # a missing </parameter>: the next tag is read again
            elif (yield from p.accept(_FUNCTION_END)) or (yield from p.peek()):
                break  # also tolerates a missing </function> before the wrapper's end
            else:
                raise Malformed("call cut off")
        p.emit_args("}" if count else "{}")


class _LooseValue:
    """A raw parameter value as JSON text: JSON numbers, booleans, null, objects and arrays stay
    as written, anything else becomes a JSON string (llama.cpp's rule; vLLM consults the tool's
    schema, which a parser here does not get). Text that can no longer be a JSON literal streams
    at once as a string, so only short literals and objects/arrays wait for their end."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.held = ""
        self.string: StringWriter | None = None

    def write(self, text: str) -> None:
        if self.string is None:
            self.held += text
            if _may_be_json(self.held):
                return
            self.string = StringWriter(self.sink)
            text = self.held
        self.string.write(text)

    def close(self) -> None:
        if self.string is None:
            try:
                is_json = not isinstance(json.loads(self.held), str)
            except ValueError:
                is_json = False
            if is_json:
                self.sink(self.held.strip())
                return
            self.string = StringWriter(self.sink)
            self.string.write(self.held)
        self.string.close()


def _may_be_json(text: str) -> bool:
    body = text.strip()
    if not body or body[0] in "{[":
        return True
    if body[0] in "-0123456789":
        return all(char in "0123456789+-.eE" for char in body)
    return any(word.startswith(body) for word in ("true", "false", "null"))


@dataclass(frozen=True)
class _MistralBlock:
    """``[TOOL_CALLS]`` + a JSON array of calls (before v11) or ``name[ARGS]{...}`` (v11+, with
    an optional ``[CALL_ID]id``; a ``{`` right after the name is accepted too, as vLLM does)."""

    starts: tuple[str, ...] = ("[TOOL_CALLS]",)

    def parse(self, p: _CallMachine, marker: str) -> Step[None]:
        yield from p.skip_ws()
        if (yield from p.peek()) in ("[", "{"):
            yield from p.json_calls()
            return
        name, found = yield from p.read_until(("[ARGS]", "[CALL_ID]", "{"), _is_name_or_space)
        if " " in name.strip():
            raise Malformed("not a tool name")
        if found == "[CALL_ID]":
            _, found = yield from p.read_until(("[ARGS]", "{"), str.isalnum)
        if found == "{":
            p.pos -= 1
        p.begin_call(name)
        yield from p.skip_ws()
        yield from p.arguments(p.emit_args)


def _deepseek_token(words: str, space: str = "\u2581") -> str:
    """DeepSeek's special tokens (fullwidth bars, U+2581 between words) from "tool calls begin"."""
    return "<\uff5c" + space.join(words.split()) + "\uff5c>"


_DS_CALL_BEGIN = _deepseek_token("tool call begin")
_DS_CALL_END = _deepseek_token("tool call end")
_DS_SEP = _deepseek_token("tool sep")
_DS_CALLS_END = _deepseek_token("tool calls end")


@dataclass(frozen=True)
class _DeepSeekBlock:
    """DeepSeek V3/R1 (``function<|tool▁sep|>f`` + ```` ```json ```` fence) and V3.1
    (``f<|tool▁sep|>{...}``) calls between ``<|tool▁calls▁begin|>`` and its end token.
    The begin token's misspellings are those R1 distills produce (accepted by llama.cpp)."""

    starts: tuple[str, ...] = (
        _deepseek_token("tool calls begin"),
        _deepseek_token("tool calls begin", "_"),
        _deepseek_token("tool calls begin", " "),
        _deepseek_token("tool calls begin", "\\_"),
        _deepseek_token("tool calls"),
    )

    def parse(self, p: _CallMachine, marker: str) -> Step[None]:
        first = p.calls
        yield from p.skip_ws()
        while (yield from p.accept(_DS_CALL_BEGIN)):
            head, _ = yield from p.read_until((_DS_SEP,), _is_name_char)
            if head == "function":  # V3/R1: the call's type; the name follows on its own line
                name, _ = yield from p.read_until(("\n",), _is_name_char)
                p.begin_call(name)
                yield from p.skip_ws()
                if (yield from p.accept("```")):
                    yield from p.accept("json")
            else:
                p.begin_call(head)
            yield from p.skip_ws()
            yield from p.json_value(p.emit_args)
            yield from p.skip_ws()
            yield from p.accept("```")
            yield from p.skip_ws()
            yield from p.accept(_DS_CALL_END)
            yield from p.skip_ws()
        if p.calls == first:
            raise Malformed("no call after the begin token")
        yield from p.accept(_DS_CALLS_END)


_Block = _JsonBlock | _XmlBlock | _MistralBlock | _DeepSeekBlock


def _scanning(block: _Block) -> Program:
    """A family whose calls are blocks opened by start markers anywhere in the answer."""

    def program(p: _CallMachine) -> Step[None]:
        yield from p.scan(dict.fromkeys(block.starts, partial(block.parse, p)))

    return program


# --- families with their own shape ---------------------------------------------------------------

_PYTHON_TAG = "<|python_tag|>"
_LLAMA_FIRST_KEYS = frozenset({"name", "type"})
_END_OF_MESSAGE = "<|eom_id|>"


def _llama3(p: _CallMachine) -> Step[None]:
    """The reply is either the call(s) or the answer, decided at the first non-space characters
    (``{"name"``/``{"type"`` or ``<|python_tag|>``), so a plain answer streams at once."""
    yield from p.attempt(partial(_llama3_calls, p, ""))
    yield from p.scan({_PYTHON_TAG: partial(_llama3_calls, p)})


def _llama3_calls(p: _CallMachine, marker: str) -> Step[None]:
    more = True
    while more:
        yield from p.skip_ws()
        yield from p.accept(_PYTHON_TAG)
        yield from p.skip_ws()
        yield from p.json_call(first_keys=_LLAMA_FIRST_KEYS)
        yield from p.skip_ws()
        more = yield from p.accept(";")
    yield from p.accept(_END_OF_MESSAGE)  # in case the server leaves the stop token in the text


_HERMES_TAGGED = _JsonBlock(("<tool_call>",), "</tool_call>")
# Small Qwen 2.5 models (Coder 1.5B, say) often write the call as a fenced JSON block instead;
# llama.cpp's Hermes parser accepts that too. Only a block whose object names an offered tool
# becomes a call; any other JSON code block is given back as text.
_HERMES_FENCED = _JsonBlock(("```json",), "```")


def _hermes(p: _CallMachine) -> Step[None]:
    yield from p.scan(
        {
            **dict.fromkeys(_HERMES_TAGGED.starts, partial(_HERMES_TAGGED.parse, p)),
            **dict.fromkeys(_HERMES_FENCED.starts, partial(_HERMES_FENCED.parse, p)),
        }
    )


def _functionary(p: _CallMachine) -> Step[None]:
    """Functionary v3.2: parts ``>>>name\\n...``; the prompt ends with ``>>>`` so the first part
    comes without it. ``all`` is the answer, ``python`` may be raw code (wrapped as
    ``{"code": ...}``), anything else is a call with JSON arguments."""
    yield from p.attempt(partial(_functionary_part, p, ""))
    yield from p.scan({">>>": partial(_functionary_part, p)})


def _functionary_part(p: _CallMachine, marker: str) -> Step[None]:
    if not marker:
        yield from p.accept(">>>")
    name, _ = yield from p.read_until(("\n",), _is_name_char, limit=64)
    if name == "all":
        return  # the answer follows, up to the next >>>
    raw_python = name == "python" and (yield from p.peek()) != "{"
    if not raw_python and (yield from p.peek()) != "{":
        raise Malformed("not a call")
    p.begin_call(name)
    if not raw_python:
        yield from p.json_value(p.emit_args)
        return
    p.emit_args('{"code": ')
    code = StringWriter(p.emit_args)
    found = yield from p.text_until((">>>",), code.write)
    if found:
        p.pos -= len(found)
    code.close()
    p.emit_args("}")


_H_START = "<|start|>"
_H_CHANNEL = "<|channel|>"
_H_MESSAGE = "<|message|>"
_H_ENDS = ("<|end|>", "<|call|>", "<|return|>", _H_START)
_H_CHANNEL_NAME = re.compile(r"<\|channel\|>\s*(\w+)")
_H_RECIPIENT = re.compile(r"\bto=([^\s<]+)")


def _harmony(p: _CallMachine) -> Step[None]:
    """gpt-oss Harmony: messages ``[<|start|>assistant][ to=R]<|channel|>C[ to=R][ <|constrain|>json]
    <|message|>body<|end|>`` (``<|call|>`` after a call, ``<|return|>`` after the answer). The
    prompt ends with ``<|start|>assistant``, so the first header comes without them."""
    yield from p.attempt(partial(_harmony_message, p, ""))
    yield from p.scan(dict.fromkeys((_H_START, _H_CHANNEL), partial(_harmony_message, p)))


def _harmony_message(p: _CallMachine, marker: str) -> Step[None]:
    if marker == _H_CHANNEL:
        p.pos -= len(marker)
    yield from p.skip_ws()
    for lead in (_H_CHANNEL, "assistant", "to="):
        if (yield from p.accept(lead)):
            break
    else:
        raise Malformed("not a Harmony header")
    rest, _ = yield from p.read_until((_H_MESSAGE,), _is_header_char)
    header = lead + rest
    recipient = _H_RECIPIENT.search(header)
    channel = _H_CHANNEL_NAME.search(header)
    sink: Sink
    if recipient:
        p.begin_call(recipient.group(1).removeprefix("functions."))
        sink = p.emit_args
    else:
        p.settle()
        sink = p.emit_reasoning if channel and channel.group(1) == "analysis" else p.emit_text
    found = yield from p.text_until(_H_ENDS, sink)
    if found == _H_START:
        p.pos -= len(found)  # the next message's header follows directly


_PROGRAMS: Mapping[str, Program] = {
    "hermes": _hermes,
    "qwen3_coder": _scanning(_XmlBlock(("<tool_call>", _FUNCTION), "</tool_call>")),
    "seed_oss": _scanning(_XmlBlock(("<seed:tool_call>",), "</seed:tool_call>")),
    "llama3": _llama3,
    "mistral": _scanning(_MistralBlock()),
    "deepseek": _scanning(_DeepSeekBlock()),
    "gpt_oss": _harmony,
    "functionary_v3": _functionary,
    "nemotron_nano_v2": _scanning(_JsonBlock(("<TOOLCALL>",), "</TOOLCALL>")),
    "granite": _scanning(_JsonBlock(("<|tool_call|>",))),
    "fallback": _scanning(_JsonBlock(("[TOOL_REQUEST]",), "[END_TOOL_REQUEST]")),
}

FAMILIES: tuple[str, ...] = tuple(_PROGRAMS)


def make_parser(
    family: str, *, tool_names: list[str] | None = None, new_id: Callable[[], str] = default_call_id
) -> ToolCallParser:
    """A fresh streaming parser for one generation in ``family``'s format.

    With ``tool_names`` (the names the model was shown), a call to any other tool comes back as
    text, and a near miss in spelling (same :func:`normalize_tool_name`) gets the offered
    spelling; with None any name is accepted.
    """
    program = _PROGRAMS.get(family)
    if program is None:
        raise ValueError(f"unknown tool-call family {family!r}; known: {', '.join(FAMILIES)}")
    return _CallMachine(program, tool_names, new_id)


# Markers that identify a family in its chat template, tried in order (all of a row must be
# present). More specific formats come before the ones whose markers they share: Qwen3-Coder and
# Nemotron templates may mention <tool_call> too, and Functionary's is a Llama 3 template.
_TEMPLATE_MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("deepseek", (_deepseek_token("tool calls begin"),)),
    ("gpt_oss", (_H_CHANNEL, _H_MESSAGE)),
    ("seed_oss", ("<seed:tool_call>",)),
    ("qwen3_coder", (_FUNCTION, _PARAMETER)),
    ("nemotron_nano_v2", ("<TOOLCALL>",)),
    ("hermes", ("<tool_call>",)),
    ("granite", ("<|tool_call|>",)),
    ("functionary_v3", (">>>all",)),
    ("mistral", ("[TOOL_CALLS]",)),
    ("llama3", (_PYTHON_TAG,)),
    ("llama3", ("<|start_header_id|>", "ipython")),
)


def detect_family(chat_template: str | None) -> str:
    """The tool-call family a chat template was written for; ``"fallback"`` when it has no tool
    support this module knows (LM Studio's "default" tool use then applies)."""
    if chat_template:
        for family, markers in _TEMPLATE_MARKERS:
            if all(marker in chat_template for marker in markers):
                return family
    return "fallback"


# --- tool names ----------------------------------------------------------------------------------

_CAMEL_LOWER_UPPER = re.compile(r"([a-z0-9])([A-Z])")
_CAMEL_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_NOT_NAME = re.compile(r"[^a-z0-9]+")
_MAX_NAME = 64


def normalize_tool_name(name: str) -> str:
    """A snake_case spelling of a tool name, as LM Studio shows models (0.3.23+): models call
    ``get_weather`` far more reliably than ``Get Weather!`` or ``getWeather``.

    The result uses only ``[a-z0-9_]``, is at most 64 characters (OpenAI's limit) and is stable
    (normalizing it again changes nothing). Accents are dropped (``Zürich`` -> ``zurich``); a
    name with no usable characters, or one cut to length, gets a short hash so distinct names
    stay distinct. The server keeps the map back to the caller's spelling.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    spaced = _CAMEL_ACRONYM.sub(r"\1_\2", _CAMEL_LOWER_UPPER.sub(r"\1_\2", ascii_name))
    snake = _NOT_NAME.sub("_", spaced.lower()).strip("_")
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    if not snake:
        return f"tool_{digest}"
    if len(snake) > _MAX_NAME:
        return f"{snake[: _MAX_NAME - 9].rstrip('_')}_{digest}"
    return snake


# --- LM Studio's default tool use ----------------------------------------------------------------

_REQUEST_OPEN = "[TOOL_REQUEST]"
_REQUEST_CLOSE = "[END_TOOL_REQUEST]"


def fallback_system_prompt(tools: list[dict[str, Any]]) -> str:
    """The system prompt that teaches a model without template tool support to call tools, in
    the spirit of LM Studio's default prompt (whose exact words it says are subject to change)."""
    listing = json.dumps({"type": "toolArray", "tools": tools}, ensure_ascii=False)
    example = json.dumps({"name": "tool_name", "arguments": {"param1": "value1"}})
    return (
        "You are a tool-calling AI. You can request calls to available tools with this EXACT format:\n"
        f"{_REQUEST_OPEN}{example}{_REQUEST_CLOSE}\n\n"
        f"AVAILABLE TOOLS:\n{listing}\n\n"
        "RULES:\n"
        "- Only call tools listed in AVAILABLE TOOLS, spelled exactly as listed.\n"
        "- Put the arguments in one JSON object that follows the tool's parameters, "
        "with every required argument.\n"
        f"- Write one {_REQUEST_OPEN}...{_REQUEST_CLOSE} per call; for several calls, "
        "write them one after another.\n"
        "- After a request, stop: the result comes back in the next message. Never make up a result.\n"
        f"- When no tool is needed, answer normally without {_REQUEST_OPEN}."
    )


def fallback_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rewrite a conversation for a template that knows no tool roles (LM Studio does the same).

    Assistant ``tool_calls`` become ``[TOOL_REQUEST]`` text, the format the model is taught, and
    ``tool`` results become user messages naming the tool. A result is merged into a neighbouring
    user message, since many such templates insist that user and assistant turns alternate.
    Other messages pass through unchanged; the input is not modified.
    """
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    merged_ok: list[bool] = []  # whether out[i] may absorb a neighbouring tool result
    for message in messages:
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            converted = {key: value for key, value in message.items() if key != "tool_calls"}
            text = _plain_text(message.get("content"))
            requests = "".join(_tool_request(call, names) for call in message["tool_calls"])
            converted["content"] = f"{text}\n{requests}" if text else requests
            out.append(converted)
            merged_ok.append(False)
        elif role == "tool":
            call_id = str(message.get("tool_call_id") or "")
            name = message.get("name") or names.get(call_id) or "the tool"
            result = f"Result of {name} (call {call_id}):\n{_plain_text(message.get('content'))}"
            if out and out[-1].get("role") == "user" and isinstance(out[-1].get("content"), str):
                out[-1] = {**out[-1], "content": f"{out[-1]['content']}\n\n{result}"}
            else:
                out.append({"role": "user", "content": result})
                merged_ok.append(True)
        elif role == "user" and merged_ok and merged_ok[-1] and isinstance(message.get("content"), str):
            out[-1] = {**out[-1], "content": f"{out[-1]['content']}\n\n{message['content']}"}
        else:
            out.append(dict(message))
            merged_ok.append(False)
    return out


def _tool_request(call: dict[str, Any], names: dict[str, str]) -> str:
    function = call.get("function") or {}
    name = function.get("name", "")
    if call.get("id"):
        names[str(call["id"])] = name
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):  # else the model sees what the caller sent
            arguments = json.loads(arguments) if arguments.strip() else {}
    elif arguments is None:
        arguments = {}
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{_REQUEST_OPEN}{body}{_REQUEST_CLOSE}"


def _plain_text(content: object) -> str:
    """Message content as text: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""
