"""From generated text to what a chat client sees: answer, reasoning and tool calls.

Reasoning is split off first and tool calls are parsed from the answer only, so a
``<tool_call>`` the model merely thinks about is never executed (LM Studio BT#1592).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..api.completions import is_json
from .events import ReasoningDelta, StreamEvent, TextDelta, ToolCallArgs, ToolCallStart
from .families import Family
from .reasoning import ReasoningSplitter, reasoning_markers
from .toolcalls import ToolCallParser, default_call_id


class OutputParser:
    def __init__(
        self,
        family: Family,
        chat_template: str | None,
        *,
        tool_names: list[str] | None,
        split_reasoning: bool = True,
        new_id: Callable[[], str] = default_call_id,
    ) -> None:
        self.family = family
        self.tools: ToolCallParser | None = None
        if tool_names or family.always_parsed:
            self.tools = family.parser(tool_names=tool_names or None, new_id=new_id)
        wanted = split_reasoning and not family.parses_reasoning
        markers = reasoning_markers(chat_template) if wanted else None
        self.splitter = ReasoningSplitter(markers[0], markers[1], inside=markers[2]) if markers else None

    def feed(self, text: str) -> list[StreamEvent]:
        return self._route(self.splitter.feed(text) if self.splitter else [TextDelta(text)])

    def finish(self) -> list[StreamEvent]:
        events = self._route(self.splitter.finish()) if self.splitter else []
        if self.tools is not None:
            events += self.tools.finish()
        return events

    @property
    def calls(self) -> int:
        return self.tools.calls if self.tools is not None else 0

    def _route(self, events: list[TextDelta | ReasoningDelta]) -> list[StreamEvent]:
        if self.tools is None:
            return [e for e in events if not (isinstance(e, TextDelta) and not e.text)]
        out: list[StreamEvent] = []
        for event in events:
            out += self.tools.feed(event.text) if isinstance(event, TextDelta) else [event]
        return out


@dataclass
class AssistantMessage:
    """Accumulates events into the non-streaming ``message`` (and counts reasoning)."""

    reasoning_field: str | None  # "reasoning_content", "reasoning", or None to keep it in content
    names: dict[str, str] = field(default_factory=dict)  # model-facing tool name -> caller's name
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def add(self, event: StreamEvent) -> dict[str, Any] | None:
        """Record an event; return its streaming ``delta`` (None when it shows nothing)."""
        if isinstance(event, TextDelta):
            if not event.text:
                return None
            self.content.append(event.text)
            return {"content": event.text}
        if isinstance(event, ReasoningDelta):
            if not event.text:
                return None
            if self.reasoning_field is None:
                self.content.append(event.text)
                return {"content": event.text}
            self.reasoning.append(event.text)
            return {self.reasoning_field: event.text}
        if isinstance(event, ToolCallStart):
            name = self.names.get(event.name, event.name)
            self.calls.append(
                {"id": event.id, "type": "function", "function": {"name": name, "arguments": ""}}
            )
            return {
                "tool_calls": [
                    {"index": event.index, "id": event.id, "type": "function",
                     "function": {"name": name, "arguments": ""}}
                ]
            }  # fmt: skip
        assert isinstance(event, ToolCallArgs)
        self.calls[event.index]["function"]["arguments"] += event.text
        return {"tool_calls": [{"index": event.index, "function": {"arguments": event.text}}]}

    def complete_calls(self) -> list[dict[str, Any]]:
        """Calls whose arguments parse. A call cut off or broken after its name was streamed
        cannot be taken back from a stream, but a whole response omits it (as LM Studio does)."""
        return [call for call in self.calls if is_json(call["function"]["arguments"])]

    def message(self) -> dict[str, Any]:
        calls = self.complete_calls()
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(self.content) if self.content or not calls else None,
        }
        if calls:  # OpenAI omits the field when there are none
            message["tool_calls"] = calls
        if self.reasoning_field is not None and self.reasoning:
            message[self.reasoning_field] = "".join(self.reasoning)
        return message

