"""Anthropic's Messages API (``/v1/messages``): the request, its chat request, and its errors (pure).

A Messages request becomes a chat completions request (``chat_request``): the system prompt
and the content blocks become chat messages (``tool_use`` blocks join their assistant turn as
tool calls, ``tool_result`` blocks become ``tool`` messages, past ``thinking`` is dropped as
chat templates drop past reasoning), so templates, tool parsing, grammars and the KV prefix
cache are exactly those of ``/v1/chat/completions``. The output side is ``anthropic_events.py``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from .errors import APIError
from .layering import EXTENSION_FIELDS, typed_item, validate_at
from .requests import _FieldError, _Request

# -- request -------------------------------------------------------------------------------


class TextBlock(_Request):
    type: Literal["text"]
    text: str


class ToolUseBlock(_Request):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any]


class ToolResultBlock(_Request):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[TextBlock] | None = None
    is_error: bool = False

    @field_validator("content", mode="before")
    @classmethod
    def _parts(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [typed_item("content", index, raw, _RESULT_PARTS, None) for index, raw in enumerate(value)]

    def text(self) -> str:
        text = _joined(self.content)
        return f"Error: {text}" if self.is_error else text


class ThinkingBlock(_Request):
    """Earlier thinking sent back by a client (with its signature): dropped, as templates do."""

    type: Literal["thinking"]
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(_Request):
    type: Literal["redacted_thinking"]
    data: str


ContentBlock = TextBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock

_BLOCKS: dict[str, type[BaseModel]] = {
    "text": TextBlock,
    "tool_use": ToolUseBlock,
    "tool_result": ToolResultBlock,
    "thinking": ThinkingBlock,
    "redacted_thinking": RedactedThinkingBlock,
}
_RESULT_PARTS: dict[str, type[BaseModel]] = {"text": TextBlock}
# Block types Anthropic's API has that a local text model cannot take: refused by name.
_UNSUPPORTED = {"image", "document", "search_result", "server_tool_use", "web_search_tool_result"}


class Message(_Request):
    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class ToolSpec(_Request):
    """A client tool. Anthropic's server tools (web search, code execution...) have a ``type``
    of their own and are refused: nothing here can run them."""

    type: Literal["custom"] = "custom"
    name: str = Field(min_length=1)
    description: str | None = None
    input_schema: dict[str, Any]


class ToolChoice(_Request):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = Field(default=None, min_length=1)
    disable_parallel_tool_use: bool = False

    @model_validator(mode="after")
    def _named(self) -> ToolChoice:
        if self.type == "tool" and self.name is None:
            raise _FieldError("name", "is required when type is 'tool'")
        return self


class ThinkingConfig(_Request):
    """Reasoning models think whatever this says: ``disabled`` leaves their thinking out of the
    reply, and ``display: "omitted"`` sends its blocks empty, as Anthropic's API does."""

    type: Literal["enabled", "disabled", "adaptive", "between_tools"]
    budget_tokens: int | None = Field(default=None, ge=1)
    display: Literal["summarized", "omitted"] | None = None

    @model_validator(mode="after")
    def _budget(self) -> ThinkingConfig:
        if self.type == "enabled" and self.budget_tokens is None:
            raise _FieldError("budget_tokens", "is required when type is 'enabled'")
        return self


class OutputFormat(_Request):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(_Request):
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    format: OutputFormat | None = None


