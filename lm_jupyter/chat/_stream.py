"""Incremental parsing machinery shared by the tool-call and reasoning parsers.

A model's reply arrives a few characters at a time, cut anywhere, and a parser must give the same
events however it is cut. Each format is therefore written as an ordinary top-down parser over a
growing buffer, as a generator: a primitive that cannot decide yet gives control back (``yield``)
and resumes when more text arrives. Chunking cannot change the path taken, and the format code
reads like the format's grammar instead of a hand-built state table.

Two rules every format gets from here rather than re-implementing them:

- Text is held back only while it could still be the start of a marker (like a stop-string
  matcher), so answer text streams promptly and markup never leaks into it.
- Text that began like markup but turns out not to be (:class:`Malformed`) is given back as
  plain text, unless a tool call was already announced to the client: streamed deltas cannot be
  recalled, so from then on the parser only moves forward.
"""

from __future__ import annotations

import enum
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Mapping, Sequence
from functools import partial
from typing import TypeVar

from lm_jupyter.chat.events import ReasoningDelta, StreamEvent, TextDelta, ToolCallArgs

T = TypeVar("T")
Step = Generator[None, None, T]
"""A parsing step: yields while it waits for more text, then returns its result."""
Sink = Callable[[str], None]


class Malformed(Exception):
    """The text that started like markup is not (or stops before it is complete)."""


