"""Response and chunk builders in OpenAI's and LM Studio's exact shapes."""

from __future__ import annotations

import base64
import json
import secrets
import string
import struct
import time
from dataclasses import dataclass, field
from typing import Any

_ALPHABET = string.ascii_lowercase + string.digits


def new_id(prefix: str) -> str:
    """LM Studio style ids: a prefix and 26 lowercase alphanumerics."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(26))


# LM Studio's stop reasons (LLMPredictionStopReason) mapped to OpenAI finish reasons.
FINISH_REASONS = {
    "eosFound": "stop",
    "stopStringFound": "stop",
    "toolCalls": "tool_calls",
    "maxPredictedTokensReached": "length",
    "contextLengthReached": "length",
    "userStopped": "stop",
}


@dataclass
class Outcome:
    """What a finished generation reports; the builders below turn it into each wire format."""

    stop_reason: str
    prompt_tokens: int
    completion_tokens: int
    time_to_first_token: float
    generation_time: float
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    draft: dict[str, Any] | None = None  # speculative decoding's counters (engine/speculative.py)
    stop_string: str | None = None  # the request's stop string that ended the text, if one did

    @property
    def finish_reason(self) -> str:
        return FINISH_REASONS.get(self.stop_reason, "stop")

    @property
    def tokens_per_second(self) -> float:
        decode_time = self.generation_time - self.time_to_first_token
        decoded = self.completion_tokens - 1
        if decoded <= 0 or decode_time <= 0:
            return 0.0
        return decoded / decode_time

    def usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }

    def lmstudio_stats(self) -> dict[str, Any]:
        return {
            "tokens_per_second": self.tokens_per_second,
            "time_to_first_token": self.time_to_first_token,
            "generation_time": self.generation_time,
            "stop_reason": self.stop_reason,
            **(self.draft or {}),
        }

    def openai_stats(self) -> dict[str, Any]:
        """/v1's ``stats``: empty unless speculative decoding ran, as LM Studio sends it."""
        if self.draft is None:
            return {}
        return {"tokens_per_second": self.tokens_per_second, **self.draft}


@dataclass
class ModelCard:
    """The facts about a model that v0 responses echo back (``model_info``)."""

    arch: str
    quant: str
    format: str
    context_length: int


@dataclass
class Envelope:
    """Fields every response and chunk of one request share."""

    id: str
    model: str
    created: int = field(default_factory=lambda: int(time.time()))

    def head(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}


