"""Request models for the OpenAI-compatible and LM Studio routes.

Validation is strict (a string is not an integer) and every failure names the offending
field, because a vague 400 is the top complaint about local servers. Unknown fields are
ignored: SDKs send options we do not implement (``user``, ``service_tier``...) and
refusing them would break real clients for no benefit.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from .validation import _FieldError
from .validation import parse_request as parse_request  # importers take it from here

# OpenAI allows 20 alternatives per token on chat (5 on legacy completions; we allow 20 there too).
MAX_TOP_LOGPROBS = 20


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
    # Ours: top_logprobs lists only tokens the grammar / JSON schema allows (llm.classify).
    constrained_logprobs: bool = False
    # llama-server's: streams report prompt processing (chunks with ``prompt_progress``).
    return_progress: bool = False

    @model_validator(mode="after")
    def _one_constraint(self) -> SamplingRequest:
        json_format = self.response_format is not None and self.response_format.type != "text"
        if self.grammar is not None and json_format:
            raise _FieldError("grammar", "cannot be combined with a JSON response_format")
        if self.prompt_lookup and self.draft_model is not None:
            raise _FieldError("prompt_lookup", "cannot be combined with draft_model: choose one way to draft")
        if self.constrained_logprobs and not (self.grammar is not None or json_format):
            raise _FieldError("constrained_logprobs", "needs a 'grammar' or a JSON 'response_format'")
        if self.constrained_logprobs and not self.top_logprobs_count():
            raise _FieldError(
                "constrained_logprobs", "needs logprobs with at least one alternative per token"
            )
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

    def top_logprobs_count(self) -> int | None:
        """How many alternatives each token's logprobs list; None: no logprobs asked for."""
        return None


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
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    # vLLM's name: the last (assistant) message is the start of the answer, which the model
    # continues instead of opening a new turn (Anthropic's assistant prefill uses it too).
    continue_final_message: bool = False

    @model_validator(mode="after")
    def _final_message_to_continue(self) -> ChatCompletionRequest:
        if self.continue_final_message:
            last = self.messages[-1]
            if len(self.messages) < 2 or last.role != "assistant" or last.tool_calls or not last.text():
                raise _FieldError(
                    "continue_final_message",
                    "needs the last message to be an assistant message with text (and no tool calls), "
                    "after the conversation it answers",
                )
        return self

    @model_validator(mode="after")
    def _top_logprobs_need_logprobs(self) -> ChatCompletionRequest:
        if self.top_logprobs is not None and not self.logprobs:
            raise _FieldError("top_logprobs", "needs 'logprobs': true")
        return self

    def top_logprobs_count(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None

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


class InputExtra(_Request):
    """Another file as context for fill-in-the-middle (llama-server's ``input_extra`` chunk)."""

    filename: str = ""
    text: str


class CompletionRequest(SamplingRequest):
    # A text, or token ids (what lm-evaluation-harness sends), alone or as a batch of one.
    prompt: str | list[str] | list[int] | list[list[int]]
    # The legacy API's logprobs is the number of alternatives per token (0: the chosen only).
    logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    echo: bool = False  # the answer starts with the prompt (and its logprobs: prompt scoring)

    @field_validator("max_tokens", "max_completion_tokens")
    @classmethod
    def _max_tokens(cls, value: int | None) -> int | None:
        """0 is allowed here (checked with ``echo`` below): lm-evaluation-harness scores a
        prompt with ``echo``, ``logprobs`` and ``max_tokens: 0``."""
        return value if value == 0 else SamplingRequest._max_tokens(value)

    @model_validator(mode="after")
    def _zero_tokens_only_to_echo(self) -> CompletionRequest:
        for name in ("max_tokens", "max_completion_tokens"):
            if getattr(self, name) == 0 and not self.echo:
                raise _FieldError(name, "must be at least 1 (0 only with 'echo': true), or -1 for no limit")
        return self

    def top_logprobs_count(self) -> int | None:
        return self.logprobs

    # OpenAI's fill-in-the-middle field: the prompt is the text before the gap, this the text after.
    suffix: str | None = None
    input_extra: list[InputExtra] = Field(default_factory=list)  # llama-server's; only with a suffix

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: Any) -> Any:
        if isinstance(value, list) and value and all(isinstance(token, int) for token in value):
            value = [value]  # one prompt of token ids
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("exactly one prompt per request is supported (a string or a list of token ids)")
        if isinstance(value, list) and isinstance(value[0], list):
            if not value[0]:
                raise ValueError("a prompt of token ids must not be empty")
            if min(value[0]) < 0:
                raise ValueError("token ids must not be negative")
        return value

    @model_validator(mode="after")
    def _extra_needs_suffix(self) -> CompletionRequest:
        if self.input_extra and self.suffix is None:
            raise _FieldError("input_extra", "is context for fill-in-the-middle: send it with a 'suffix'")
        return self

    def prompt_text(self) -> str:
        """The prompt's text; empty for a prompt of token ids (the worker gets those as they are)."""
        if isinstance(self.prompt, str):
            return self.prompt
        first = self.prompt[0]
        return first if isinstance(first, str) else ""

    def prompt_tokens(self) -> list[int] | None:
        first = None if isinstance(self.prompt, str) else self.prompt[0]
        return first if isinstance(first, list) else None