class Machine(ABC):
    """Runs one format's parsing program (:meth:`run`) over streamed text, collecting events."""

    def __init__(self) -> None:
        self.buf = ""
        self.pos = 0
        self.eof = False
        # Where to rewind to when the markup being parsed turns out malformed; None once nothing
        # can be taken back (a call was announced), which also lets consumed text be dropped.
        self._pin: int | None = None
        self._events: list[StreamEvent] = []
        self._steps: Step[None] | None = None
        self._done = False
        self._crashed = False

    # --- driving -------------------------------------------------------------------------------

    def feed(self, text: str) -> list[StreamEvent]:
        if self._done:
            self.emit_text(text)
        elif text:
            self.buf += text
            self._resume()
        return self._drain()

    def finish(self) -> list[StreamEvent]:
        if not self.eof:
            self.eof = True
            if not self._done:
                self._resume()
            if not self._done:  # every primitive returns at the end of the text; be safe anyway
                self._abandon()
        return self._drain()

    @abstractmethod
    def run(self) -> Step[None]:
        """The format's parsing program, started at the first text; subclasses provide it."""

    def _resume(self) -> None:
        try:
            if self._steps is None:
                self._steps = self.run()
            next(self._steps)
        except StopIteration:
            self._done = True
        except Exception:
            # A parser bug must not take the reply down with it: what is left goes out as text.
            self._crashed = True
            self._abandon()

    def _abandon(self) -> None:
        start = self.pos if self._pin is None else self._pin
        self.emit_text(self.buf[start:])
        self.buf, self.pos, self._pin, self._done = "", 0, None, True

    def _drain(self) -> list[StreamEvent]:
        """Hand out the pending events, merging neighbours of one kind (fewer, larger deltas)."""
        merged: list[StreamEvent] = []
        for event in self._events:
            last = merged[-1] if merged else None
            if isinstance(last, TextDelta) and isinstance(event, TextDelta):
                merged[-1] = TextDelta(last.text + event.text)
            elif isinstance(last, ReasoningDelta) and isinstance(event, ReasoningDelta):
                merged[-1] = ReasoningDelta(last.text + event.text)
            elif (
                isinstance(last, ToolCallArgs)
                and isinstance(event, ToolCallArgs)
                and last.index == event.index
            ):
                merged[-1] = ToolCallArgs(event.index, last.text + event.text)
            else:
                merged.append(event)
        self._events = []
        return merged

    # --- events --------------------------------------------------------------------------------

    def emit(self, event: StreamEvent) -> None:
        self._events.append(event)

    def emit_text(self, text: str) -> None:
        if text:
            self.emit(TextDelta(text))

    def emit_reasoning(self, text: str) -> None:
        if text:
            self.emit(ReasoningDelta(text))

    def settle(self) -> None:
        """Commit to the markup parsed so far: a later failure no longer gives the text back."""
        self._pin = None

    # --- primitives ----------------------------------------------------------------------------

    def wait(self) -> Step[None]:
        """Give control back until more text (or the end) arrives."""
        if self._pin is None and self.pos:
            self.buf, self.pos = self.buf[self.pos :], 0
        yield

    def need(self, count: int) -> Step[bool]:
        """Wait until ``count`` characters are available; False if the text ends first."""
        while len(self.buf) - self.pos < count:
            if self.eof:
                return False
            yield from self.wait()
        return True

    def peek(self) -> Step[str]:
        """The next character without consuming it ("" at the end of the text)."""
        available = yield from self.need(1)
        return self.buf[self.pos] if available else ""

    def accept(self, literal: str) -> Step[bool]:
        """Consume ``literal`` if the text continues with it, deciding as soon as it diverges."""
        while True:
            ahead = self.buf[self.pos : self.pos + len(literal)]
            if ahead == literal:
                self.pos += len(literal)
                return True
            if not literal.startswith(ahead) or self.eof:
                return False
            yield from self.wait()

    def expect(self, literal: str) -> Step[None]:
        if not (yield from self.accept(literal)):
            raise Malformed(f"expected {literal!r}")

    def skip_ws(self) -> Step[None]:
        while True:
            end = len(self.buf)
            while self.pos < end and self.buf[self.pos].isspace():
                self.pos += 1
            if self.pos < end or self.eof:
                return
            yield from self.wait()

    def text_until(self, markers: Sequence[str], sink: Sink) -> Step[str | None]:
        """Pass text to ``sink`` up to the first of ``markers``; consume that marker and return it.

        Returns None when the text ends without one (everything has gone to the sink). Only a
        tail that could still grow into a marker is held back. At equal positions the longer
        marker wins, so ``"\\n</x>"`` listed next to ``"</x>"`` swallows the newline before it.
        """
        while True:
            marker, at = _first_marker(self.buf, self.pos, markers)
            if marker is not None:
                _send(sink, self.buf[self.pos : at])
                self.pos = at + len(marker)
                return marker
            end = len(self.buf) if self.eof else len(self.buf) - _open_tail(self.buf, self.pos, markers)
            _send(sink, self.buf[self.pos : end])
            self.pos = end
            if self.eof:
                return None
            yield from self.wait()

    def read_until(
        self, markers: Sequence[str], allowed: Callable[[str], bool], *, limit: int = 256
    ) -> Step[tuple[str, str]]:
        """Read a short field (a name, a header) up to a marker: (field, marker).

        Fails fast on a character the field cannot hold, so plain text that merely starts like
        markup is recognised as text after a character or two, not after ``limit``.
        """
        parts: list[str] = []
        size = 0

        def keep(text: str) -> None:
            nonlocal size
            size += len(text)
            if size > limit or not all(map(allowed, text)):
                raise Malformed("not a field")
            parts.append(text)

        marker = yield from self.text_until(markers, keep)
        if marker is None:
            raise Malformed("field ends with the text")
        return "".join(parts), marker

    def attempt(self, block: Callable[[], Step[None]], marker: str = "") -> Step[bool]:
        """Parse ``block`` over text that looks like markup (just after ``marker``).

        When it turns out malformed before anything was committed, rewind: the marker goes out
        as text and the rest is read again as ordinary text. After a commit, the text from the
        point of failure on simply continues as ordinary text.
        """
        start = self.pos - len(marker)
        self._pin = start
        try:
            yield from block()
            return True
        except Malformed:
            if self._pin is not None:
                self.pos = start + len(marker)
                self.emit_text(marker)
            return False
        finally:
            self._pin = None

    def scan(self, blocks: Mapping[str, Callable[[str], Step[None]]]) -> Step[None]:
        """Ordinary text with embedded blocks: each start marker hands over to its block parser."""
        markers = tuple(blocks)
        while True:
            marker = yield from self.text_until(markers, self.emit_text)
            if marker is None:
                return
            if (yield from self.attempt(partial(blocks[marker], marker), marker)):
                yield from self.skip_ws()  # whitespace between and after calls is not an answer

    def json_value(self, sink: Sink) -> Step[None]:
        """Stream one JSON value's text into ``sink`` as it arrives (see :class:`JsonScanner`)."""
        scanner = JsonScanner()
        while True:
            used, text, state = scanner.scan(self.buf, self.pos)
            self.pos += used
            _send(sink, text)
            if state is Scan.DONE:
                return
            if state is Scan.BAD:
                raise Malformed("not JSON")
            if self.eof:
                if scanner.scalar:
                    return
                raise Malformed("JSON ends with the text")
            yield from self.wait()

    def json_string(self) -> Step[str]:
        """Read a whole JSON string literal (a key, a name) and return its value."""
        if (yield from self.peek()) != '"':
            raise Malformed("expected a JSON string")
        parts: list[str] = []
        yield from self.json_value(parts.append)
        try:
            return json.loads("".join(parts))
        except ValueError as error:
            raise Malformed("bad JSON string") from error


def _send(sink: Sink, text: str) -> None:
    if text:
        sink(text)


def _first_marker(buf: str, start: int, markers: Sequence[str]) -> tuple[str | None, int]:
    best: str | None = None
    best_at = -1
    for marker in markers:
        at = buf.find(marker, start)
        if at >= 0 and (best is None or at < best_at or (at == best_at and len(marker) > len(best))):
            best, best_at = marker, at
    return best, best_at


