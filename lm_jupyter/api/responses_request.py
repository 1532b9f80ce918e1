"""OpenAI's Responses API (``/v1/responses``): the request, validated per item and tool type (pure).

``responses_chat.py`` turns it into a chat completions request; the output side (response
objects, items and events) is ``responses_events.py``.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from .layering import typed_item
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
        return [typed_item("input", index, raw, _ITEM_TYPES, "message") for index, raw in enumerate(value)]

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
        return [typed_item("tools", index, raw, _TOOL_TYPES, None) for index, raw in enumerate(value)]

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
