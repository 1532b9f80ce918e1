"""gpt-oss Harmony: channels; ``analysis`` is reasoning, ``final`` (and commentary with no
recipient) is the answer, ``commentary to=functions.f ... <|message|>{...}<|call|>`` a call.
The parser emits the reasoning itself, so it runs even for requests without tools."""

from __future__ import annotations

import re
from functools import partial

from .._json_stream import Malformed, Sink
from .._stream import Step
from ..toolcalls import CallMachine
from .base import Family


def _is_header_char(char: str) -> bool:
    return char != "\n"


_H_START = "<|start|>"
_H_CHANNEL = "<|channel|>"
_H_MESSAGE = "<|message|>"
_H_ENDS = ("<|end|>", "<|call|>", "<|return|>", _H_START)
_H_CHANNEL_NAME = re.compile(r"<\|channel\|>\s*(\w+)")
_H_RECIPIENT = re.compile(r"\bto=([^\s<]+)")


def _harmony(p: CallMachine) -> Step[None]:
    """gpt-oss Harmony: messages ``[<|start|>assistant][ to=R]<|channel|>C[ to=R][ <|constrain|>json]
    <|message|>body<|end|>`` (``<|call|>`` after a call, ``<|return|>`` after the answer). The
    prompt ends with ``<|start|>assistant``, so the first header comes without them."""
    yield from p.attempt(partial(_harmony_message, p, ""))
    yield from p.scan(dict.fromkeys((_H_START, _H_CHANNEL), partial(_harmony_message, p)))


def _harmony_message(p: CallMachine, marker: str) -> Step[None]:
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


FAMILY = Family(
    name="gpt_oss",
    markers=((_H_CHANNEL, _H_MESSAGE),),
    priority=20,
    program=_harmony,
    parses_reasoning=True,
    always_parsed=True,
    reasoning_field="reasoning",
)
