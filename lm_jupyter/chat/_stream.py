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

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Mapping, Sequence
from functools import partial
from typing import TypeVar

from lm_jupyter.chat._json_stream import JsonScanner, Malformed, Scan, Sink, send
from lm_jupyter.chat.events import ReasoningDelta, StreamEvent, TextDelta, ToolCallArgs

T = TypeVar("T")
Step = Generator[None, None, T]
"""A parsing step: yields while it waits for more text, then returns its result."""


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
                send(sink, self.buf[self.pos : at])
                self.pos = at + len(marker)
                return marker
            end = len(self.buf) if self.eof else len(self.buf) - _open_tail(self.buf, self.pos, markers)
            send(sink, self.buf[self.pos : end])
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
            send(sink, text)
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
