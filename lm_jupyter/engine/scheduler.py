"""Continuous batching: several requests share every ``llama_decode`` of one context.

Runs on the worker's single inference thread and is the only code that touches the context.
Each request gets a sequence id (a "slot") in a unified KV cache; every step puts one decode
token for each generating request and prompt chunks of newly admitted ones into the same batch,
samples each sequence with its own sampler chain (parameters, grammar, seed), and streams its
text. Requests join and leave between steps. A finished request leaves its tokens in its slot's
KV cache, so a later request that starts with the same tokens (a chat's next turn, a shared
system prompt) reuses them instead of recomputing them.
"""

from __future__ import annotations

import codecs
import ctypes
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
from llama_cpp import _internals

from ..chat.stops import StopMatcher
from .protocol import Emit, GenerateParams

DEFAULTS = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.1}
PENALTY_LAST_N = 64


@dataclass
class _Request:
    rid: str
    emit: Emit
    cancelled: Callable[[], bool]
    tokens: list[int]  # the prompt
    budget: int
    limit: int  # tokens the context has left after the prompt
    sampler: Any
    stops: StopMatcher
    cached: int = 0
    started: float = field(default_factory=time.perf_counter)
    first_token_at: float = 0.0
    generated: int = 0
    pending: list[int] = field(default_factory=list)  # tokens to put into the KV cache next
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace"))


@dataclass
class _Slot:
    seq_id: int
    kv: list[int] = field(default_factory=list)  # the tokens this sequence holds in the KV cache
    request: _Request | None = None
    last_used: float = 0.0


