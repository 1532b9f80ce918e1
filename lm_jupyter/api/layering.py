"""What the APIs layered over chat (the Responses API, Anthropic's Messages) share (pure):
validation of ``type``-tagged lists that names the exact field, and the chat request's
extension fields they pass through."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .validation import _FieldError, _within

_T = TypeVar("_T", bound=BaseModel)

# LM Studio's and llama-server's fields of a chat request that the APIs layered over chat
# (Responses, Anthropic Messages) lack; clients may still send them, and they pass through.
EXTENSION_FIELDS = (
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


def typed_item(
    field: str, index: int, raw: Any, types: dict[str, type[BaseModel]], default: str | None
) -> Any:
    """Validate one element of a list of ``type``-tagged objects, naming the exact field on error
    (pydantic's union errors would name every member instead)."""
    if not isinstance(raw, dict):
        raise _FieldError(f"{field}.{index}", "must be an object")
    kind = raw.get("type", default)
    model = types.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise _FieldError(f"{field}.{index}.type", f"must be one of {', '.join(map(repr, types))}")
    return validate_at(f"{field}.{index}", model, raw)


def validate_at(path: str, model: type[_T], raw: Any) -> _T:
    """Validate a nested object inside a field validator; an error names its full path."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        error = max(exc.errors(), key=lambda e: len(e["loc"]))
        loc = ".".join(str(part) for part in error["loc"] if not _is_item_tag(part))
        ctx_error = (error.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _FieldError):  # a nested validator named its field
            raise _FieldError(f"{path}.{_within(loc, ctx_error.param)}", str(ctx_error)) from None
        message = error["msg"].removeprefix("Value error, ").replace("Input should be ", "must be ")
        raise _FieldError(f"{path}.{loc}".rstrip("."), message) from None


def _is_item_tag(part: str | int) -> bool:
    return isinstance(part, str) and (part == "str" or part.startswith(("list[", "function-")))
