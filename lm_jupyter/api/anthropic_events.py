"""Anthropic's Messages API, output side (pure): the message object and its SSE events.

:class:`MessageEvents` turns the typed chat deltas a ``Turn`` yields (``content``,
``reasoning_content``, ``tool_calls``) into content blocks (``thinking``, ``text``,
``tool_use``) and Anthropic's event sequence: ``message_start``, ``ping``, then per block
``content_block_start``/``content_block_delta``/``content_block_stop``, then ``message_delta``
(stop reason and usage) and ``message_stop``. A non-streaming reply is the same builder's
final message, so the two can never disagree.
"""

from __future__ import annotations

import copy
import json
import secrets
import string
from typing import Any

from .completions import Outcome, is_json

_BASE62 = string.ascii_letters + string.digits

# LM Studio's stop reasons as Anthropic's ``stop_reason``.
STOP_REASONS = {
    "eosFound": "end_turn",
    "stopStringFound": "stop_sequence",
    "toolCalls": "tool_use",
    "maxPredictedTokensReached": "max_tokens",
    "contextLengthReached": "model_context_window_exceeded",
    "userStopped": "end_turn",
}


def new_id(prefix: str) -> str:
    """Anthropic's ids: ``msg_`` / ``toolu_`` and 24 base-62 characters."""
    return prefix + "".join(secrets.choice(_BASE62) for _ in range(24))


def usage(outcome: Outcome) -> dict[str, Any]:
    """Tokens the prefix cache served are ``cache_read_input_tokens``, the rest ``input_tokens``:
    their sum is what ``count_tokens`` reports for the same request."""
    counts: dict[str, Any] = {
        "input_tokens": outcome.prompt_tokens - outcome.cached_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": outcome.cached_tokens,
        "output_tokens": outcome.completion_tokens,
    }
    if outcome.reasoning_tokens:
        counts["output_tokens_details"] = {"thinking_tokens": outcome.reasoning_tokens}
    return counts


class MessageEvents:
    """Builds one assistant message and its SSE events from typed chat deltas.

    A block opens when its first piece arrives and closes when a different kind starts or the
    turn ends. ``thinking`` says how reasoning shows (``MessagesInput.thinking_display``): as
    it is, as empty thinking blocks (``omitted``), or not at all (``none``).
    """

    def __init__(self, model: str, *, thinking: str = "summarized") -> None:
        self.message: dict[str, Any] = {
            "id": new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 0,
            },
        }
        self.thinking = thinking
        self.pending: list[tuple[str, dict[str, Any]]] = []
        self._open: dict[str, Any] | None = None  # the block being streamed
        self._arguments: dict[int, str] = {}  # tool_use block index -> its JSON text so far
        self._calls: dict[int, int] = {}  # the chat delta's call index -> tool_use block index
        self._broken: set[int] = set()  # tool_use blocks whose arguments are not JSON

    def emit(self, kind: str, **fields: Any) -> None:
        self.pending.append((kind, {"type": kind, **fields}))

    def drain(self) -> list[tuple[str, dict[str, Any]]]:
        events, self.pending = self.pending, []
        return events

    def start(self, prompt_tokens: int) -> None:
        """``message_start``: the prompt's size is known once the worker has tokenized it."""
        self.message["usage"]["input_tokens"] = prompt_tokens
        snapshot = copy.deepcopy(self.message)
        snapshot["usage"]["output_tokens"] = 0
        self.emit("message_start", message=snapshot)
        self.emit("ping")

    def delta(self, delta: dict[str, Any]) -> None:
        thinking = delta.get("reasoning_content")
        if thinking and self.thinking != "none":
            block = self._block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            if self.thinking == "summarized":
                block["thinking"] += thinking
                self._delta({"type": "thinking_delta", "thinking": thinking})
        text = delta.get("content")
        if text:
            block = self._block("text", {"type": "text", "text": ""})
            block["text"] += text
            self._delta({"type": "text_delta", "text": text})
        for call in delta.get("tool_calls") or []:
            if "id" in call:
                self._close()
                name = call["function"]["name"]
                self._open = {"type": "tool_use", "id": new_id("toolu_"), "name": name, "input": {}}
                self._start_block()
                self._calls[call["index"]] = self._index
                self._arguments[self._index] = ""
            piece = call["function"].get("arguments") or ""
            index = self._calls.get(call["index"])
            if piece and index is not None:
                self._arguments[index] += piece
                if self._open is not None and index == self._index:
                    self._delta({"type": "input_json_delta", "partial_json": piece})

    def finish(self, outcome: Outcome, stop_sequence: str | None = None) -> None:
        """Close the last block, set the stop reason and usage: ``message_delta``, ``message_stop``."""
        self._close()
        reason = STOP_REASONS.get(outcome.stop_reason, "end_turn")
        self.message["stop_reason"] = reason
        self.message["stop_sequence"] = stop_sequence if reason == "stop_sequence" else None
        self.message["usage"] = usage(outcome)
        # Tool calls whose arguments are not JSON (cut off by max_tokens) were streamed but are
        # left out of the whole message, as the chat completions path leaves them out.
        blocks = self.message["content"]
        self.message["content"] = [block for index, block in enumerate(blocks) if index not in self._broken]
        self.emit(
            "message_delta",
            delta={"stop_reason": reason, "stop_sequence": self.message["stop_sequence"]},
            usage=self.message["usage"],
        )
        self.emit("message_stop")

    def fail(self, error: dict[str, Any]) -> None:
        """An error after the stream began: Anthropic's ``error`` event ends it."""
        self.emit("error", error=error["error"])

    # -- blocks ------------------------------------------------------------------------------

    @property
    def _index(self) -> int:
        return len(self.message["content"]) - 1

    def _block(self, kind: str, empty: dict[str, Any]) -> dict[str, Any]:
        if self._open is None or self._open["type"] != kind:
            self._close()
            self._open = empty
            self._start_block()
        return self._open

    def _start_block(self) -> None:
        assert self._open is not None
        self.message["content"].append(self._open)
        self.emit("content_block_start", index=self._index, content_block=copy.deepcopy(self._open))

    def _delta(self, delta: dict[str, Any]) -> None:
        self.emit("content_block_delta", index=self._index, delta=delta)

    def _close(self) -> None:
        if self._open is None:
            return
        if self._open["type"] == "tool_use":
            arguments = self._arguments[self._index]
            if is_json(arguments):
                self._open["input"] = json.loads(arguments)
            else:
                self._broken.add(self._index)
        self.emit("content_block_stop", index=self._index)
        self._open = None