class Scheduler:
    def __init__(self, model: Any, ctx: Any, *, parallel: int, n_batch: int) -> None:
        self.model = model
        self.ctx = ctx
        self.vocab = model.vocab
        self.n_ctx = llama_cpp.llama_n_ctx(ctx)
        self.n_batch = n_batch
        self.memory = llama_cpp.llama_get_memory(ctx)
        self.slots = [_Slot(seq_id) for seq_id in range(parallel)]
        self.waiting: list[_Request] = []
        self.batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._pieces: dict[int, bytes] = {}

    def warm_up(self, tokens: list[int]) -> None:
        """Decode a few tokens on the first sequence and forget them (pages the weights in)."""
        # The batch only points at the array: keep it referenced until the decode is done.
        array = (llama_cpp.llama_token * len(tokens))(*tokens)
        if llama_cpp.llama_decode(self.ctx, llama_cpp.llama_batch_get_one(array, len(tokens))) != 0:
            raise RuntimeError("llama_decode failed while warming the model up")
        llama_cpp.llama_memory_seq_rm(self.memory, 0, -1, -1)

    @property
    def busy(self) -> bool:
        return bool(self.waiting) or any(slot.request for slot in self.slots)

    # -- admission -----------------------------------------------------------------------

    def submit(
        self,
        rid: str,
        tokens: list[int],
        params: GenerateParams,
        sampler: Any,
        emit: Emit,
        cancelled: Callable[[], bool],
    ) -> None:
        limit = self.n_ctx - len(tokens)
        requested = params.get("max_tokens")
        budget = limit if requested is None else min(requested, limit)
        request = _Request(
            rid, emit, cancelled, tokens, budget, limit, sampler, StopMatcher(params.get("stop") or [])
        )
        self.waiting.append(request)

    def _admit(self) -> None:
        while self.waiting:
            free = [slot for slot in self.slots if slot.request is None]
            if not free:
                return
            request = self.waiting.pop(0)
            if request.cancelled():
                self._finish(None, request, "userStopped")
                continue
            target, source, common = self._best_prefix(free, request.tokens)
            if source is not target:
                llama_cpp.llama_memory_seq_rm(self.memory, target.seq_id, -1, -1)
                if common:
                    llama_cpp.llama_memory_seq_cp(self.memory, source.seq_id, target.seq_id, 0, common)
                target.kv = source.kv[:common]
            else:
                llama_cpp.llama_memory_seq_rm(self.memory, target.seq_id, common, -1)
                target.kv = target.kv[:common]
            request.cached = common
            request.pending = request.tokens[common:]
            target.request = request
            if request.budget <= 0:
                self._finish(target, request, "contextLengthReached")

    def _best_prefix(self, free: list[_Slot], tokens: list[int]) -> tuple[_Slot, _Slot, int]:
        """The free slot to use, the slot whose cache to start from, and how many tokens of it.

        At least one prompt token is always evaluated again, for the logits to sample from."""

        shared = {slot.seq_id: min(_common_prefix(slot.kv, tokens), len(tokens) - 1) for slot in self.slots}
        source = max(self.slots, key=lambda slot: shared[slot.seq_id])
        if source.request is None:  # a free slot holds the best prefix: use it directly
            return source, source, shared[source.seq_id]
        # Otherwise the free slot with the most of it (else the least recently used one) takes
        # the request, starting from its own cache or from a copy of the busy slot's.
        target = max(free, key=lambda slot: (shared[slot.seq_id], -slot.last_used))
        if shared[target.seq_id] >= shared[source.seq_id]:
            return target, target, shared[target.seq_id]
        return target, source, shared[source.seq_id]

    # -- one step ------------------------------------------------------------------------

    def step(self) -> None:
        self._admit()
        for slot in self.slots:
            if slot.request is not None and slot.request.cancelled():
                self._finish(slot, slot.request, "userStopped")
        active = [slot for slot in self.slots if slot.request is not None]
        if not active:
            return
        batch = self.batch
        n = 0
        samples: list[tuple[_Slot, int]] = []
        # Generating requests first (one token each), then prompt chunks in the room left.
        order = sorted(active, key=lambda s: len(s.request.pending) > 1)  # type: ignore[union-attr]
        for slot in order:
            request = slot.request
            assert request is not None
            take = request.pending[: self.n_batch - n]
            if not take:
                continue
            for offset, token in enumerate(take):
                batch.token[n] = token
                batch.pos[n] = len(slot.kv) + offset
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = slot.seq_id
                last = offset == len(take) - 1 and len(take) == len(request.pending)
                batch.logits[n] = last
                if last:
                    samples.append((slot, n))
                n += 1
            if n >= self.n_batch:
                break
        batch.n_tokens = n
        if llama_cpp.llama_decode(self.ctx, batch) != 0:
            # No room in the KV cache for all of them: stop the longest, keep the others.
            longest = max(active, key=lambda s: len(s.kv) + len(s.request.pending))  # type: ignore[union-attr]
            assert longest.request is not None
            self._finish(longest, longest.request, "contextLengthReached")
            return
        placed = 0
        for slot in order:
            request = slot.request
            assert request is not None
            take = request.pending[: max(0, min(len(request.pending), n - placed))]
            slot.kv += take
            request.pending = request.pending[len(take) :]
            placed += len(take)
        for slot, index in samples:
            self._sample(slot, index)

    def _sample(self, slot: _Slot, index: int) -> None:
        request = slot.request
        assert request is not None
        token = llama_cpp.llama_sampler_sample(request.sampler, self.ctx, index)
        if not request.first_token_at:
            request.first_token_at = time.perf_counter()
        if llama_cpp.llama_vocab_is_eog(self.vocab, token):
            self._finish(slot, request, "eosFound")
            return
        request.generated += 1
        text = request.stops.feed(request.decoder.decode(self._piece(token)))
        if text:
            request.emit({"ev": "text", "text": text})
        if request.stops.stopped:
            self._finish(slot, request, "stopStringFound")
        elif request.generated >= request.budget:
            reason = "maxPredictedTokensReached" if request.budget < request.limit else "contextLengthReached"
            self._finish(slot, request, reason)
        else:
            request.pending = [token]

    def _piece(self, token: int) -> bytes:
        """A token's bytes (cached: the same few thousand tokens come back all the time)."""
        piece = self._pieces.get(token)
        if piece is None:
            buffer = ctypes.create_string_buffer(64)
            size = llama_cpp.llama_token_to_piece(self.vocab, token, buffer, 64, 0, False)
            if size < 0:  # longer than the buffer: llama.cpp says how long
                buffer = ctypes.create_string_buffer(-size)
                size = llama_cpp.llama_token_to_piece(self.vocab, token, buffer, -size, 0, False)
            piece = self._pieces[token] = buffer.raw[:size]
        return piece

    def _finish(self, slot: _Slot | None, request: _Request, reason: str) -> None:
        if not request.stops.stopped:
            tail = request.stops.feed(request.decoder.decode(b"", final=True)) + request.stops.flush()
            if tail:
                request.emit({"ev": "text", "text": tail})
        finished = time.perf_counter()
        request.emit(
            {
                "ev": "done",
                "stop_reason": reason,
                "prompt_tokens": len(request.tokens),
                "cached_tokens": request.cached,
                "completion_tokens": request.generated,
                "time_to_first_token": (request.first_token_at or finished) - request.started,
                "generation_time": finished - request.started,
            }
        )
        llama_cpp.llama_sampler_free(request.sampler)
        if slot is not None:
            slot.request = None
            slot.last_used = finished


