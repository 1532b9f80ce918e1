"""The streaming machinery every model family's tool-call parser is built on.

Models write tool calls as text in their own trained format; ``chat/families/`` holds one
program per format on top of :class:`CallMachine`. The server feeds every generated piece of
the answer (not the reasoning) to a family's parser and forwards the events it returns:

- answer text streams out at once, holding back only what could be the start of a marker;
- a call is announced (:class:`ToolCallStart`) as soon as its name is complete, then its
  arguments stream as JSON text fragments (:class:`ToolCallArgs`) while they are generated, as
  OpenAI and LM Studio (0.3.17+) stream them; formats whose arguments are not JSON
  (Qwen3-Coder's XML parameters) get JSON synthesised on the fly;
- anything that starts like a call but is not one comes back as the text it was, never an error.
  Once a call has been announced it cannot be recalled: if the arguments are then cut off
  (``max_tokens``) they stay as generated, as OpenAI's do (the client sees finish ``length``).
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from lm_jupyter.chat._json_stream import Malformed, Sink, StringDecoder
from lm_jupyter.chat._stream import Machine, Step
from lm_jupyter.chat.events import StreamEvent, ToolCallArgs, ToolCallStart
from lm_jupyter.chat.toolnames import normalize_tool_name


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

Program = Callable[["CallMachine"], Step[None]]


def _ignore(text: str) -> None:
    """Sink for JSON values a call carries besides its name and arguments (ids, types)."""


class CallMachine(Machine):
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

    @property
    def offers_tools(self) -> bool:
        """The request named its tools (a name outside them is not a call)."""
        return self._names is not None

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

    def json_call(self, *, first_keys: frozenset[str] = frozenset(), opened: str = "") -> Step[None]:
        """One ``{"name": ..., "arguments": {...}}`` object; the arguments stream as they come.

        ``first_keys`` makes a reply that is plain JSON (not a call) fail at its first key.
        Arguments written before the name are held until the name comes. ``opened``: the
        object's ``{`` and this first key were read already (the marker of a bare call).
        """
        if not opened:
            yield from self.expect("{")
            yield from self.skip_ws()
        name: str | None = None
        held: list[str] = []
        has_args = False
        closed = False if opened else (yield from self.accept("}"))
        while not closed:
            key = opened or (yield from self.json_string())
            opened = ""
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


def is_name_char(char: str) -> bool:
    return char.isalnum() or char in "_-.:"


# --- blocks opened by start markers ----------------------------------------------------------


@dataclass(frozen=True)
class JsonBlock:
    """``start`` + a call object or a JSON array of them + optional ``end`` marker."""

    starts: tuple[str, ...]
    end: str = ""

    def parse(self, p: CallMachine, marker: str) -> Step[None]:
        yield from p.skip_ws()
        yield from p.json_calls()
        if self.end:
            yield from p.skip_ws()
            yield from p.accept(self.end)


class Block(Protocol):
    """Calls opened by one of ``starts`` anywhere in the answer; ``parse`` reads the rest."""

    @property
    def starts(self) -> tuple[str, ...]: ...

    def parse(self, p: CallMachine, marker: str) -> Step[None]: ...


def scanning(block: Block) -> Program:
    """A family whose calls are blocks opened by start markers anywhere in the answer."""

    def program(p: CallMachine) -> Step[None]:
        yield from p.scan(dict.fromkeys(block.starts, partial(block.parse, p)))

    return program
