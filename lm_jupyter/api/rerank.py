"""``/v1/rerank`` and ``/v2/rerank`` (Jina's and Cohere's shape, as llama-server and vLLM serve it):
the request and the ranked results (pure)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from .requests import _FieldError, _Request


class RerankRequest(_Request):
    model: str = Field(min_length=1)
    query: str = Field(min_length=1)
    documents: list[str]
    top_n: int | None = Field(default=None, ge=1)
    return_documents: bool = False
    ttl: int | None = Field(default=None, ge=1)
    cosine_fallback: bool = False  # ours: let an embedding model rank by cosine similarity

    @field_validator("documents", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        """Documents are strings, or Cohere's ``{"text": ...}`` objects."""
        if not isinstance(value, list):
            return value
        if not value:
            raise _FieldError("documents", "must contain at least one document")
        return [item["text"] if isinstance(item, dict) and "text" in item else item for item in value]


def rerank_body(
    request: RerankRequest, model: str, scores: list[float], prompt_tokens: int
) -> dict[str, Any]:
    """Results best first, at most ``top_n``; ``index`` points into the request's documents."""
    order = sorted(range(len(scores)), key=lambda index: scores[index], reverse=True)
    results = []
    for index in order[: request.top_n]:
        result: dict[str, Any] = {"index": index, "relevance_score": scores[index]}
        if request.return_documents:
            result["document"] = {"text": request.documents[index]}
        results.append(result)
    return {
        "object": "list",
        "model": model,
        "results": results,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
