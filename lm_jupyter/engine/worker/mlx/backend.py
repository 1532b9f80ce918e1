"""The MLX backend: an MLX model folder run by mlx-lm, driven from one thread of one worker.

Concurrent requests share mlx-lm's ``BatchGenerator`` (continuous batching: each ``step`` is
one prefill chunk or one decode step for every running sequence, with each request's own
sampler and logits processors). A request that ends hands back its KV cache, which the next
request whose prompt shares its prefix continues from (``cached_tokens`` in usage), as the
llama.cpp scheduler's slots do. The context the model was loaded with is enforced: a prompt
must fit it, and an answer that reaches it ends with ``contextLengthReached``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mlx.core as mx
from mlx.utils import tree_flatten
from mlx_lm import load
from mlx_lm.generate import BatchGenerator
from mlx_lm.models.cache import can_trim_prompt_cache, make_prompt_cache, trim_prompt_cache

from ....chat.stops import StopMatcher
from ...protocol import Emit, GenerateParams
from ..backend import Progress, RequestError, common_prefix, done_event
from ..overflow import fit_request
from .sampling import Sampler, make_processors, make_sampler
from .tokens import MlxTokens

# What llama.cpp's grammars do and mlx-lm has no engine for: refused with the field named.
UNSUPPORTED = {
    "json_schema": "response_format",
    "grammar": "grammar",
    "tool_calls": "tool_choice",
    "draft_model": "draft_model",
    "prompt_lookup": "prompt_lookup",
    "logprobs": "logprobs",
    "echo": "echo",
}


@dataclass
class Prepared:
    params: GenerateParams
    tokens: list[int]
    sampler: Sampler
    processors: list[Any]

    def discard(self) -> None:
        """Nothing native to free: MLX arrays go with their last reference."""


@dataclass
class _Request:
    rid: str
    emit: Emit
    cancelled: Callable[[], bool]
    tokens: list[int]
    budget: int
    limited_by_context: bool
    stops: StopMatcher
    detokenizer: Any
    cached: int = 0
    generated: int = 0
    started: float = field(default_factory=time.perf_counter)
    first_token_at: float = 0.0


def open_backend(command: dict[str, Any], progress: Progress) -> tuple[MlxBackend, dict[str, int]]:
    """mlx-lm's loader reports no progress: only the end is announced."""
    backend = MlxBackend(
        command["path"], context_length=command["context_length"], parallel=command.get("parallel", 1)
    )
    progress(1.0)
    return backend, {"mlx active": int(mx.get_active_memory())}


