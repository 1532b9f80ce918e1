"""Reranking on a llama.cpp model with a rank pooling head (llama-server's ``/rerank``).

Kept apart from the backend's generation code: it runs one sequence at a time on a cleared
cache, outside the scheduler, on the worker's inference thread.
"""

from __future__ import annotations

from typing import Any

import llama_cpp

from ..backend import RequestError


def rank(llama: llama_cpp.Llama, query: str, documents: list[str]) -> dict[str, Any]:
    """llama-server's rerank: for each document, ``BOS query EOS SEP document EOS`` (the
    special tokens the vocabulary has) through the rank pooling head, one sequence at a time
    on a cleared cache; the score is the head's first output."""
    ctx = llama._ctx.ctx
    model, n_ctx = llama._model, llama.n_ctx()
    if llama_cpp.llama_pooling_type(ctx) != llama_cpp.LLAMA_POOLING_TYPE_RANK:
        raise RequestError("This model has no rank pooling head.", code="model_not_reranker", param="model")
    vocab = model.vocab
    bos, eos, sep = (
        f(vocab) for f in (llama_cpp.llama_vocab_bos, llama_cpp.llama_vocab_eos, llama_cpp.llama_vocab_sep)
    )
    query_tokens = [t for t in (bos,) if t >= 0] + model.tokenize(
        query.encode(), add_bos=False, special=False
    )
    query_tokens += [t for t in (eos, sep) if t >= 0]
    memory = llama_cpp.llama_get_memory(ctx)
    scores, counted = [], 0
    for index, document in enumerate(documents):
        tokens = query_tokens + model.tokenize(document.encode(), add_bos=False, special=False)
        tokens += [eos] if eos >= 0 else []
        if len(tokens) > n_ctx:
            raise RequestError(
                f"The query and document {index} are {len(tokens)} tokens long, but the model is "
                f"loaded with a context length of {n_ctx} tokens.",
                code="context_length_exceeded",
                param=f"documents.{index}",
            )
        llama_cpp.llama_memory_clear(memory, True)
        array = (llama_cpp.llama_token * len(tokens))(*tokens)  # held until decoded
        if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(array, len(tokens))) != 0:
            raise RuntimeError(f"llama_decode failed on document {index}")
        scores.append(float(llama_cpp.llama_get_embeddings_seq(ctx, 0)[0]))
        counted += len(tokens)
    return {"scores": scores, "prompt_tokens": counted}
