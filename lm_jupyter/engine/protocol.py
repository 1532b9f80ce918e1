"""The messages between the Jupyter server and a worker process: one JSON object per line.

Commands (server -> worker): ``load``, ``generate``, ``embed``, ``cancel``. Events (worker ->
server) carry the request ``id`` they belong to: ``loaded``, ``started``, ``text``, ``done``,
``embeddings``, ``error``. A speculative request's ``done`` also carries ``draft``, LM Studio's
draft counters. JSON lines over pipes keep the worker a plain child process that
the OS cleans up completely when it exits.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NotRequired, TypedDict


class DraftSpec(TypedDict):
    key: str  # the draft model's key, as stats and errors name it
    path: str
    target: str  # the key of the model it drafts for (for error messages)


class GenerateParams(TypedDict):
    prompt: str
    max_tokens: NotRequired[int | None]
    temperature: NotRequired[float | None]
    top_k: NotRequired[int | None]
    top_p: NotRequired[float | None]
    min_p: NotRequired[float | None]
    repeat_penalty: NotRequired[float | None]
    presence_penalty: NotRequired[float | None]
    frequency_penalty: NotRequired[float | None]
    seed: NotRequired[int | None]
    stop: NotRequired[list[str]]
    logit_bias: NotRequired[dict[str, float] | None]
    json_schema: NotRequired[dict[str, Any] | None]  # enforce JSON matching this schema
    grammar: NotRequired[str | None]  # or a raw GBNF grammar
    tool_calls: NotRequired[dict[str, Any] | None]  # or: must call a tool (chat.constraints.forced_calls)
    context_overflow_policy: NotRequired[str | None]  # engine/overflow.py
    draft_model: NotRequired[DraftSpec | None]  # speculative decoding with a draft model...
    prompt_lookup: NotRequired[bool]  # ... or with n-gram lookup in the prompt
    num_draft_tokens: NotRequired[int | None]
    draft_min_probability: NotRequired[float | None]


Emit = Callable[[dict[str, Any]], None]


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    return json.loads(line)
