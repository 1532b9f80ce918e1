"""JSON text as it streams: where a value ends, and JSON strings written or read piece by piece.

The parsing machine (``_stream.py``) uses these to stream a tool call's arguments while they are
generated, and the families to turn non-JSON arguments (XML parameters, raw code) into JSON.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable

Sink = Callable[[str], None]


class Malformed(Exception):
    """The text that started like markup is not (or stops before it is complete)."""


def send(sink: Sink, text: str) -> None:
    if text:
        sink(text)


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
            send(self.sink, _decode(body[:cut]))
            self.raw = self.raw[:1] + body[cut:] + self.raw[-1]

    def close(self) -> None:
        send(self.sink, _decode(self.raw[1:-1]))
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
