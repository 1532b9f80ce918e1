"""LM Studio's ``/api/v1/chat`` output (pure): its stream events and its result, made from the
Responses run's events and response object (``responses_events.py``).

Event names and fields follow LM Studio 0.4's streaming-events page (docs/lmstudio-rest-v1.md):
``chat.start``, ``model_load.*``, ``prompt_processing.*``, ``reasoning.*``, ``tool_call.*``,
``message.*``, ``error`` and ``chat.end`` with the whole result.
"""

from __future__ import annotations

import json
from typing import Any

from .completions import Outcome, PromptProgress
from .errors import APIError

# LM Studio's error types, by our error codes where the code says more than the status.
_ERROR_TYPES = {
    "model_not_found": "model_not_found",
    "plugin_not_found": "plugin_connection_error",
    "mcp_disabled": "invalid_request",
}


def error_json(error: APIError) -> dict[str, Any]:
    """An error in LM Studio's v1 shape (the body of a failed request and the ``error`` event)."""
    kind = _ERROR_TYPES.get(error.code or "")
    if kind is None:
        kind = "invalid_request" if error.status < 500 else "internal_error"
    body: dict[str, Any] = {"type": kind, "message": error.message}
    if error.code:
        body["code"] = error.code
    if error.param:
        body["param"] = error.param
    return body


def error_body(error: APIError) -> dict[str, Any]:
    return {"error": error_json(error)}


def _arguments(text: str) -> Any:
    """Tool arguments as an object, as LM Studio sends them (the raw text if it is not JSON)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _provider(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "ephemeral_mcp", "server_label": item["server_label"]}


def _call(item: dict[str, Any]) -> dict[str, Any]:
    """A call that ran, as both the output item and ``tool_call.success`` show it."""
    return {
        "tool": item["name"],
        "arguments": _arguments(item["arguments"]),
        "output": item.get("output") or "",
        "provider_info": _provider(item),
    }


def _text(item: dict[str, Any]) -> str:
    return "".join(part["text"] for part in item["content"])


class V1ChatEvents:
    """Translates one run's events; ``hide_reasoning`` (``reasoning: "off"``) leaves reasoning out."""

    def __init__(self, hide_reasoning: bool) -> None:
        self.hide_reasoning = hide_reasoning
        self._prompt_open = False

    def progress(self, progress: PromptProgress) -> list[dict[str, Any]]:
        """One prompt chunk processed: ``start`` before the first, ``end`` after the last."""
        events = []
        if not self._prompt_open:
            self._prompt_open = True
            events.append({"type": "prompt_processing.start"})
        events.append({"type": "prompt_processing.progress", "progress": round(progress.fraction, 4)})
        if progress.processed >= progress.total:
            self._prompt_open = False
            events.append({"type": "prompt_processing.end"})
        return events

    def translate(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event["type"]
        if kind == "error":
            error = APIError(event["message"], status=500, code=event.get("code"), param=event.get("param"))
            return [{"type": "error", "error": error_json(error)}]
        item = event.get("item")
        if kind == "response.output_item.added":
            return self._opened(item)  # type: ignore[arg-type]
        if kind == "response.output_item.done":
            return self._closed(item)  # type: ignore[arg-type]
        if kind == "response.reasoning_text.delta" and not self.hide_reasoning:
            return [{"type": "reasoning.delta", "content": event["delta"]}]
        if kind == "response.output_text.delta":
            return [{"type": "message.delta", "content": event["delta"]}]
        return []

    def _edge(self, kind: str, edge: str) -> list[dict[str, Any]]:
        """``reasoning.start``/``.end`` and ``message.start``/``.end`` around their items."""
        return [] if kind == "reasoning" and self.hide_reasoning else [{"type": f"{kind}.{edge}"}]

    def _opened(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        kind = item["type"]
        if kind in ("reasoning", "message"):
            return self._edge(kind, "start")
        if kind == "mcp_call":  # its arguments are whole before the call runs
            tool, provider = item["name"], _provider(item)
            return [
                {"type": "tool_call.start", "tool": tool, "provider_info": provider},
                {
                    "type": "tool_call.arguments",
                    "tool": tool,
                    "arguments": _arguments(item["arguments"]),
                    "provider_info": provider,
                },
            ]
        return []

    def _closed(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        kind = item["type"]
        if kind in ("reasoning", "message"):
            return self._edge(kind, "end")
        if kind == "mcp_call" and item["status"] == "completed":
            return [{"type": "tool_call.success", **_call(item)}]
        if kind in ("mcp_call", "function_call"):
            failed = invalid_call(item)
            return [{"type": "tool_call.failure", "reason": failed["reason"], "metadata": failed["metadata"]}]
        return []


def invalid_call(item: dict[str, Any]) -> dict[str, Any]:
    """A call that did not run: an MCP call that failed, or a call of a tool no integration has."""
    if item["type"] == "function_call":
        reason = f"Cannot find tool with name {item['name']}."
        metadata: dict[str, Any] = {"type": "invalid_name", "tool_name": item["name"]}
    else:
        error = item.get("error") or {}
        reason = str(error.get("message") or error) if isinstance(error, dict) else str(error)
        metadata = {
            "type": "invalid_arguments",
            "tool_name": item["name"],
            "arguments": _arguments(item["arguments"]),
            "provider_info": _provider(item),
        }
    return {"type": "invalid_tool_call", "reason": reason, "metadata": metadata}


def result(
    response: dict[str, Any],
    outcomes: list[Outcome],
    instance_id: str,
    *,
    load_time: float | None,
    hide_reasoning: bool,
) -> dict[str, Any]:
    """The non-streaming body (and ``chat.end``'s ``result``) from the run's response object."""
    output: list[dict[str, Any]] = []
    for item in response["output"]:
        kind = item["type"]
        if kind == "reasoning" and not hide_reasoning:
            output.append({"type": "reasoning", "content": _text(item)})
        elif kind == "message":
            output.append({"type": "message", "content": _text(item)})
        elif kind == "mcp_call" and item["status"] == "completed":
            output.append({"type": "tool_call", **_call(item)})
        elif kind in ("mcp_call", "function_call"):
            output.append(invalid_call(item))
    body: dict[str, Any] = {"model_instance_id": instance_id, "output": output, "stats": stats(outcomes)}
    if load_time is not None:
        body["stats"]["model_load_time_seconds"] = round(load_time, 3)
    if response["store"]:
        body["response_id"] = response["id"]
    return body


def stats(outcomes: list[Outcome]) -> dict[str, Any]:
    """LM Studio's stats over every generation round of the chat."""
    completion = sum(o.completion_tokens for o in outcomes)
    decode_time = sum(o.generation_time - o.time_to_first_token for o in outcomes)
    decoded = completion - len(outcomes)  # each round's first token is timed as its prompt's
    return {
        "input_tokens": sum(o.prompt_tokens for o in outcomes),
        "total_output_tokens": completion,
        "reasoning_output_tokens": sum(o.reasoning_tokens for o in outcomes),
        "tokens_per_second": decoded / decode_time if decoded > 0 and decode_time > 0 else 0.0,
        "time_to_first_token_seconds": round(outcomes[0].time_to_first_token, 3) if outcomes else 0.0,
    }
