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

from .fallback_tools import fallback_messages, fallback_system_prompt
from .families import FALLBACK, Family, detect_family
from .segments import Part, split_prompt
from .template import render_chat
from .toolnames import normalize_tool_name


@dataclass
class PreparedChat:
    prompt: str
    family: Family  # detected once here; the output parser, forced calls and reasoning use it
    tool_names: list[str] | None  # model-facing names to parse calls for; None: no tools offered
    names: dict[str, str] = field(default_factory=dict)  # model-facing -> caller's
    # The prompt as (text, parse special tokens?): only the template's markup is special.
    parts: list[Part] = field(default_factory=list)


def prepare_chat(
    template: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    *,
    tool_choice: str | None,
    bos_token: str,
    eos_token: str,
    reasoning_effort: str | None = None,
    continue_final: bool = False,
) -> PreparedChat:
    """``continue_final``: the last message is an assistant's unfinished answer; the prompt is
    the conversation before it with the template's generation prompt, then that text as plain
    content, so the model goes on from it (every template opens the assistant turn the same way
    for a new answer, so this works whatever the template does with a final assistant message)."""
    family = detect_family(template)
    prefill = messages[-1]["content"] if continue_final else ""
    if continue_final:
        messages = messages[:-1]
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
    if "developer" not in template:
        messages = _developer_as_system(messages)
    if _OBJECT_ARGUMENTS.search(template):
        messages = _parsed_arguments(messages)
    if model_tools and family is FALLBACK:
        messages = _with_system(fallback_messages(messages), fallback_system_prompt(model_tools))
        model_tools = None
    prompt, parts = split_prompt(
        lambda rendered: render_chat(
            template,
            rendered,
            bos_token=bos_token,
            eos_token=eos_token,
            tools=model_tools,
            reasoning_effort=reasoning_effort,
        ),
        messages,
    )
    if prefill:
        prompt, parts = prompt + prefill, [*parts, (prefill, False)]
    return PreparedChat(prompt, family, list(names) if tools else None, names, parts)


def _developer_as_system(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A template that never names the developer role drops such messages (Qwen 2.5 renders
    only the roles it knows, then puts its default system prompt in their place), so OpenAI
    clients' instructions would be lost: they join the system message, after its own text."""
    texts = [message["content"] for message in messages if message["role"] == "developer"]
    if not texts:
        return messages
    rest = [message for message in messages if message["role"] != "developer"]
    if rest and rest[0]["role"] == "system":
        texts.insert(0, rest[0]["content"])
        return [{**rest[0], "content": "\n\n".join(texts)}, *rest[1:]]
    return [{"role": "system", "content": "\n\n".join(texts)}, *rest]


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
