"""OpenAI's Responses API (``/v1/responses``): the request, and the chat request it becomes (pure).

A Responses request is turned into a chat completions request (``chat_request``): its input
items, any stored history and its ``instructions`` become chat messages, so generation, tools,
grammars and the KV prefix cache are exactly those of ``/v1/chat/completions``. The output side
(response objects, items and events) is ``responses_events.py``.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from .errors import APIError
from .requests import _FieldError, _Request

MAX_METADATA_KEYS = 16


def new_item_id(prefix: str) -> str:
    """LM Studio's ids: ``resp_`` + 48 hex digits; items use a short prefix + 24."""
    return prefix + secrets.token_hex(24 if prefix == "resp_" else 12)


# -- request -----------------------------------------------------------------------------


class TextPart(_Request):
    """A text content part; clients send back earlier outputs' ``output_text`` parts too."""

    type: Literal["input_text", "output_text", "text"]
    text: str


class MessageItem(_Request):
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[TextPart]
    id: str | None = None


class FunctionCallItem(_Request):
    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str
    id: str | None = None


class FunctionCallOutputItem(_Request):
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[TextPart]
    id: str | None = None


class ReasoningItem(_Request):
    """Earlier reasoning sent back by a client; chat templates drop past reasoning, so do we."""

    type: Literal["reasoning"]
    id: str | None = None


class McpListToolsItem(_Request):
    type: Literal["mcp_list_tools"]
    server_label: str
    id: str | None = None


class McpCallItem(_Request):
    type: Literal["mcp_call"]
    id: str = Field(min_length=1)
    name: str
    arguments: str
    server_label: str
    output: str | None = None
    error: Any = None


class McpApprovalRequestItem(_Request):
    type: Literal["mcp_approval_request"]
    id: str = Field(min_length=1)
    name: str
    arguments: str
    server_label: str


class McpApprovalResponseItem(_Request):
    type: Literal["mcp_approval_response"]
    approval_request_id: str = Field(min_length=1)
    approve: bool
    reason: str | None = None
    id: str | None = None


InputItem = (
    MessageItem
    | FunctionCallItem
    | FunctionCallOutputItem
    | ReasoningItem
    | McpListToolsItem
    | McpCallItem
    | McpApprovalRequestItem
    | McpApprovalResponseItem
)


def _type_of(model: type[BaseModel]) -> str:
    return model.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]


_ITEM_TYPES: dict[str, type[BaseModel]] = {
    _type_of(model): model
    for model in (
        MessageItem,
        FunctionCallItem,
        FunctionCallOutputItem,
        ReasoningItem,
        McpListToolsItem,
        McpCallItem,
        McpApprovalRequestItem,
        McpApprovalResponseItem,
    )
}


class FunctionToolSpec(_Request):
    """A client function, in the Responses API's flat shape."""

    type: Literal["function"]
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolNames(_Request):
    tool_names: list[str] = Field(default_factory=list)


class ApprovalFilter(_Request):
    always: ToolNames | None = None
    never: ToolNames | None = None


class McpToolSpec(_Request):
    type: Literal["mcp"]
    server_label: str = Field(min_length=1)
    server_url: str = Field(min_length=1)
    server_description: str | None = None
    allowed_tools: list[str] | ToolNames | None = None
    require_approval: Literal["always", "never"] | ApprovalFilter | None = None
    headers: dict[str, str] | None = None

    def allows(self, name: str) -> bool:
        if self.allowed_tools is None:
            return True
        names = self.allowed_tools if isinstance(self.allowed_tools, list) else self.allowed_tools.tool_names
        return name in names

    def needs_approval(self, name: str) -> bool:
        """OpenAI's default: ask before any data goes to a remote server."""
        rule = self.require_approval
        if rule is None or isinstance(rule, str):
            return rule != "never"
        return rule.never is None or name not in rule.never.tool_names

    def echo(self) -> dict[str, Any]:
        """The tool as a response shows it: headers may hold credentials, so never echo them."""
        return self.model_dump(exclude={"headers"})


_TOOL_TYPES: dict[str, type[BaseModel]] = {"function": FunctionToolSpec, "mcp": McpToolSpec}


class ToolChoiceFunction(_Request):
    type: Literal["function"]
    name: str = Field(min_length=1)


class ToolChoiceMcp(_Request):
    """Force a call to one tool of an MCP server (checked once the server has listed it)."""

    type: Literal["mcp"]
    server_label: str = Field(min_length=1)
    name: str = Field(min_length=1)


