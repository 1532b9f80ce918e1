"""LM Studio's native ``POST /api/v1/chat`` request (pure): validated, then turned into the
``/v1/responses`` body that runs it.

A v1 chat is a Responses API run under another name: stateful through the same stored
responses (``previous_response_id``, ``store``), MCP servers through the same connections
(``integrations`` of type ``ephemeral_mcp`` become ``mcp`` tools that run without approval, as
LM Studio runs them), sampling fields through the chat request's own validation. The output
side is ``lmstudio_chat_events.py``. Shapes: docs/lmstudio-rest-v1.md.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from .errors import APIError
from .layering import EXTENSION_FIELDS, typed_item
from .requests import _Request

REASONING = ("off", "low", "medium", "high", "on")
EFFORTS = ("low", "medium", "high")


class TextInput(_Request):
    """A text item; LM Studio's table calls it ``message`` and its examples ``text``."""

    type: Literal["message", "text"]
    content: str | None = None
    text: str | None = None

    def body(self) -> str:
        return self.content if self.content is not None else self.text or ""


class ImageInput(_Request):
    type: Literal["image"]
    data_url: str = Field(min_length=1)


class EphemeralMcp(_Request):
    type: Literal["ephemeral_mcp"]
    server_label: str = Field(min_length=1)
    server_url: str = Field(min_length=1)
    allowed_tools: list[str] | None = None
    headers: dict[str, str] | None = None


class PluginIntegration(_Request):
    type: Literal["plugin"]
    id: str = Field(min_length=1)
    allowed_tools: list[str] | None = None


_INPUT_TYPES = {"message": TextInput, "text": TextInput, "image": ImageInput}
_INTEGRATION_TYPES = {"ephemeral_mcp": EphemeralMcp, "plugin": PluginIntegration}


class V1ChatRequest(_Request):
    model: str = Field(min_length=1)
    input: str | list[TextInput | ImageInput]
    system_prompt: str | None = None
    integrations: list[EphemeralMcp | PluginIntegration] | None = None
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0, le=1)
    repeat_penalty: float | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, ge=1)
    reasoning: Literal["off", "low", "medium", "high", "on"] | None = None
    context_length: int | None = Field(default=None, ge=1)
    store: bool = True
    previous_response_id: str | None = Field(default=None, min_length=1)
    ttl: int | None = Field(default=None, ge=1)  # as on every LM Studio inference route (JIT loads)

    @field_validator("input", mode="before")
    @classmethod
    def _items(cls, value: Any) -> Any:
        if isinstance(value, list):
            if not value:
                raise ValueError("must not be empty")
            return [typed_item("input", index, raw, _INPUT_TYPES, None) for index, raw in enumerate(value)]
        return value

    @field_validator("integrations", mode="before")
    @classmethod
    def _integrations(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [  # a bare string is a plugin's id, the shorthand for a plugin with no configuration
            typed_item(
                "integrations",
                index,
                {"type": "plugin", "id": raw} if isinstance(raw, str) else raw,
                _INTEGRATION_TYPES,
                None,
            )
            for index, raw in enumerate(value)
        ]

    def text(self) -> str:
        """The user's message: LM Studio's input is one user turn, in one or more text items."""
        if isinstance(self.input, str):
            return self.input
        for index, item in enumerate(self.input):
            if isinstance(item, ImageInput):
                raise APIError(
                    "Image input is not supported by this server's engine (no vision projector is "
                    "loaded with GGUF models here); send text items only.",
                    param=f"input.{index}",
                    code="unsupported_input",
                )
        return "\n\n".join(item.body() for item in self.input if isinstance(item, TextInput))


def check_reasoning(request: V1ChatRequest, model: str, reasons: bool) -> None:
    """LM Studio errors when a model does not support the requested reasoning setting: a model
    that does not reason accepts only ``off``."""
    if request.reasoning is None or request.reasoning == "off" or reasons:
        return
    raise APIError(
        f"'{model}' is not a reasoning model: 'reasoning' may only be 'off' for it (or left out).",
        param="reasoning",
        code="unsupported_reasoning_setting",
    )


def responses_body(request: V1ChatRequest, raw: dict[str, Any]) -> dict[str, Any]:
    """The ``/v1/responses`` body that runs this chat; ``raw`` is the client's JSON, whose
    LM Studio and llama-server extension fields (``seed``, ``grammar``, ``draft_model``...) pass
    through as they do on ``/v1/responses``."""
    body: dict[str, Any] = {key: raw[key] for key in EXTENSION_FIELDS if raw.get(key) is not None}
    body |= {
        "model": request.model,
        "input": [{"type": "message", "role": "user", "content": request.text()}],
        "instructions": request.system_prompt,
        "previous_response_id": request.previous_response_id,
        "store": request.store,
        "stream": request.stream,
        "max_output_tokens": request.max_output_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "top_k": request.top_k,
        "min_p": request.min_p,
        "repeat_penalty": request.repeat_penalty,
        "context_length": request.context_length,
        "ttl": request.ttl,
    }
    if request.reasoning in EFFORTS:
        body["reasoning"] = {"effort": request.reasoning}
    tools = []
    for index, integration in enumerate(request.integrations or []):
        if isinstance(integration, PluginIntegration):
            raise APIError(
                f"Plugin '{integration.id}' is not available: this server has no LM Studio plugins or "
                'mcp.json servers. Give the MCP server inline as {"type": "ephemeral_mcp", '
                '"server_label": ..., "server_url": ...}.',
                status=404,
                param=f"integrations.{index}",
                code="plugin_not_found",
            )
        tool = integration.model_dump(exclude_none=True)
        tools.append({**tool, "type": "mcp", "require_approval": "never"})
    if tools:
        body["tools"] = tools
    return {key: value for key, value in body.items() if value is not None}