def make_sampler(model: Any, params: GenerateParams, grammar: str | None) -> Any:
    """A sampler chain with the request's own settings; the caller has validated the grammar."""
    vocab = model.vocab
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())

    def add(sampler: Any) -> None:
        llama_cpp.llama_sampler_chain_add(chain, sampler)

    bias = params.get("logit_bias") or {}
    if bias:
        entries = (llama_cpp.llama_logit_bias * len(bias))(
            *(llama_cpp.llama_logit_bias(int(k), float(v)) for k, v in bias.items())
        )
        add(
            llama_cpp.llama_sampler_init_logit_bias(llama_cpp.llama_vocab_n_tokens(vocab), len(bias), entries)
        )
    repeat = _pick(params, "repeat_penalty")
    frequency = params.get("frequency_penalty") or 0.0
    presence = params.get("presence_penalty") or 0.0
    if repeat != 1.0 or frequency or presence:
        add(llama_cpp.llama_sampler_init_penalties(
            llama_cpp.llama_vocab_n_tokens(vocab), PENALTY_LAST_N, repeat, frequency, presence
        ))  # fmt: skip
    if grammar:
        add(llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root"))
    temperature = _pick(params, "temperature")
    if temperature <= 0:
        add(llama_cpp.llama_sampler_init_greedy())
        return chain
    seed = params.get("seed")
    add(llama_cpp.llama_sampler_init_top_k(_pick(params, "top_k")))
    add(llama_cpp.llama_sampler_init_top_p(_pick(params, "top_p"), 1))
    add(llama_cpp.llama_sampler_init_min_p(_pick(params, "min_p"), 1))
    add(llama_cpp.llama_sampler_init_temp(temperature))
    add(llama_cpp.llama_sampler_init_dist(seed if seed is not None else random.getrandbits(31)))
    return chain


def make_context(
    model: Any, *, context_length: int, parallel: int, n_batch: int, threads: int, flash_attention: bool
) -> Any:
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = context_length
    params.n_batch = params.n_ubatch = n_batch
    params.n_seq_max = parallel
    params.kv_unified = True  # one cache of n_ctx cells shared by the sequences, as LM Studio does
    params.n_threads = params.n_threads_batch = threads
    # Explicit either way: llama.cpp's default is "auto", which would turn it on behind the
    # user's back (and the memory estimate's) on the CPU.
    params.flash_attn_type = (
        llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        if flash_attention
        else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    )
    return _internals.LlamaContext(model=model, params=params, verbose=False)


def _pick(params: GenerateParams, name: str) -> Any:
    value = params.get(name)  # type: ignore[misc]
    return DEFAULTS[name] if value is None else value


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for mine, theirs in zip(a, b, strict=False):
        if mine != theirs:
            break
        n += 1
    return n
