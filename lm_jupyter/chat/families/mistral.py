"""Mistral: ``[TOOL_CALLS][{"name": f, "arguments": {...}, "id": ...}]`` (before v11) or
``[TOOL_CALLS]f[ARGS]{...}`` (v11+, repeated for parallel calls)."""

from __future__ import annotations

from dataclasses import dataclass

from .._json_stream import Malformed
from .._stream import Step
from ..toolcalls import CallMachine, is_name_char, scanning
from .base import Family


def _is_name_or_space(char: str) -> bool:
    return char == " " or is_name_char(char)


@dataclass(frozen=True)
class _MistralBlock:
    """``[TOOL_CALLS]`` + a JSON array of calls (before v11) or ``name[ARGS]{...}`` (v11+, with
    an optional ``[CALL_ID]id``; a ``{`` right after the name is accepted too, as vLLM does)."""

    starts: tuple[str, ...] = ("[TOOL_CALLS]",)

    def parse(self, p: CallMachine, marker: str) -> Step[None]:
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


FAMILY = Family(
    name="mistral",
    markers=(("[TOOL_CALLS]",),),
    priority=90,
    program=scanning(_MistralBlock()),
    call_wrapper=("[TOOL_CALLS]NAME[ARGS]", ""),
)
