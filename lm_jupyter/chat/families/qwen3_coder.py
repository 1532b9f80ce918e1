"""Qwen3-Coder: ``<tool_call><function=f><parameter=x>value</parameter></function></tool_call>``.
Its templates may mention ``<tool_call>`` too, so it is tried before ``hermes``."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .._json_stream import Malformed, Sink, StringWriter
from .._stream import Step
from ..toolcalls import CallMachine, is_name_char, scanning
from .base import Family

FUNCTION = "<function="
FUNCTION_END = "</function>"
PARAMETER = "<parameter="
PARAMETER_END = "</parameter>"


def _is_key_char(char: str) -> bool:
    return char not in "<>\n"


@dataclass(frozen=True)
class XmlBlock:
    """``<function=f><parameter=k>value</parameter>...</function>`` inside ``start`` ... ``end``.

    A bare ``<function=`` starts a call too (Qwen3-Coder sometimes drops the wrapper, and vLLM
    accepts that), and a Hermes-style JSON object inside the wrapper is read as one.
    """

    starts: tuple[str, ...]
    end: str

    def parse(self, p: CallMachine, marker: str) -> Step[None]:
        if marker == FUNCTION:
            p.pos -= len(marker)
        yield from p.skip_ws()
        if (yield from p.peek()) in ("{", "["):
            yield from p.json_calls()
        else:
            yield from p.expect(FUNCTION)
            more = True
            while more:
                yield from self._function(p)
                yield from p.skip_ws()
                more = yield from p.accept(FUNCTION)
        yield from p.skip_ws()
        yield from p.accept(self.end)

    def _function(self, p: CallMachine) -> Step[None]:
        name, _ = yield from p.read_until((">",), is_name_char)
        p.begin_call(name)
        tags = (PARAMETER_END, PARAMETER, FUNCTION_END, self.end)
        value_ends = tags + tuple("\n" + tag for tag in tags)  # the newline before a tag is layout
        count = 0
        while True:
            yield from p.skip_ws()
            if (yield from p.accept(PARAMETER)):
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
                if not found.endswith(PARAMETER_END):
                    p.pos -= len(found)  # a missing </parameter>: the next tag is read again
            elif (yield from p.accept(FUNCTION_END)) or (yield from p.peek()):
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


FAMILY = Family(
    name="qwen3_coder",
    markers=((FUNCTION, PARAMETER),),
    priority=40,
    program=scanning(XmlBlock(("<tool_call>", FUNCTION), "</tool_call>")),
)
