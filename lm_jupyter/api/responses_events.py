"""The Responses API's output side (pure): response objects, output items and the typed events.

:class:`ResponseEvents` turns the typed chat deltas a ``Turn`` yields into output items and the
numbered SSE event sequence; a non-streaming response is the same builder's final object, so
the streamed and the whole response always agree.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from .completions import Outcome, is_json
from .errors import APIError
from .responses_request import McpToolSpec, ResponsesRequest, ToolChoiceFunction, ToolChoiceMcp, new_item_id


def usage(outcomes: list[Outcome]) -> dict[str, Any]:
    """Usage over every generation round of one response."""
    prompt = sum(o.prompt_tokens for o in outcomes)
    completion = sum(o.completion_tokens for o in outcomes)
    cached = sum(o.cached_tokens for o in outcomes)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": prompt - cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": sum(o.reasoning_tokens for o in outcomes)},
        "total_tokens": prompt + completion,
    }


def new_response(request: ResponsesRequest, model: str) -> dict[str, Any]:
    """A response object in progress; ``ResponseEvents`` fills in output, status and usage."""
    fmt = request.text.format if request.text is not None else None
    tools: list[dict[str, Any]] = [
        tool.echo() if isinstance(tool, McpToolSpec) else tool.model_dump() for tool in request.tools or []
    ]
    tool_choice: Any = request.tool_choice or "auto"
    if isinstance(tool_choice, ToolChoiceFunction | ToolChoiceMcp):
        tool_choice = tool_choice.model_dump()
    return {
        "id": new_item_id("resp_"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "background": False,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "max_tool_calls": request.max_tool_calls,
        "metadata": request.metadata or {},
        "model": model,
        "output": [],
        "parallel_tool_calls": request.parallel_tool_calls,
        "previous_response_id": request.previous_response_id,
        "reasoning": {
            "effort": request.reasoning.effort if request.reasoning else None,
            "summary": None,
        },
        "store": request.store,
        "temperature": request.temperature,
        "text": {"format": fmt.model_dump(exclude_none=True, by_alias=True) if fmt else {"type": "text"}},
        "tool_choice": tool_choice,
        "tools": tools,
        "top_p": request.top_p,
        "truncation": "disabled",
        "usage": None,
        "user": None,
        "output_text": "",
    }


def output_text(output: list[dict[str, Any]]) -> str:
    return "".join(
        part["text"]
        for item in output
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )


class ResponseEvents:
    """Builds a response's output items and its numbered SSE events from typed chat deltas.

    Items open when their first piece arrives and close when the next kind starts or the round
    ends: reasoning, then the message, then function calls, as OpenAI orders them.
    """

    def __init__(self, response: dict[str, Any], held: set[str] | None = None) -> None:
        self.response = response
        self.held = held or set()  # tool names whose calls are not streamed as function calls
        self.sequence = 0
        self.pending: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None  # the open reasoning or message item
        self._calls: dict[int, dict[str, Any]] = {}  # open function calls by the chat delta index
        self._held: dict[int, dict[str, Any]] = {}  # calls of held tools, by the same index

    @property
    def output(self) -> list[dict[str, Any]]:
        return self.response["output"]

    def emit(self, kind: str, **fields: Any) -> None:
        self.pending.append({"type": kind, **fields, "sequence_number": self.sequence})
        self.sequence += 1

    def drain(self) -> list[dict[str, Any]]:
        events, self.pending = self.pending, []
        return events

    def start(self) -> None:
        self.emit("response.created", response=self.snapshot())
        self.emit("response.in_progress", response=self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        return copy.deepcopy(self.response)

    # items ---------------------------------------------------------------------------------

    def open_item(self, item: dict[str, Any]) -> int:
        self.output.append(item)
        index = len(self.output) - 1
        self.emit("response.output_item.added", output_index=index, item=copy.deepcopy(item))
        return index

    def close_item(self, item: dict[str, Any]) -> None:
        if item.get("status") == "in_progress":
            item["status"] = "completed"
        self.emit("response.output_item.done", output_index=self._index(item), item=copy.deepcopy(item))

    def add_item(self, item: dict[str, Any]) -> None:
        """A whole item at once (an MCP tool listing, an approval request)."""
        self.open_item(item)
        self.close_item(item)

    def _index(self, item: dict[str, Any]) -> int:
        return next(i for i, candidate in enumerate(self.output) if candidate is item)

    # chat deltas ---------------------------------------------------------------------------

    def delta(self, delta: dict[str, Any]) -> None:
        """One chat delta from a ``Turn``: ``content``, ``reasoning_content`` or ``tool_calls``."""
        if delta.get("reasoning_content"):
            self._part("reasoning", delta["reasoning_content"])
        if delta.get("content"):
            self._part("message", delta["content"])
        for call in delta.get("tool_calls") or []:
            if "id" in call and call["function"]["name"] in self.held:
                self._held[call["index"]] = {"call_id": call["id"], "name": call["function"]["name"]}
                self._held[call["index"]]["arguments"] = ""
            elif "id" in call:
                self._close_current()
                item = {
                    "id": new_item_id("fc_"),
                    "type": "function_call",
                    "status": "in_progress",
                    "arguments": "",
                    "call_id": call["id"],
                    "name": call["function"]["name"],
                }
                self._calls[call["index"]] = item
                self.open_item(item)
            fragment = call["function"].get("arguments") or ""
            if fragment and call["index"] in self._held:
                self._held[call["index"]]["arguments"] += fragment
            elif fragment:
                item = self._calls[call["index"]]
                item["arguments"] += fragment
                self.emit(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=self._index(item),
                    delta=fragment,
                )

    def _part(self, kind: str, text: str) -> None:
        item = self._current
        if item is None or item["type"] != kind:
            self._close_current()
            if kind == "reasoning":
                item = {"id": new_item_id("rs_"), "type": "reasoning", "summary": [], "content": []}
                part = {"type": "reasoning_text", "text": ""}
            else:
                item = {
                    "id": new_item_id("msg_"),
                    "type": "message",
                    "status": "in_progress",
                    "role": "assistant",
                    "content": [],
                }
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            self._current = item
            index = self.open_item(item)
            item["content"].append(part)
            self.emit(
                "response.content_part.added",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=copy.deepcopy(part),
            )
        item["content"][0]["text"] += text
        fields: dict[str, Any] = {"logprobs": []} if kind == "message" else {}
        self.emit(
            "response.output_text.delta" if kind == "message" else "response.reasoning_text.delta",
            item_id=item["id"],
            output_index=self._index(item),
            content_index=0,
            delta=text,
            **fields,
        )

    def _close_current(self, truncated: bool = False) -> None:
        item, self._current = self._current, None
        if item is None:
            return
        if truncated and item["type"] == "message":
            item["status"] = "incomplete"
        part = item["content"][0]
        index = self._index(item)
        if item["type"] == "message":
            self.emit(
                "response.output_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=part["text"],
                logprobs=[],
            )
        else:
            self.emit(
                "response.reasoning_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=part["text"],
            )
        self.emit(
            "response.content_part.done",
            item_id=item["id"],
            output_index=index,
            content_index=0,
            part=copy.deepcopy(part),
        )
        self.close_item(item)

    def end_round(self, truncated: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Close every open item; return this round's complete function calls (arguments cut off
        by the token limit leave an incomplete item) and its held calls, marked ``complete``."""
        self._close_current(truncated)
        calls = []
        for item in self._calls.values():
            complete = is_json(item["arguments"])
            if not complete or truncated:
                item["status"] = "incomplete"
            self.emit(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=self._index(item),
                arguments=item["arguments"],
            )
            self.close_item(item)
            if complete:
                calls.append(item)
        held = [
            {**call, "complete": is_json(call["arguments"]) and not truncated}
            for call in self._held.values()
        ]
        self._calls, self._held = {}, {}
        return calls, held

    # end -----------------------------------------------------------------------------------

    def finish(self, outcomes: list[Outcome]) -> dict[str, Any]:
        """Close the response: ``completed``, ``incomplete`` when the token limit cut it, or
        ``cancelled`` when its client went away (no event then: nobody is listening)."""
        self._close_current()
        stop = outcomes[-1].stop_reason if outcomes else None
        self.response["usage"] = usage(outcomes)
        self.response["output_text"] = output_text(self.output)
        self.response["completed_at"] = int(time.time())
        if stop == "userStopped":
            self.response["status"] = "cancelled"
        elif stop in ("maxPredictedTokensReached", "contextLengthReached"):
            self.response["status"] = "incomplete"
            self.response["incomplete_details"] = {"reason": "max_output_tokens"}
            self.emit("response.incomplete", response=self.snapshot())
        else:
            self.response["status"] = "completed"
            self.emit("response.completed", response=self.snapshot())
        return self.response

    def fail(self, error: APIError) -> dict[str, Any]:
        """An error after the stream began: an ``error`` event, then ``response.failed``."""
        self.emit("error", code=error.code or error.type, message=error.message, param=error.param)
        self.response["status"] = "failed"
        self.response["error"] = {"code": "server_error", "message": error.message}
        self.emit("response.failed", response=self.snapshot())
        return self.response

