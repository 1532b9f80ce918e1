"""The chat request a Responses API request becomes (pure).

Its input items, any stored history and its ``instructions`` become chat messages, so
generation, tools, grammars and the KV prefix cache are exactly those of
``/v1/chat/completions``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .errors import APIError
from .layering import EXTENSION_FIELDS
from .responses_request import MessageItem, ResponsesRequest, ToolChoiceFunction, ToolChoiceMcp, new_item_id

# -- history -> chat messages ---------------------------------------------------------------

DECLINED = "The user declined to run this tool."


def chat_messages(instructions: str | None, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat completions messages for a conversation's items (history, input and outputs so far).

    Function calls join the assistant turn before them, as chat templates expect; an MCP call
    the model made becomes a call plus its result; an approval request the user declined is
    shown to the model as a call whose result says so.
    """
    declined = {
        item["approval_request_id"]
        for item in items
        if item["type"] == "mcp_approval_response" and not item["approve"]
    }
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})

    def call(call_id: str, name: str, arguments: str) -> None:
        entry = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(entry)
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [entry]})

    for item in items:
        kind = item["type"]
        if kind == "message":
            messages.append({"role": item["role"], "content": _text_of(item["content"])})
        elif kind == "function_call":
            call(item["call_id"], item["name"], item["arguments"])
        elif kind == "function_call_output":
            messages.append(
                {"role": "tool", "tool_call_id": item["call_id"], "content": _text_of(item["output"])}
            )
        elif kind == "mcp_call":
            call(item["id"], item["name"], item["arguments"])
            result = item.get("output")
            if result is None:
                result = f"Error: {_error_text(item.get('error'))}"
            messages.append({"role": "tool", "tool_call_id": item["id"], "content": result})
        elif kind == "mcp_approval_request" and item["id"] in declined:
            call(item["id"], item["name"], item["arguments"])
            messages.append({"role": "tool", "tool_call_id": item["id"], "content": DECLINED})
    return messages


def _text_of(content: str | list[dict[str, Any]]) -> str:
    return content if isinstance(content, str) else "".join(part["text"] for part in content)


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("content") or error)
    return str(error or "the tool failed")


def item_json(item: BaseModel, id_prefix: str = "msg_") -> dict[str, Any]:
    """An input item as stored and listed (``input_items``): every item gets an id."""
    data = item.model_dump(exclude_none=True, by_alias=True)
    if isinstance(item, MessageItem):
        data["content"] = (
            [{"type": "input_text", "text": data["content"]}]
            if isinstance(data["content"], str)
            else data["content"]
        )
        data.setdefault("status", "completed")
    data.setdefault("id", new_item_id(_ID_PREFIXES.get(data["type"], id_prefix)))
    return data


_ID_PREFIXES = {
    "message": "msg_",
    "function_call": "fc_",
    "function_call_output": "fco_",
    "reasoning": "rs_",
    "mcp_approval_response": "mcpa_",
    "mcp_list_tools": "mcpl_",
}


def chat_request(
    request: ResponsesRequest,
    messages: list[dict[str, Any]],
    extra_tools: list[dict[str, Any]],
    raw: dict[str, Any],
    *,
    offer_tools: bool = True,
) -> dict[str, Any]:
    """The chat completions body that generates one round of ``request``.

    ``extra_tools`` are MCP tools offered as functions; ``raw`` is the client's JSON, from which
    LM Studio's and llama-server's extension fields (``ttl``, ``draft_model``, ``preset``,
    ``top_k``, ``grammar``...) pass through to the chat request's own validation.
    """
    body: dict[str, Any] = {key: raw[key] for key in EXTENSION_FIELDS if raw.get(key) is not None}
    body.update(
        model=request.model,
        messages=messages,
        stream=False,
        temperature=request.temperature,
        top_p=request.top_p,
        max_tokens=request.max_output_tokens,
        parallel_tool_calls=request.parallel_tool_calls,
        reasoning_format="reasoning_content",  # ResponseEvents reads reasoning from that field
    )
    if request.reasoning is not None and request.reasoning.effort is not None:
        body["reasoning_effort"] = request.reasoning.effort
    tools = [
        {"type": "function", "function": tool.model_dump(exclude={"type", "strict"}, exclude_none=True)}
        for tool in request.function_tools()
    ] + extra_tools
    if tools and offer_tools:
        body["tools"] = tools
        if isinstance(request.tool_choice, ToolChoiceFunction | ToolChoiceMcp):
            body["tool_choice"] = {"type": "function", "function": {"name": request.tool_choice.name}}
        elif request.tool_choice is not None:
            body["tool_choice"] = request.tool_choice
    fmt = request.text.format if request.text is not None else None
    if fmt is not None and fmt.type == "json_schema":
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": fmt.name, "strict": fmt.strict, "schema": fmt.schema_},
        }
    elif fmt is not None and fmt.type == "json_object":
        body["response_format"] = {"type": "json_object"}
    return {key: value for key, value in body.items() if value is not None}


def chat_param(param: str | None) -> str | None:
    """A chat request's field name as the Responses request calls it (for error messages)."""
    if param is None:
        return None
    for chat, responses in (("response_format", "text.format"), ("max_tokens", "max_output_tokens")):
        if param == chat or param.startswith(chat + "."):
            return responses + param[len(chat) :]
    return param


def rename_param(error: APIError) -> APIError:
    renamed = chat_param(error.param)
    if renamed != error.param and error.param is not None:
        error.message = error.message.replace(f"'{error.param}'", f"'{renamed}'")
        error.param = renamed
    return error


def not_found(response_id: str, param: str | None = None) -> APIError:
    return APIError(
        f"Response with id '{response_id}' not found.",
        status=404,
        param=param,
        code="previous_response_not_found" if param == "previous_response_id" else "not_found",
    )
