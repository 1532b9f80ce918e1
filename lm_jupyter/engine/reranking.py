"""Reranking documents for a query: a reranker's classifier head, or, only when asked, an
embedding model's cosine similarity (a weaker ranking, never a silent substitute)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..api.errors import APIError
from .instance import Instance

if TYPE_CHECKING:
    from .manager import ModelManager


async def rerank(
    manager: ModelManager,
    model: str,
    query: str,
    documents: list[str],
    *,
    cosine: bool = False,
    ttl: float | None = None,
) -> tuple[Instance, dict[str, Any]]:
    """Each document's score (``scores``, in the documents' order) and the tokens read."""
    instance = await manager.instance_for(model, ttl=ttl)
    kind = instance.model.facts.type
    if kind == "embeddings" and cosine:
        result = await instance.embed([query, *documents])
        first, *rest = result["vectors"]  # normalised: the dot product is the cosine
        # a cosine is within [-1, 1]; float32 rounding of unit vectors can step just past 1
        scores = [
            min(1.0, max(-1.0, sum(a * b for a, b in zip(first, vector, strict=True)))) for vector in rest
        ]
        return instance, {"scores": scores, "prompt_tokens": result["prompt_tokens"]}
    if kind != "reranker":
        hint = (
            " or send 'cosine_fallback': true to rank by embedding similarity" if kind == "embeddings" else ""
        )
        raise APIError(
            f"'{model}' is not a reranker; /v1/rerank needs one (a GGUF with rank pooling, type "
            f"'reranker' in `lmj ls`){hint}.",
            param="model",
            code="model_not_reranker",
        )
    return instance, await instance.rank(query, documents)