class MessagesInput(_Request):
    """What ``/v1/messages/count_tokens`` takes: everything that shapes the prompt."""

    model: str = Field(min_length=1)
    messages: list[Message]
    system: str | list[TextBlock] | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None
    output_config: OutputConfig | None = None

    @field_validator("messages", mode="before")
    @classmethod
    def _messages(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        if not value:
            raise _FieldError("messages", "must contain at least one message")
        messages = [_message(index, raw) for index, raw in enumerate(value)]
        last = messages[-1]
        blocks = [last.content] if isinstance(last.content, str) else last.content
        text = "".join(b if isinstance(b, str) else b.text for b in blocks if isinstance(b, str | TextBlock))
        if last.role == "assistant" and text != text.rstrip():
            # Anthropic refuses this too: a prefill is continued exactly, whitespace included.
            raise _FieldError("messages", "final assistant content cannot end with trailing whitespace")
        return messages

    @field_validator("system", mode="before")
    @classmethod
    def _system(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [typed_item("system", index, raw, _RESULT_PARTS, None) for index, raw in enumerate(value)]

    @field_validator("tools", mode="before")
    @classmethod
    def _tools(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        tools = []
        for index, raw in enumerate(value):
            if isinstance(raw, dict) and raw.get("type", "custom") != "custom":
                raise _FieldError(
                    f"tools.{index}.type",
                    f"'{raw['type']}' is one of Anthropic's server tools, which a local server cannot "
                    "run; send it as a custom tool (name, description, input_schema) and run it yourself",
                )
            tools.append(validate_at(f"tools.{index}", ToolSpec, raw))
        return tools

    @model_validator(mode="after")
    def _tool_choice_fits(self) -> MessagesInput:
        choice = self.tool_choice
        names = [tool.name for tool in self.tools or []]
        if choice is not None and choice.type in ("any", "tool") and not names:
            raise _FieldError("tool_choice", f"'{choice.type}' needs at least one tool in 'tools'")
        if choice is not None and choice.type == "tool" and choice.name not in names:
            raise _FieldError(
                "tool_choice.name", f"'{choice.name}' is not a tool in 'tools' ({', '.join(names)})"
            )
        return self

    def thinking_display(self) -> Literal["summarized", "omitted", "none"]:
        """How reasoning shows in the reply: as it is, as empty blocks, or not at all."""
        if self.thinking is None:
            return "summarized"
        if self.thinking.type == "disabled":
            return "none"
        return self.thinking.display or "summarized"


class MessagesRequest(MessagesInput):
    max_tokens: int = Field(ge=1)
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    metadata: dict[str, Any] | None = None


def _message(index: int, raw: Any) -> Message:
    path = f"messages.{index}"
    if not isinstance(raw, dict):
        raise _FieldError(path, "must be an object")
    content = raw.get("content")
    if content == []:
        raise _FieldError(f"{path}.content", "must contain at least one content block")
    if isinstance(content, list):
        for number, block in enumerate(content):
            kind = block.get("type") if isinstance(block, dict) else None
            if kind in _UNSUPPORTED:
                raise _FieldError(
                    f"{path}.content.{number}.type",
                    f"'{kind}' blocks are not supported by this server (text models only)",
                )
        content = [typed_item(f"{path}.content", n, block, _BLOCKS, None) for n, block in enumerate(content)]
        raw = {**raw, "content": content}
    message = validate_at(path, Message, raw)
    blocks = message.content if isinstance(message.content, list) else []
    if message.role == "user" and any(
        isinstance(block, ToolUseBlock | ThinkingBlock | RedactedThinkingBlock) for block in blocks
    ):
        raise _FieldError(f"{path}.content", "user messages cannot hold tool_use or thinking blocks")
    if message.role == "assistant" and any(isinstance(block, ToolResultBlock) for block in blocks):
        raise _FieldError(f"{path}.content", "tool_result blocks belong in a user message")
    return message


def _joined(content: str | list[TextBlock] | None) -> str:
    if content is None:
        return ""
    return content if isinstance(content, str) else "\n".join(block.text for block in content)


# -- request -> chat ----------------------------------------------------------------------------


def chat_messages(request: MessagesInput) -> list[dict[str, Any]]:
    """Chat completions messages for a Messages conversation.

    A user turn's ``tool_result`` blocks become ``tool`` messages in their order, and its text
    a user message after them, as chat templates expect results right after the calls.
    """
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": _joined(request.system)})
    for message in request.messages:
        if isinstance(message.content, str):
            messages.append({"role": message.role, "content": message.content})
            continue
        text: list[str] = []
        calls: list[dict[str, Any]] = []
        for block in message.content:
            if isinstance(block, TextBlock):
                text.append(block.text)
            elif isinstance(block, ToolUseBlock):
                arguments = json.dumps(block.input, ensure_ascii=False)
                calls.append(
                    {
                        "id": block.id,
                        "type": "function",
                        "function": {"name": block.name, "arguments": arguments},
                    }
                )
            elif isinstance(block, ToolResultBlock):
                if text:  # text before a result stays before it
                    messages.append({"role": "user", "content": "\n".join(text)})
                    text = []
                messages.append({"role": "tool", "tool_call_id": block.tool_use_id, "content": block.text()})
        if message.role == "assistant":
            content = "\n".join(text) if text or not calls else None
            entry: dict[str, Any] = {"role": "assistant", "content": content}
            if calls:
                entry["tool_calls"] = calls
            messages.append(entry)
        elif text or not message.content:
            messages.append({"role": "user", "content": "\n".join(text)})
    return messages


def chat_request(request: MessagesInput, raw: dict[str, Any]) -> dict[str, Any]:
    """The chat completions body that generates (or, for count_tokens, renders) ``request``.

    ``raw`` is the client's JSON: LM Studio's and llama-server's extension fields (``ttl``,
    ``grammar``, ``min_p``...) pass through to the chat request's own validation.
    """
    body: dict[str, Any] = {key: raw[key] for key in EXTENSION_FIELDS if raw.get(key) is not None}
    messages = chat_messages(request)
    body.update(
        model=request.model,
        messages=messages,
        stream=False,
        reasoning_format="reasoning_content",  # MessageEvents reads thinking from that field
    )
    last = messages[-1]
    if last["role"] == "assistant" and last.get("content") and not last.get("tool_calls"):
        body["continue_final_message"] = True  # Anthropic's prefill: the answer goes on from it
    if isinstance(request, MessagesRequest):
        body.update(
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            top_k=request.top_k,
            stop=request.stop_sequences,
        )
    config = request.output_config
    if config is not None and config.effort is not None:
        body["reasoning_effort"] = _EFFORTS[config.effort]
    if config is not None and config.format is not None:
        body["response_format"] = {"type": "json_schema", "json_schema": {"schema": config.format.schema_}}
    choice = request.tool_choice
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.input_schema,
                },
            }
            for tool in request.tools
        ]
        if choice is not None:
            body["tool_choice"] = _CHAT_TOOL_CHOICE.get(choice.type) or {
                "type": "function",
                "function": {"name": choice.name},
            }
            body["parallel_tool_calls"] = not choice.disable_parallel_tool_use
    return {key: value for key, value in body.items() if value is not None}


