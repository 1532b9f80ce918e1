"""Presets: named bundles of a system prompt, sampling parameters, an output schema and a
context length that a request selects with ``"preset": NAME`` (LM Studio's ``preset`` field).

Pure: the file store lives in ``server/presets.py``. A preset is applied to the request's JSON
*before* the request is validated, so the validated request is exactly what the client would
have sent with the preset's values written in, and every check (and every error's ``param``)
stays the request model's own.

Rules (recorded in docs/architecture.md):

- A field the request gives (not null) wins over the preset's. A request's
  ``max_completion_tokens`` counts as giving ``max_tokens``.
- The preset's system prompt becomes the first message of a chat request that has no
  ``system`` or ``developer`` message of its own. A request that brings its own system message
  keeps it, and the preset's is not added: the request overrides the preset here as everywhere.
  ``/v1/completions`` has no messages, so a system prompt does not apply there.
- ``response_format`` goes into the request like the sampling fields. ``context_length`` only
  matters when the request is the one that loads the model just in time (like ``ttl``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, field_validator

from .errors import APIError
from .requests import ResponseFormat, SamplingRequest, parse_request
from .validation import too_deep

_SAMPLING = SamplingRequest.model_fields  # one definition of each field's type and range


class Preset(BaseModel):
    """One preset file, ``presets_dir/NAME.json``; every field is optional."""

    # Unlike requests, a preset refuses unknown fields: a typo ("temprature") in a file the
    # user wrote should be an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", strict=True)

    system_prompt: str | None = None
    temperature: float | None = _SAMPLING["temperature"]
    top_p: float | None = _SAMPLING["top_p"]
    top_k: int | None = _SAMPLING["top_k"]
    min_p: float | None = _SAMPLING["min_p"]
    repeat_penalty: float | None = _SAMPLING["repeat_penalty"]
    presence_penalty: float | None = _SAMPLING["presence_penalty"]
    frequency_penalty: float | None = _SAMPLING["frequency_penalty"]
    max_tokens: int | None = _SAMPLING["max_tokens"]
    stop: str | list[str] | None = _SAMPLING["stop"]
    seed: int | None = _SAMPLING["seed"]
    response_format: ResponseFormat | None = None
    context_length: int | None = _SAMPLING["context_length"]

    @field_validator("max_tokens")
    @classmethod
    def _max_tokens(cls, value: int | None) -> int | None:
        return SamplingRequest._max_tokens(value)  # the request's own rule, not a copy

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        return SamplingRequest._stop(value)

    def to_json(self) -> dict[str, Any]:
        """The file's content: only the fields that are set, the schema under its wire name."""
        return self.model_dump(exclude_none=True, by_alias=True)

    def request_fields(self) -> dict[str, Any]:
        """The values a request takes from this preset (everything but the system prompt)."""
        fields = self.to_json()
        fields.pop("system_prompt", None)
        return fields


def parse_preset(body: bytes) -> Preset:
    """Validate a preset body (PUT or file) into a :class:`Preset`, or a 400 naming the field."""
    try:
        return parse_request(Preset, body)
    except APIError as exc:
        top = (exc.param or "").split(".")[0]
        if top and top not in Preset.model_fields:
            known = ", ".join(Preset.model_fields)
            raise APIError(
                f"Unknown preset field '{exc.param}'. A preset may set: {known}.",
                param=exc.param,
                code="unknown_parameter",
            ) from None
        raise


def apply_preset(request: dict[str, Any], preset: Preset) -> dict[str, Any]:
    """The request JSON with the preset's values for every field it leaves out (see module doc)."""
    merged = dict(request)
    for field, value in preset.request_fields().items():
        if merged.get(field) is not None:
            continue
        if field == "max_tokens" and merged.get("max_completion_tokens") is not None:
            continue
        merged[field] = value
    messages = merged.get("messages")
    if preset.system_prompt is not None and isinstance(messages, list) and not _has_system(messages):
        merged["messages"] = [{"role": "system", "content": preset.system_prompt}, *messages]
    return merged


def _has_system(messages: list[Any]) -> bool:
    return any(isinstance(m, dict) and m.get("role") in ("system", "developer") for m in messages)


_T = TypeVar("_T", bound=BaseModel)


def parse_with_preset(model: type[_T], body: bytes, lookup: Callable[[str], Preset]) -> _T:
    """``parse_request`` for a body that may name a ``preset`` (``lookup`` raises if unknown)."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    except RecursionError:
        raise too_deep() from None
    if not isinstance(data, dict) or data.get("preset") is None:
        return parse_request(model, body)
    name = data["preset"]
    if not isinstance(name, str):
        raise APIError("Invalid type for 'preset': expected a string.", param="preset", code="invalid_type")
    merged = apply_preset(data, lookup(name))
    try:
        return parse_request(model, json.dumps(merged).encode())
    except APIError:
        # Name the field as the client sent it: a prepended system message shifts the
        # indices of the request's own messages.
        parse_request(model, body)
        raise
