"""Wire formats of remote OpenAI-compatible upstreams (vLLM, llama-server, another lm_jupyter).

Pure: what lm_jupyter sends an upstream, how its listing, SSE lines, embeddings and errors read,
and how remote models appear in our own listings (its streamed chunks are read into chat events
by ``chat/upstream_output.py``). No I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Request fields only lm_jupyter understands (loading, speculative decoding, where reasoning
# goes): an upstream loads nothing on demand and the reasoning field is normalised here.
LOCAL_FIELDS = frozenset(
    {
        "ttl",
        "context_length",
        "context_overflow_policy",
        "draft_model",
        "prompt_lookup",
        "num_draft_tokens",
        "draft_min_probability",
        "reasoning_format",
        "preset",
        "stream",
        "stream_options",
    }
)

# Fields upstreams use for a model's context length in /v1/models: vLLM's, then others'.
_CONTEXT_FIELDS = ("max_model_len", "context_length", "max_context_length", "n_ctx")


def upstream_body(request: dict[str, Any]) -> dict[str, Any]:
    """The body sent upstream: the client's fields minus ours, always streamed with usage, so
    that tokens reach the client as they come and the counts arrive for ``usage``/``stats``."""
    body = {key: value for key, value in request.items() if key not in LOCAL_FIELDS}
    for limit in ("max_tokens", "max_completion_tokens"):
        if body.get(limit) == -1:  # ours for "no limit"; upstreams take the field's absence
            del body[limit]
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    return body


@dataclass(frozen=True)
class ListedModel:
    id: str
    context_length: int | None


def parse_listing(body: Any) -> list[ListedModel]:
    """An upstream's ``/v1/models`` answer; raises ValueError if it is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ValueError("its /v1/models answer has no 'data' list")
    models = []
    for entry in body["data"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise ValueError("its /v1/models answer has an entry without an 'id'")
        context = next(
            (entry[name] for name in _CONTEXT_FIELDS if isinstance(entry.get(name), int)),
            None,
        )
        models.append(ListedModel(entry["id"], context))
    return models


def parse_embeddings(body: Any, count: int) -> tuple[list[list[float]], int]:
    """Vectors in input order and the prompt token count of an upstream's embeddings answer."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or len(data) != count:
        raise ValueError(f"expected {count} embeddings in 'data'")
    ordered = sorted(data, key=lambda item: item.get("index", 0) if isinstance(item, dict) else 0)
    vectors = [item.get("embedding") if isinstance(item, dict) else None for item in ordered]
    if not all(isinstance(v, list) for v in vectors):
        raise ValueError("an entry has no 'embedding' list (base64 answers are not read)")
    usage = body.get("usage") or {}
    return vectors, int(usage.get("prompt_tokens") or 0)  # type: ignore[return-value]


def error_message(status: int, content: bytes) -> str:
    """What an upstream said when it refused: OpenAI's ``error.message``, FastAPI's ``detail``,
    or the start of the body."""
    try:
        body = json.loads(content)
    except ValueError:
        text = content.decode("utf-8", "replace").strip()
        return text[:300] or f"HTTP {status}"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
        if isinstance(body.get("message"), str):
            return body["message"]
        if "detail" in body:
            detail = body["detail"]
            return detail if isinstance(detail, str) else json.dumps(detail)
    return json.dumps(body)[:300]


def error_fields(content: bytes) -> dict[str, str | None]:
    """The upstream error's ``type``, ``param`` and ``code``, kept for the client."""
    try:
        error = json.loads(content).get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, dict):
        return {}
    return {key: error[key] for key in ("type", "param", "code") if isinstance(error.get(key), str)}


def sse_payload(line: str) -> str | None:
    """The JSON text of one SSE ``data:`` line; None for other lines (comments, event names)."""
    if not line.startswith("data:"):
        return None
    return line[5:].strip()


# -- our listings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteModel:
    """A model an upstream serves, as the listings show it."""

    id: str
    upstream: str
    state: str  # loaded (the upstream lists it) | not-loaded (it does not) | unreachable | failing
    context_length: int | None
    last_error: str | None = None


def v0_remote_model(model: RemoteModel) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": model.id,
        "object": "model",
        "type": "llm",
        "publisher": model.upstream,
        "arch": "remote",
        "compatibility_type": "remote",
        "quantization": "unknown",
        "state": model.state,
        "max_context_length": model.context_length,
        "upstream": model.upstream,
    }
    if model.last_error:
        body["last_error"] = model.last_error
    return body


def v1_remote_model(model: RemoteModel) -> dict[str, Any]:
    """``lmj ls`` reads this shape: ``format`` says remote, ``upstream`` which one serves it."""
    body: dict[str, Any] = {
        "type": "llm",
        "publisher": model.upstream,
        "key": model.id,
        "display_name": model.id,
        "quantization": None,
        "size_bytes": None,
        "params_string": None,
        "loaded_instances": [],  # nothing of ours is loaded: `lmj ps` and `unload --all` skip it
        "max_context_length": model.context_length,
        "format": "remote",
        "compatibility_type": "remote",
        "upstream": model.upstream,
        "state": model.state,
        "path": None,
        "variants": [model.id],
        "selected_variant": model.id,
        "variant_details": [],
    }
    if model.last_error:
        body["last_error"] = model.last_error
    return body