_CHAT_TOOL_CHOICE = {"auto": "auto", "any": "required", "none": "none"}
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}

# A chat request's field names as a Messages request calls them (for error messages).
_PARAMS = {"stop": "stop_sequences", "parameters": "input_schema", "reasoning_effort": "output_config.effort"}


def rename_param(error: APIError) -> APIError:
    """An error the chat layer raised, naming the Messages request's field instead."""
    param = error.param
    if param is None:
        return error
    renamed = ".".join(_PARAMS.get(part, part) for part in param.split("."))
    if renamed.startswith("tools.") and ".function." in renamed:
        renamed = renamed.replace(".function.", ".", 1)
    if renamed.startswith("response_format"):
        renamed = "output_config.format" + renamed.removeprefix("response_format").replace(
            ".json_schema", "", 1
        )
    if renamed != param:
        error.message = error.message.replace(f"'{param}'", f"'{renamed}'")
        error.param = renamed
    return error


# -- errors ---------------------------------------------------------------------------------------

# Anthropic's error types by HTTP status.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_body(error: APIError) -> dict[str, Any]:
    """``{"type": "error", "error": {"type": ..., "message": ...}}``, Anthropic's shape, which
    has no ``param``: the message names the field."""
    if error.status >= 500 and error.status not in _ERROR_TYPES:
        kind = "api_error"
    else:
        kind = _ERROR_TYPES.get(error.status, "invalid_request_error")
    error = rename_param(error)  # an error the chat layer raised names the Messages field
    message = error.message
    if error.param is not None and f"'{error.param}'" not in message:  # no `param` here: name it
        message = f"{error.param}: {message}"
    return {"type": "error", "error": {"type": kind, "message": message}}