def _open_tail(buf: str, start: int, markers: Sequence[str]) -> int:
    """Length of the longest tail of ``buf[start:]`` that could still grow into a marker."""
    longest = max((len(marker) for marker in markers), default=1) - 1
    for size in range(min(longest, len(buf) - start), 0, -1):
        tail = buf[len(buf) - size :]
        if any(marker.startswith(tail) and marker != tail for marker in markers):
            return size
    return 0


# --- JSON ----------------------------------------------------------------------------------------


class Scan(enum.Enum):
    MORE = "more"
    DONE = "done"
    BAD = "bad"


_SCALAR_CHARS = frozenset("0123456789+-.eEtruefalsn")
_CONTROL_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


class JsonScanner:
    """Follows one JSON value character by character to tell where it ends.

    It tracks strings, escapes and bracket nesting, not the full grammar: enough to find the end
    of an ``arguments`` value while its text streams through, and to reject text that cannot be
    JSON (a stray character, a mismatched bracket) early. Raw control characters inside strings,
    which models do emit and ``json.loads`` rejects, are escaped on the way through.
    """

    def __init__(self) -> None:
        self.closers: list[str] = []
        self.in_string = False
        self.escaped = False
        self.scalar = False  # a bare number/true/false/null at the top level

    def scan(self, buf: str, start: int) -> tuple[int, str, Scan]:
        """Read ``buf`` from ``start`` until the value ends: (characters used, JSON text, state).

        For BAD, the characters used stop just before the offending one.
        """
        out: list[str] = []
        segment = start
        index = start
        state = Scan.MORE
        while index < len(buf):
            char = buf[index]
            index += 1
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif char == "\\":
                    self.escaped = True
                elif char == '"':
                    self.in_string = False
                    if not self.closers:
                        state = Scan.DONE
                        break
                elif char < " ":
                    out.append(buf[segment : index - 1])
                    out.append(_CONTROL_ESCAPES.get(char) or f"\\u{ord(char):04x}")
                    segment = index
            elif self.scalar:
                if char not in _SCALAR_CHARS:
                    index -= 1  # the character after a scalar belongs to what follows it
                    state = Scan.DONE
                    break
            elif char == '"':
                self.in_string = True
            elif char in "{[":
                self.closers.append("}" if char == "{" else "]")
            elif char in "}]":
                if not self.closers or self.closers.pop() != char:
                    index -= 1
                    state = Scan.BAD
                    break
                if not self.closers:
                    state = Scan.DONE
                    break
            elif not self.closers and char in _SCALAR_CHARS:
                self.scalar = True
            elif not (self.closers and (char in ",:" or char.isspace() or char in _SCALAR_CHARS)):
                index -= 1
                state = Scan.BAD
                break
        out.append(buf[segment:index])
        return index - start, "".join(out), state


class StringWriter:
    """Writes raw text as a JSON string literal, piece by piece, for formats whose values are
    plain text (Qwen3-Coder parameters, Functionary's raw python) but must reach the client as
    arguments JSON."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.opened = False

    def write(self, text: str) -> None:
        if not self.opened:
            self.opened = True
            self.sink('"')
        if text:
            self.sink(json.dumps(text, ensure_ascii=False)[1:-1])

    def close(self) -> None:
        self.write("")
        self.sink('"')


class StringDecoder:
    """Decodes a JSON string literal that arrives in pieces, passing its value on as it goes.

    For models that write ``"arguments": "{\\"city\\": \\"Paris\\"}"`` (arguments JSON inside a
    string): the client must receive the JSON text itself, still streamed.
    """

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.raw = ""

    def write(self, text: str) -> None:
        self.raw += text
        # Keep the last character: it may be the closing quote, only known at close().
        body = self.raw[1:-1]
        cut = _escape_boundary(body)
        if cut:
            _send(self.sink, _decode(body[:cut]))
            self.raw = self.raw[:1] + body[cut:] + self.raw[-1]

    def close(self) -> None:
        _send(self.sink, _decode(self.raw[1:-1]))
        self.raw = ""


def _escape_boundary(raw: str) -> int:
    """How much of a string body can be decoded now: up to an unfinished escape sequence."""
    index = 0
    while index < len(raw):
        if raw[index] != "\\":
            index += 1
            continue
        if index + 1 >= len(raw):
            return index
        if raw[index + 1] != "u":
            index += 2
            continue
        if index + 6 > len(raw):
            return index
        try:
            high_surrogate = 0xD800 <= int(raw[index + 2 : index + 6], 16) < 0xDC00
        except ValueError:
            high_surrogate = False  # json.loads reports the bad escape
        if high_surrogate and index + 12 > len(raw):
            return index  # wait for the low half of the pair
        index += 12 if high_surrogate else 6
    return len(raw)


def _decode(body: str) -> str:
    try:
        return json.loads(f'"{body}"', strict=False)
    except ValueError as error:
        raise Malformed("bad JSON string") from error
