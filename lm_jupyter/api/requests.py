"""Request models for the OpenAI-compatible and LM Studio routes.

Validation is strict (a string is not an integer) and every failure names the offending
field, because a vague 400 is the top complaint about local servers. Unknown fields are
ignored: SDKs send options we do not implement (``user``, ``logprobs: false``...) and
refusing them would break real clients for no benefit.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import APIError


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class StreamOptions(_Request):
    include_usage: bool = False


class TextPart(_Request):
    type: Literal["text"]
    text: str


class FunctionCall(_Request):
    name: str
    arguments: str


class ToolCall(_Request):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """Flatten content parts: chat templates expect a plain string."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)

    def for_template(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": self.role, "content": self.text()}
        if self.name is not None:
            message["name"] = self.name
        if self.tool_calls:
            message["tool_calls"] = [call.model_dump() for call in self.tool_calls]
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        return message


class FunctionTool(_Request):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(_Request):
    type: Literal["function"]
    function: FunctionTool


class JSONSchemaFormat(_Request):
    name: str | None = None
    strict: bool | None = None
    schema_: dict[str, Any] = Field(alias="schema")


class ResponseFormat(_Request):
    """OpenAI's ``response_format``; the legacy ``json_object`` may carry a ``schema`` too."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")

    @model_validator(mode="after")
    def _schema_present(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise _FieldError("response_format.json_schema", "is required when type is 'json_schema'")
        return self

    def schema(self) -> dict[str, Any] | None:
        """The JSON schema to enforce: ``{}`` means any JSON object, None means free text."""
        if self.type == "json_schema":
            assert self.json_schema is not None
            return self.json_schema.schema_
        if self.type == "json_object":
            return self.schema_ or {"type": "object"}
        return None


class SamplingRequest(_Request):
    """Fields shared by chat completions and completions."""

    model: str = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0, le=1)
    seed: int | None = None
    repeat_penalty: float | None = Field(default=None, gt=0)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1, le=1)
    ttl: int | None = Field(default=None, ge=1)
    # Like ttl, applies only when this request loads the model just in time (presets set it).
    context_length: int | None = Field(default=None, ge=1)
    response_format: ResponseFormat | None = None
    grammar: str | None = Field(default=None, min_length=1)  # llama-server's GBNF extension
    # LM Studio's contextOverflowPolicy (its SDKs' name is accepted too): what happens when the
    # prompt or the answer does not fit the context.
    context_overflow_policy: Literal["stopAtLimit", "truncateMiddle", "rollingWindow"] = Field(
        default="stopAtLimit",
        validation_alias=AliasChoices("context_overflow_policy", "contextOverflowPolicy"),
    )
    # Speculative decoding: LM Studio's draft_model, or n-gram drafting from the prompt.
    draft_model: str | None = Field(default=None, min_length=1)
    prompt_lookup: bool = False
    num_draft_tokens: int | None = Field(default=None, ge=1, le=32)
    draft_min_probability: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _one_constraint(self) -> SamplingRequest:
        json_format = self.response_format is not None and self.response_format.type != "text"
        if self.grammar is not None and json_format:
            raise _FieldError("grammar", "cannot be combined with a JSON response_format")
        if self.prompt_lookup and self.draft_model is not None:
            raise _FieldError("prompt_lookup", "cannot be combined with draft_model: choose one way to draft")
        return self

    @field_validator("max_tokens", "max_completion_tokens")
    @classmethod
    def _max_tokens(cls, value: int | None) -> int | None:
        if value is not None and value < 1 and value != -1:
            raise ValueError("must be at least 1, or -1 for no limit")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _logit_bias(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key, bias in (value or {}).items():
            if not key.lstrip("-").isdigit() or int(key) < 0:
                raise ValueError(f"keys must be token ids (non-negative integers), got '{key}'")
            if not -100 <= bias <= 100:
                raise ValueError(f"bias for token {key} must be between -100 and 100, got {bias}")
        return value

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        return value

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        stops = [self.stop] if isinstance(self.stop, str) else self.stop
        return [s for s in stops if s]

    def token_limit(self) -> int | None:
        """The requested completion limit; None means until the context is full."""
        limit = self.max_completion_tokens if self.max_tokens is None else self.max_tokens
        return None if limit is None or limit == -1 else limit

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class NamedFunction(_Request):
    name: str = Field(min_length=1)


class NamedToolChoice(_Request):
    type: Literal["function"]
    function: NamedFunction


class ChatCompletionRequest(SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool = True
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    # Where thinking goes (llama-server's option name): DeepSeek's field, gpt-oss's, or content.
    reasoning_format: Literal["auto", "reasoning_content", "reasoning", "none"] | None = None

    @model_validator(mode="after")
    def _tool_choice_names_a_tool(self) -> ChatCompletionRequest:
        if isinstance(self.tool_choice, NamedToolChoice):
            names = [tool.function.name for tool in self.tools or []]
            if self.tool_choice.function.name not in names:
                raise _FieldError(
                    "tool_choice",
                    f"names the function '{self.tool_choice.function.name}', which is not in 'tools' "
                    f"({', '.join(names) or 'no tools given'})",
                )
        elif self.tool_choice == "required" and not self.tools:
            raise _FieldError("tool_choice", "'required' needs at least one tool in 'tools'")
        return self

    @model_validator(mode="after")
    def _tool_messages(self) -> ChatCompletionRequest:
        for index, message in enumerate(self.messages):
            if message.role == "tool" and not message.tool_call_id:
                raise _FieldError(f"messages.{index}.tool_call_id", "is required for tool messages")
        return self


class CompletionRequest(SamplingRequest):
    prompt: str | list[str]

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("exactly one prompt per request is supported")
        return value

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class EmbeddingRequest(_Request):
    model: str = Field(min_length=1)
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    ttl: int | None = Field(default=None, ge=1)

    @field_validator("input")
    @classmethod
    def _non_empty(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("must not be an empty list")
        return value

    def inputs(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class _FieldError(ValueError):
    """A cross-field check that knows exactly which field is wrong."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


_TYPE_NAMES = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
    "string_type": "a string",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
}