def chat_completion(
    env: Envelope,
    message: dict[str, Any],
    outcome: Outcome,
    *,
    lmstudio: ModelCard | None = None,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body = env.head("chat.completion")
    body["choices"] = [
        {
            "index": 0,
            "message": message,
            "logprobs": logprobs,
            "finish_reason": outcome.finish_reason,
        }
    ]
    body["usage"] = outcome.usage()
    return _extras(body, env, outcome, lmstudio)


def text_completion(
    env: Envelope,
    text: str,
    outcome: Outcome,
    *,
    lmstudio: ModelCard | None = None,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body = env.head("text_completion")
    body["choices"] = [
        {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": outcome.finish_reason}
    ]
    body["usage"] = outcome.usage()
    return _extras(body, env, outcome, lmstudio)


def _extras(
    body: dict[str, Any], env: Envelope, outcome: Outcome, lmstudio: ModelCard | None
) -> dict[str, Any]:
    if lmstudio is None:
        body["stats"] = outcome.openai_stats()
        body["system_fingerprint"] = env.model
        return body
    body["stats"] = outcome.lmstudio_stats()
    body["model_info"] = {
        "arch": lmstudio.arch,
        "quant": lmstudio.quant,
        "format": lmstudio.format,
        "context_length": lmstudio.context_length,
    }
    body["runtime"] = runtime_info()
    return body


def runtime_info() -> dict[str, Any]:
    return {"name": "llama.cpp-llama-cpp-python", "version": _llama_version(), "supported_formats": ["gguf"]}


def _llama_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama-cpp-python")
    except PackageNotFoundError:
        return "unknown"


def chat_chunk(
    env: Envelope,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body = env.head("chat.completion.chunk")
    body["system_fingerprint"] = env.model
    body["choices"] = [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}]
    return body


def completion_chunk(
    env: Envelope, text: str, finish_reason: str | None = None, logprobs: dict[str, Any] | None = None
) -> dict[str, Any]:
    body = env.head("text_completion")
    body["system_fingerprint"] = env.model
    body["choices"] = [{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}]
    return body


def usage_chunk(
    env: Envelope, obj: str, outcome: Outcome, *, stats: dict[str, Any] | None = None
) -> dict[str, Any]:
    body = env.head(obj)
    body["system_fingerprint"] = env.model
    body["choices"] = []
    body["usage"] = outcome.usage()
    if stats:
        body["stats"] = stats
    return body


@dataclass(frozen=True)
class PromptProgress:
    """How far a generation's prompt processing is (``return_progress``), per prompt chunk."""

    processed: int  # prompt tokens in the KV cache, reused ones included
    total: int
    cached: int  # of them, reused from the prefix cache
    time_ms: float

    @property
    def fraction(self) -> float:
        return self.processed / self.total if self.total else 1.0

    def to_json(self) -> dict[str, Any]:
        """llama-server's ``prompt_progress`` object."""
        return {
            "total": self.total,
            "cache": self.cached,
            "processed": self.processed,
            "time_ms": self.time_ms,
        }


def progress_chunk(env: Envelope, progress: PromptProgress, *, chat: bool) -> dict[str, Any]:
    """A stream chunk that only reports prompt progress, as llama-server sends it with
    ``return_progress``: an empty delta plus ``prompt_progress``."""
    chunk = chat_chunk(env, {}) if chat else completion_chunk(env, "")
    chunk["prompt_progress"] = progress.to_json()
    return chunk


def stream_stats(outcome: Outcome, *, lmstudio: bool) -> dict[str, Any]:
    """A stream's ``stats``: /api/v0's full stats, /v1's only when speculative decoding ran."""
    return outcome.lmstudio_stats() if lmstudio else outcome.openai_stats()


def embeddings(
    model: str, vectors: list[list[float]], prompt_tokens: int, encoding_format: str
) -> dict[str, Any]:
    data = [
        {"object": "embedding", "embedding": encode_vector(vector, encoding_format), "index": index}
        for index, vector in enumerate(vectors)
    ]
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def encode_vector(vector: list[float], encoding_format: str) -> list[float] | str:
    """OpenAI's base64 format is the little-endian float32 bytes of the vector."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def is_json(text: str) -> bool:
    """Whether streamed tool-call arguments are complete: calls whose arguments do not parse
    are left out of whole responses (OpenAI clients json.loads them)."""
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


_INFILL_STOP_TYPES = {"eosFound": "eos", "stopStringFound": "word", "userStopped": "none"}


def infill_chunk(env: Envelope, text: str, outcome: Outcome | None = None) -> dict[str, Any]:
    """llama-server's native ``/infill`` shape: the whole answer, or one streamed event (the
    last, with ``outcome``, says ``stop: true`` and carries the counts editor plugins show)."""
    body: dict[str, Any] = {"content": text, "model": env.model, "stop": outcome is not None}
    if outcome is not None:
        body["stop_type"] = _INFILL_STOP_TYPES.get(outcome.stop_reason, "limit")
        body["tokens_predicted"] = outcome.completion_tokens
        body["tokens_evaluated"] = outcome.prompt_tokens
        body["tokens_cached"] = outcome.cached_tokens
        body["timings"] = {
            "prompt_ms": outcome.time_to_first_token * 1000,
            "predicted_ms": (outcome.generation_time - outcome.time_to_first_token) * 1000,
            "predicted_per_second": outcome.tokens_per_second,
        }
    return body
