"""Build the prompt of a chat request: tools, tool names and the model's template.

Tool names are normalised for the model (LM Studio does the same for reliability) and the
map back is kept, so callers always see their own names in ``tool_calls``. Templates that
know nothing of tools get LM Studio's fallback: the tools described in the system prompt and
calls requested as ``[TOOL_REQUEST]…[END_TOOL_REQUEST]``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .template import render_chat
from .toolcalls import detect_family, fallback_messages, fallback_system_prompt, normalize_tool_name


@dataclass
class PreparedChat:
    prompt: str
    family: str
    tool_names: list[str] | None  # model-facing names to parse calls for; None: no tools offered
    names: dict[str, str] = field(default_factory=dict)  # model-facing -> caller's


def prepare_chat(
    template: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    *,
    tool_choice: str | None,
    bos_token: str,
    eos_token: str,
    reasoning_effort: str | None = None,
) -> PreparedChat:
    family = detect_family(template)
    if tool_choice == "none":  # the model is not told about tools at all
        tools = None
    names: dict[str, str] = {}
    model_tools = None
    if tools:
        model_tools = copy.deepcopy(tools)
        for tool in model_tools:
            original = tool["function"]["name"]
            tool["function"]["name"] = normalize_tool_name(original)
            names[tool["function"]["name"]] = original
    messages = _rename_calls(messages, {v: k for k, v in names.items()})
    if _OBJECT_ARGUMENTS.search(template):
        messages = _parsed_arguments(messages)
    if model_tools and family == "fallback":
        messages = _with_system(fallback_messages(messages), fallback_system_prompt(model_tools))
        model_tools = None
    prompt = render_chat(
        template,
        messages,
        bos_token=bos_token,
        eos_token=eos_token,
        tools=model_tools,
        reasoning_effort=reasoning_effort,
    )
    return PreparedChat(prompt, family, list(names) if tools else None, names)


def _rename_calls(messages: list[dict[str, Any]], to_model: dict[str, str]) -> list[dict[str, Any]]:
    """Earlier assistant turns must show the model the names it was given."""
    if not to_model:
        return messages
    renamed = copy.deepcopy(messages)
    for message in renamed:
        for call in message.get("tool_calls") or []:
            call["function"]["name"] = to_model.get(call["function"]["name"], call["function"]["name"])
    return renamed


# Templates that serialise a call's arguments themselves (Qwen 2.5: ``arguments | tojson``) need
# them as an object, as Hugging Face passes them; a JSON string would be quoted a second time and
# the model, seeing escaped JSON in its own past calls, starts answering in that shape.
_OBJECT_ARGUMENTS = re.compile(r"arguments\s*\|\s*tojson")


def _parsed_arguments(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    parsed = copy.deepcopy(messages)
    for message in parsed:
        for call in message.get("tool_calls") or []:
            with contextlib.suppress(ValueError):
                call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    return parsed


def _with_system(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    if messages and messages[0]["role"] in ("system", "developer"):
        first = {**messages[0], "content": f"{messages[0]['content']}\n\n{text}"}
        return [first, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]
