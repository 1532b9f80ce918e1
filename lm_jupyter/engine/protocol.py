"""The messages between the Jupyter server and a worker process: one JSON object per line.

Commands (server -> worker): ``load``, ``generate``, ``embed``, ``rank``, ``tokenize``,
``detokenize``, ``cancel``. Events (worker -> server) carry the request ``id`` they belong to:
``loaded``, ``started``, ``text``, ``done``, ``embeddings``, ``ranked``, ``tokens``,
``detokenized``, ``error``, ``prompt_logprobs``, ``prompt_progress`` (with ``progress``: one
after each prompt chunk the batch took, see :func:`prompt_progress`). A speculative request's
``done`` also carries ``draft``, LM Studio's draft counters, and one ended by a stop string
``stop_string``. With
``logprobs`` a ``text`` event carries the entries (engine/logprobs.py) of the tokens that made its
text; with ``echo``, ``prompt_logprobs`` events carry the prompt's, before the first ``text``. JSON
lines over pipes keep the worker a plain child process that the OS cleans up completely when it
exits.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, NotRequired, TypedDict


class DraftSpec(TypedDict):
    key: str  # the draft model's key, as stats and errors name it
    path: str
    target: str  # the key of the model it drafts for (for error messages)


class GenerateParams(TypedDict):
    prompt: str
    # A chat prompt as (text, parse special tokens?) parts: only the template's markup is
    # special, so content cannot forge turns (chat/segments.py). Without it: ``prompt``, special.
    prompt_parts: NotRequired[list[tuple[str, bool]]]
    prompt_tokens: NotRequired[list[int] | None]  # or the prompt as token ids, fed as they are
    max_prompt_tokens: NotRequired[int | None]  # refuse longer prompts (LmJupyterApp limits)
    grammar_timeout: NotRequired[float | None]  # seconds the output constraint may take to compile
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
    logprobs: NotRequired[int | None]  # alternatives per token; None: no logprobs
    echo: NotRequired[bool]  # score the prompt's tokens (completions' echo)
    constrained_logprobs: NotRequired[bool]  # alternatives only among tokens the grammar allows
    progress: NotRequired[bool]  # prompt_progress events while the prompt is processed


def shifts(policy: str) -> bool:
    """Whether a context-overflow policy cuts a prompt (and an answer) that outgrows the
    context rather than refusing it: the server's prompt limits and every backend agree."""
    return policy != "stopAtLimit"


Emit = Callable[[dict[str, Any]], None]


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    return json.loads(line)


def prompt_progress(in_cache: int, total: int, cached: int, started: float) -> dict[str, Any]:
    """The prompt's tokens in the KV cache so far (reused ones included, as llama-server counts
    ``processed``), of ``total``; ``cached`` of them came from the prefix cache."""
    return {
        "ev": "prompt_progress",
        "processed": min(in_cache, total),
        "total": total,
        "cached": cached,
        "time_ms": (time.perf_counter() - started) * 1000,
    }
