"""LM Studio's default tool use, for chat templates that know nothing of tools.

The tools are described in the system prompt, the model asks for calls as
``[TOOL_REQUEST]{"name": f, "arguments": {...}}[END_TOOL_REQUEST]`` (parsed by the
``fallback`` family), and past calls and results are rewritten into turns such a template can
render.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

REQUEST_OPEN = "[TOOL_REQUEST]"
REQUEST_CLOSE = "[END_TOOL_REQUEST]"


def fallback_system_prompt(tools: list[dict[str, Any]]) -> str:
    """The system prompt that teaches a model without template tool support to call tools, in
    the spirit of LM Studio's default prompt (whose exact words it says are subject to change)."""
    listing = json.dumps({"type": "toolArray", "tools": tools}, ensure_ascii=False)
    example = json.dumps({"name": "tool_name", "arguments": {"param1": "value1"}})
    return (
        "You are a tool-calling AI. You can request calls to available tools with this EXACT format:\n"
        f"{REQUEST_OPEN}{example}{REQUEST_CLOSE}\n\n"
        f"AVAILABLE TOOLS:\n{listing}\n\n"
        "RULES:\n"
        "- Only call tools listed in AVAILABLE TOOLS, spelled exactly as listed.\n"
        "- Put the arguments in one JSON object that follows the tool's parameters, "
        "with every required argument.\n"
        f"- Write one {REQUEST_OPEN}...{REQUEST_CLOSE} per call; for several calls, "
        "write them one after another.\n"
        "- After a request, stop: the result comes back in the next message. Never make up a result.\n"
        f"- When no tool is needed, answer normally without {REQUEST_OPEN}."
    )


def fallback_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rewrite a conversation for a template that knows no tool roles (LM Studio does the same).

    Assistant ``tool_calls`` become ``[TOOL_REQUEST]`` text, the format the model is taught, and
    ``tool`` results become user messages naming the tool. A result is merged into a neighbouring
    user message, since many such templates insist that user and assistant turns alternate.
    Other messages pass through unchanged; the input is not modified.
    """
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    merged_ok: list[bool] = []  # whether out[i] may absorb a neighbouring tool result
    for message in messages:
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            converted = {key: value for key, value in message.items() if key != "tool_calls"}
            text = _plain_text(message.get("content"))
            requests = "".join(_tool_request(call, names) for call in message["tool_calls"])
            converted["content"] = f"{text}\n{requests}" if text else requests
            out.append(converted)
            merged_ok.append(False)
        elif role == "tool":
            call_id = str(message.get("tool_call_id") or "")
            name = message.get("name") or names.get(call_id) or "the tool"
            result = f"Result of {name} (call {call_id}):\n{_plain_text(message.get('content'))}"
            if out and out[-1].get("role") == "user" and isinstance(out[-1].get("content"), str):
                out[-1] = {**out[-1], "content": f"{out[-1]['content']}\n\n{result}"}
            else:
                out.append({"role": "user", "content": result})
                merged_ok.append(True)
        elif role == "user" and merged_ok and merged_ok[-1] and isinstance(message.get("content"), str):
            out[-1] = {**out[-1], "content": f"{out[-1]['content']}\n\n{message['content']}"}
        else:
            out.append(dict(message))
            merged_ok.append(False)
    return out


def _tool_request(call: dict[str, Any], names: dict[str, str]) -> str:
    function = call.get("function") or {}
    name = function.get("name", "")
    if call.get("id"):
        names[str(call["id"])] = name
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):  # else the model sees what the caller sent
            arguments = json.loads(arguments) if arguments.strip() else {}
    elif arguments is None:
        arguments = {}
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"{REQUEST_OPEN}{body}{REQUEST_CLOSE}"


def _plain_text(content: object) -> str:
    """Message content as text: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""
