"""Typed events the streaming output parsers produce.

The server turns each event into one part of an OpenAI delta (``content``, ``reasoning_content``,
``tool_calls[i]``), so the parsers never need to know about the wire format, and a non-streaming
reply is just the events of a whole generation collapsed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Answer text for ``delta.content``."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """Thinking text for ``delta.reasoning_content`` (``reasoning`` for gpt-oss)."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    """A new call, announced as soon as its name is known (OpenAI's first tool-call delta)."""

    index: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallArgs:
    """A fragment of call ``index``'s arguments JSON text; the fragments concatenate to it."""

    index: int
    text: str


StreamEvent = TextDelta | ReasoningDelta | ToolCallStart | ToolCallArgs