class InfillRequest(CompletionRequest):
    """llama-server's ``/infill`` body, read as the completion it is.

    ``input_prefix``/``input_suffix``/``n_predict`` are its names for ``prompt``/``suffix``/
    ``max_tokens``. ``model`` may be left out while exactly one LLM is loaded, as editor
    plugins written for a one-model llama-server send none.
    """

    model: str = ""

    @model_validator(mode="before")
    @classmethod
    def _llama_server_names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data.get("prompt"):
            raise _FieldError(
                "prompt",
                "is not supported on /infill: send the text before the cursor as 'input_prefix'",
            )
        data = dict(data)
        data["prompt"] = data.pop("input_prefix", "")
        data["suffix"] = data.pop("input_suffix", "")
        if "n_predict" in data:
            data["max_tokens"] = data.pop("n_predict")
        return data


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


class LoadRequest(_Request):
    model: str = Field(min_length=1)
    context_length: int | None = Field(default=None, ge=1)
    identifier: str | None = Field(default=None, min_length=1)
    ttl: int | None = Field(default=None, ge=1)
    gpu: Literal["off", "max"] | float | None = None
    parallel: int = Field(default=4, ge=1, le=64)
    flash_attention: bool = True  # llama-server's -fa auto (on for the CPU); false turns it off
    # Speculative decoding defaults for requests that set none (LM Studio's speculative_draft_* too).
    draft_model: str | None = Field(
        default=None, min_length=1, validation_alias=AliasChoices("draft_model", "speculative_draft_model")
    )
    num_draft_tokens: int | None = Field(
        default=None,
        ge=1,
        le=32,
        validation_alias=AliasChoices("num_draft_tokens", "speculative_draft_max_tokens"),
    )
    draft_min_probability: float | None = Field(
        default=None,
        ge=0,
        le=1,
        validation_alias=AliasChoices("draft_min_probability", "speculative_draft_min_continue_probability"),
    )
    echo_load_config: bool = False
    force: bool = False  # load even if the memory guardrail says it will not fit

    @field_validator("gpu")
    @classmethod
    def _gpu(cls, value: str | float | None) -> str | float | None:
        if isinstance(value, float) and not 0 <= value <= 1:
            raise ValueError("must be 'off', 'max' or a fraction between 0 and 1")
        return value

    def gpu_ratio(self) -> float | None:
        """``lms load --gpu``: off = 0, max = 1, or a fraction of the layers; not given (None):
        as LM Studio, all layers where they fit in GPU memory, else as many as fit."""
        if self.gpu is None:
            return None
        return 0.0 if self.gpu == "off" else 1.0 if self.gpu == "max" else float(self.gpu)


class UnloadRequest(_Request):
    instance_id: str = Field(min_length=1)


class DownloadRequest(_Request):
    """``POST /api/v1/models/download``: ``owner/repo``, a huggingface.co URL, or ``owner/repo@QUANT``."""

    model: str = Field(min_length=1)
    quantization: str | None = Field(default=None, min_length=1)