class MlxBackend:
    embedding = False

    def __init__(self, path: str, *, context_length: int, parallel: int = 1) -> None:
        self.model, wrapper = load(path)
        self.text = MlxTokens(wrapper)
        self.n_ctx = context_length
        self.parallel = max(1, parallel)
        eos = sorted(wrapper.eos_token_ids)
        self.eos = set(eos)
        self.generator = BatchGenerator(
            self.model,
            stop_tokens=[[token] for token in eos],
            completion_batch_size=self.parallel,
            prefill_batch_size=self.parallel,
            prefill_step_size=512,
        )
        self.running: dict[int, _Request] = {}
        # Finished sequences' (tokens, KV cache), most recent last: a new prompt continues from
        # the one that shares the longest prefix with it. As many as the parallel slots.
        self.caches: list[tuple[list[int], list[Any]]] = []

    def info(self) -> dict[str, Any]:
        return {
            "context_length": self.n_ctx,
            "n_vocab": self.text.n_vocab,
            "gpu_offload_supported": mx.metal.is_available(),
        }

    def warm_up(self) -> int:
        """One short forward pass, so memory measured next is the model's; returns weight bytes."""
        tokens = self.text.encode("Hello", special=True) or [0]
        logits = self.model(mx.array([tokens]), cache=make_prompt_cache(self.model))
        mx.eval(logits)
        return sum(int(array.nbytes) for _, array in tree_flatten(self.model.parameters()))

    def max_token_bytes(self) -> int:
        return self.text.max_token_bytes()

    def tokens(self, text: str, **options: Any) -> dict[str, Any]:
        return self.text.tokens(text, **options)

    def detokenize(self, tokens: list[int]) -> str:
        return self.text.detokenize(tokens)

    def embed(self, texts: list[str]) -> dict[str, Any]:
        raise RequestError(
            "MLX models cannot compute embeddings here; load a GGUF embedding model.",
            code="model_not_embedding",
            param="model",
        )

    def rank(self, query: str, documents: list[str]) -> dict[str, Any]:
        raise RequestError(
            "MLX models cannot rerank here; load a GGUF reranker.", code="model_not_reranker", param="model"
        )

    @property
    def busy(self) -> bool:
        return bool(self.running)

    def prepare(self, params: GenerateParams, cancelled: Callable[[], bool]) -> Prepared:
        """Tokenize and check a request on the preparation thread (the tokenizer only)."""
        for name, param in UNSUPPORTED.items():
            value = params.get(name)  # type: ignore[misc]
            if value is not None and value is not False:  # logprobs 0 is on: no alternatives
                raise RequestError(
                    f"The MLX backend cannot honour '{param}' (mlx-lm has no engine for it); "
                    "leave it out, or use a GGUF model of this model for it.",
                    code="unsupported_for_mlx",
                    param=param,
                )
        parts = params.get("prompt_parts") or [(params["prompt"], True)]
        tokens = self.text.prompt([(text, bool(special)) for text, special in parts], cancelled)
        tokens = fit_request(tokens, params, self.n_ctx, self.text.bos)
        if not tokens:
            raise RequestError("The prompt is empty.", code="empty_prompt", param="prompt")
        return Prepared(params, tokens, make_sampler(params), make_processors(params))

    def submit(self, rid: str, prepared: Prepared, emit: Emit, cancelled: Callable[[], bool]) -> None:
        """Start a prepared request in the running batch, from the longest cached prefix."""
        tokens, params = prepared.tokens, prepared.params
        room = self.n_ctx - len(tokens)
        requested = params.get("max_tokens")
        budget = room if requested is None else min(requested, room)
        emit({"ev": "started", "prompt_tokens": len(tokens)})
        request = _Request(
            rid, emit, cancelled, tokens, budget, requested is None or requested > room,
            StopMatcher(params.get("stop") or []), self.text.wrapper.detokenizer,
        )  # fmt: skip
        if budget <= 0:
            self._finish(request, "maxPredictedTokensReached")
            return
        cache, request.cached = self._reuse(tokens)
        (uid,) = self.generator.insert(
            [tokens[request.cached :]],
            max_tokens=[budget],
            caches=[cache],
            all_tokens=[tokens[: request.cached]],
            samplers=[prepared.sampler],
            logits_processors=[prepared.processors],
        )
        self.running[uid] = request

    def _reuse(self, tokens: list[int]) -> tuple[list[Any], int]:
        """The stored cache sharing the longest prefix with ``tokens`` (at least one token is
        left to evaluate), trimmed to that prefix; else a new cache."""
        best, common = -1, 0
        for index, (cached, _) in enumerate(self.caches):
            shared = common_prefix(cached, tokens[:-1])
            if shared > common:
                best, common = index, shared
        if best < 0:
            return make_prompt_cache(self.model), 0
        cached, cache = self.caches.pop(best)
        if len(cached) > common:
            if not can_trim_prompt_cache(cache):
                return make_prompt_cache(self.model), 0
            trim_prompt_cache(cache, len(cached) - common)
        return cache, common

    def _keep(self, tokens: list[int] | None, cache: list[Any] | None) -> None:
        """Keep a finished sequence's cache for a later prompt (the oldest goes first)."""
        if cache is not None and tokens:
            self.caches = [*self.caches, (list(tokens), cache)][-self.parallel :]

    def step(self) -> None:
        for uid, request in list(self.running.items()):
            if request.cancelled():
                self._end(uid, request, "userStopped")
        if not self.running:
            return
        _, generated = self.generator.next()
        for response in generated:
            request = self.running.get(response.uid)
            if request is not None:
                self._take(response, request)

    def _take(self, response: Any, request: _Request) -> None:
        if not request.first_token_at:
            request.first_token_at = time.perf_counter()
        if response.token in self.eos:
            del self.running[response.uid]
            self._keep(response.all_tokens, response.prompt_cache)
            self._finish(request, "eosFound")
            return
        request.generated += 1
        request.detokenizer.add_token(response.token)
        text = request.stops.feed(request.detokenizer.last_segment)
        if text:
            request.emit({"ev": "text", "text": text})
        if request.stops.stopped:
            self._end(response.uid, request, "stopStringFound")
        elif response.finish_reason is not None:
            del self.running[response.uid]
            self._keep(response.all_tokens, response.prompt_cache)
            reason = "contextLengthReached" if request.limited_by_context else "maxPredictedTokensReached"
            self._finish(request, reason)

    def _end(self, uid: int, request: _Request, reason: str) -> None:
        """Take a sequence out of the batch before mlx-lm ends it; its cache is kept."""
        del self.running[uid]
        for cache, tokens in self.generator.remove([uid], return_prompt_caches=True).values():
            self._keep(tokens, cache)
        self._finish(request, reason)

    def _finish(self, request: _Request, reason: str) -> None:
        if not request.stops.stopped:
            request.detokenizer.finalize()
            tail = request.stops.feed(request.detokenizer.last_segment) + request.stops.flush()
            if tail:
                request.emit({"ev": "text", "text": tail})
        request.emit(done_event(reason, request, request.stops.matched))