_T = TypeVar("_T", bound=BaseModel)


def parse_request(model: type[_T], body: bytes) -> _T:
    """Validate a raw JSON body into ``model`` or raise an :class:`APIError` naming the field."""
    if not body.strip():
        raise APIError("The request body is empty; send a JSON object.", code="invalid_json")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise _to_api_error(exc) from None


def _to_api_error(exc: ValidationError) -> APIError:
    # Of a union's per-member errors, the deepest one says most (a list of parts missing
    # "text" beats "not a string"); for unrelated errors the first wins.
    first = max(exc.errors(), key=lambda error: len(error["loc"]))
    kind = first["type"]
    if kind == "json_invalid":
        return APIError(f"The request body is not valid JSON: {first['msg']}.", code="invalid_json")
    if kind == "model_type" and not first["loc"]:
        return APIError("The request body must be a JSON object.", code="invalid_json")
    # Unions report one error per member; the member names in loc are noise for a client.
    loc = [part for part in first["loc"] if isinstance(part, int) or not _is_union_tag(str(part))]
    param = ".".join(str(part) for part in loc) or None
    ctx_error = (first.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _FieldError):
        return APIError(f"Invalid '{ctx_error.param}': {ctx_error}.", param=ctx_error.param)
    if kind == "missing":
        return APIError(
            f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
        )
    if kind in _TYPE_NAMES or kind.endswith("_type") or kind.endswith("_parsing"):
        expected = _TYPE_NAMES.get(kind, "a different type")
        if len(exc.errors()) > 1 and all(
            e["loc"][: len(loc)] == first["loc"][: len(loc)] for e in exc.errors()
        ):
            expected = "one of the accepted types"
        return APIError(f"Invalid type for '{param}': expected {expected}.", param=param, code="invalid_type")
    message = first["msg"].removeprefix("Value error, ")
    return APIError(f"Invalid value for '{param}': {message}.", param=param, code="invalid_value")


def _is_union_tag(part: str) -> bool:
    return part in {"str", "int", "float", "bool", "list[str]", "list[TextPart]", "dict[str,float]"} or (
        part.startswith(("list[", "dict[", "function-", "literal["))
    )


class LoadRequest(_Request):
    model: str = Field(min_length=1)
    context_length: int | None = Field(default=None, ge=1)
    identifier: str | None = Field(default=None, min_length=1)
    ttl: int | None = Field(default=None, ge=1)
    gpu: Literal["off", "max"] | float | None = None
    parallel: int = Field(default=4, ge=1, le=64)
    flash_attention: bool = False
    draft_model: str | None = Field(default=None, min_length=1)  # default for requests without one
    echo_load_config: bool = False
    force: bool = False  # load even if the memory guardrail says it will not fit

    @field_validator("gpu")
    @classmethod
    def _gpu(cls, value: str | float | None) -> str | float | None:
        if isinstance(value, float) and not 0 <= value <= 1:
            raise ValueError("must be 'off', 'max' or a fraction between 0 and 1")
        return value

    def gpu_ratio(self) -> float:
        """``lms load --gpu``: off = 0, max = 1, or a fraction of the layers."""
        if self.gpu is None or self.gpu == "off":
            return 0.0
        return 1.0 if self.gpu == "max" else float(self.gpu)


class UnloadRequest(_Request):
    instance_id: str = Field(min_length=1)


class DownloadRequest(_Request):
    """``POST /api/v1/models/download``: ``owner/repo``, a huggingface.co URL, or ``owner/repo@QUANT``."""

    model: str = Field(min_length=1)
    quantization: str | None = Field(default=None, min_length=1)
