"""An upstream's streamed chunks as the typed chat events the local parsers produce.

vLLM, llama-server and another lm_jupyter have already parsed reasoning and tool calls; reading
their deltas into ``TextDelta``/``ReasoningDelta``/``ToolCallStart``/``ToolCallArgs`` lets one
``AssistantMessage`` build the client's deltas and message for local and remote models alike,
with reasoning under the field the client chose. Pure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..api.completions import Outcome
from ..api.logprobs import upstream_entries
from .events import ReasoningDelta, StreamEvent, TextDelta, ToolCallArgs, ToolCallStart

# OpenAI finish reasons as LM Studio's stop reasons (the inverse of responses.FINISH_REASONS).
STOP_REASONS = {"stop": "eosFound", "length": "maxPredictedTokensReached", "tool_calls": "toolCalls"}


@dataclass
class ChunkReader:
    """Turns an upstream's streamed chunks into typed events and, at the end, an ``Outcome``.

    Tool calls keep the upstream's ids and arrive as the same start/arguments events the local
    parsers emit; both reasoning field names are read, so the client gets its own choice.
    """

    chat: bool
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    chunks: int = 0  # chunks that carried text: the completion token count when no usage came
    _calls: dict[int, int] = field(default_factory=dict)  # upstream tool-call index -> ours
    done: bool = False  # the upstream's [DONE] arrived
    logprobs: list[dict[str, Any]] = field(default_factory=list)  # the answer's, as they came

    def feed(self, payload: str) -> list[StreamEvent]:
        if payload == "[DONE]":
            self.done = True
            return []
        chunk = json.loads(payload)
        if not isinstance(chunk, dict):
            raise ValueError("a streamed chunk is not a JSON object")
        if "error" in chunk:
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else None
            raise UpstreamStreamError(message if isinstance(message, str) else json.dumps(error))
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        events: list[StreamEvent] = []
        for choice in chunk.get("choices") or []:
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            events += self._choice_events(choice)
            self.logprobs += upstream_entries(choice.get("logprobs"), chat=self.chat)
        if any(isinstance(e, TextDelta | ReasoningDelta) and e.text for e in events):
            self.chunks += 1
        return events

    def _choice_events(self, choice: dict[str, Any]) -> list[StreamEvent]:
        if not self.chat:
            return [TextDelta(choice["text"])] if choice.get("text") else []
        delta = choice.get("delta") or {}
        events: list[StreamEvent] = []
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            events.append(ReasoningDelta(reasoning))
        if isinstance(delta.get("content"), str) and delta["content"]:
            events.append(TextDelta(delta["content"]))
        for call in delta.get("tool_calls") or []:
            events += self._call_events(call)
        return events

    def _call_events(self, call: dict[str, Any]) -> list[StreamEvent]:
        upstream_index = call.get("index", len(self._calls))
        function = call.get("function") or {}
        events: list[StreamEvent] = []
        if upstream_index not in self._calls:
            self._calls[upstream_index] = len(self._calls)
            call_id = call.get("id") or f"call_{upstream_index}"
            events.append(ToolCallStart(self._calls[upstream_index], call_id, function.get("name") or ""))
        if function.get("arguments"):
            events.append(ToolCallArgs(self._calls[upstream_index], function["arguments"]))
        return events

    def outcome(self, time_to_first_token: float, generation_time: float, *, stopped: bool) -> Outcome:
        usage = self.usage or {}
        details = usage.get("prompt_tokens_details") or {}
        reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
        stop_reason = "userStopped" if stopped else STOP_REASONS.get(self.finish_reason or "stop", "eosFound")
        return Outcome(
            stop_reason=stop_reason,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or self.chunks),
            time_to_first_token=time_to_first_token,
            generation_time=generation_time,
            cached_tokens=int(details.get("cached_tokens") or 0),
            reasoning_tokens=int(reasoning),
        )


class UpstreamStreamError(Exception):
    """An upstream sent an error event in the middle of its stream."""