class TextFormat(_Request):
    type: Literal["text", "json_schema", "json_object"]
    name: str | None = None
    description: str | None = None
    strict: bool | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")

    @model_validator(mode="after")
    def _schema_present(self) -> TextFormat:
        if self.type == "json_schema" and self.schema_ is None:
            raise _FieldError("text.format.schema", "is required when type is 'json_schema'")
        return self


class TextConfig(_Request):
    format: TextFormat | None = None


class ReasoningConfig(_Request):
    effort: Literal["low", "medium", "high"] | None = None


class ResponsesRequest(_Request):
    model: str = Field(min_length=1)
    input: str | list[InputItem]
    instructions: str | None = None
    previous_response_id: str | None = Field(default=None, min_length=1)
    store: bool = True
    metadata: dict[str, str] | None = None
    stream: bool = False
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    tools: list[FunctionToolSpec | McpToolSpec] | None = None
    tool_choice: Literal["none", "auto", "required"] | ToolChoiceFunction | ToolChoiceMcp | None = None
    parallel_tool_calls: bool = True
    max_tool_calls: int | None = Field(default=None, ge=1)  # MCP calls run for one response
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    background: bool | None = None

    @field_validator("background")
    @classmethod
    def _foreground(cls, value: bool | None) -> bool | None:
        if value:  # a client would poll for a result that never comes: refuse, do not ignore
            raise ValueError("background responses are not supported; use stream: true for long generations")
        return value

    @field_validator("input", mode="before")
    @classmethod
    def _items(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        if not value:
            raise _FieldError("input", "must not be an empty list")
        return [_typed("input", index, raw, _ITEM_TYPES, "message") for index, raw in enumerate(value)]

    @field_validator("tools", mode="before")
    @classmethod
    def _tools(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        for index, raw in enumerate(value):
            if isinstance(raw, dict) and raw.get("type") == "function" and "function" in raw:
                raise _FieldError(
                    f"tools.{index}",
                    "function tools on /v1/responses are flat, "
                    '{"type": "function", "name": ..., "parameters": ...}, not chat completions\' nested '
                    "'function' object",
                )
        return [_typed("tools", index, raw, _TOOL_TYPES, None) for index, raw in enumerate(value)]

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and len(value) > MAX_METADATA_KEYS:
            raise ValueError(f"at most {MAX_METADATA_KEYS} keys are allowed")
        return value

    @model_validator(mode="after")
    def _tool_choice_names_a_tool(self) -> ResponsesRequest:
        names = [tool.name for tool in self.function_tools()]
        if isinstance(self.tool_choice, ToolChoiceFunction) and self.tool_choice.name not in names:
            raise _FieldError(
                "tool_choice",
                f"names the function '{self.tool_choice.name}', which is not a function in 'tools' "
                f"({', '.join(names) or 'none given'})",
            )
        return self

    def items(self) -> list[InputItem]:
        """The input as items: a string is one user message."""
        if isinstance(self.input, str):
            return [MessageItem(role="user", content=self.input)]
        return list(self.input)

    def function_tools(self) -> list[FunctionToolSpec]:
        return [tool for tool in self.tools or [] if isinstance(tool, FunctionToolSpec)]

    def mcp_tools(self) -> list[McpToolSpec]:
        return [tool for tool in self.tools or [] if isinstance(tool, McpToolSpec)]


def _typed(field: str, index: int, raw: Any, types: dict[str, type[BaseModel]], default: str | None) -> Any:
    """Validate one element of a list of ``type``-tagged objects, naming the exact field on error
    (pydantic's union errors would name every member instead)."""
    if not isinstance(raw, dict):
        raise _FieldError(f"{field}.{index}", "must be an object")
    kind = raw.get("type", default)
    model = types.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise _FieldError(f"{field}.{index}.type", f"must be one of {', '.join(map(repr, types))}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        error = max(exc.errors(), key=lambda e: len(e["loc"]))
        loc = ".".join(str(part) for part in error["loc"] if not _is_tag(part))
        message = error["msg"].removeprefix("Value error, ").replace("Input should be ", "must be ")
        raise _FieldError(f"{field}.{index}.{loc}".rstrip("."), message) from None


def _is_tag(part: str | int) -> bool:
    return isinstance(part, str) and (part in ("str", "list[TextPart]") or part.startswith("list["))


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
    body: dict[str, Any] = {key: raw[key] for key in _PASSTHROUGH if raw.get(key) is not None}
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


# Fields of a chat request with no Responses equivalent that clients may still send.
_PASSTHROUGH = (
    "ttl",
    "draft_model",
    "prompt_lookup",
    "num_draft_tokens",
    "draft_min_probability",
    "context_overflow_policy",
    "contextOverflowPolicy",
    "preset",
    "context_length",
    "top_k",
    "min_p",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "logit_bias",
    "grammar",
)


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
