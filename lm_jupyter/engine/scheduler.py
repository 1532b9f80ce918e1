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
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
from llama_cpp import _internals

from ..chat.stops import StopMatcher
from .batch import Entry, common_prefix, fill
from .overflow import discard_count, shifts
from .protocol import Emit, GenerateParams
from .speculative import Counters, DraftJob, DraftModel, PromptLookup

DEFAULTS = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.1}
PENALTY_LAST_N = 64


@dataclass
class Speculation:
    """How one request drafts: with a draft model (``model``) or by prompt lookup (``lookup``)."""

    n_draft: int
    model: DraftModel | None = None
    model_key: str | None = None
    lookup: PromptLookup | None = None
    min_probability: float = 0.0
    counters: Counters = field(default_factory=Counters)
    # Drafts offered per step, adapted as Hugging Face's assisted generation does: two more
    # after a step whose drafts were all accepted, one fewer after a rejection (between 1 and
    # ``n_draft``). Rejected drafts cost a compute-bound model (a 1.5B on a CPU) more than
    # accepted ones save; a memory-bound one keeps drafting long runs.
    window: int = 0

    def __post_init__(self) -> None:
        self.window = self.window or self.n_draft

    def adapt(self, offered: int, accepted: int) -> None:
        if offered:
            grown = self.window + 2 if accepted == offered else self.window - 1
            self.window = max(1, min(self.n_draft, grown))


@dataclass
class _Request:
    rid: str
    emit: Emit
    cancelled: Callable[[], bool]
    tokens: list[int]  # the prompt
    budget: int | None  # None: until the end of the answer (a shifting policy, no max_tokens)
    limit: int | None  # tokens the context has left after the prompt; None: it shifts
    sampler: Any
    stops: StopMatcher
    policy: str = "stopAtLimit"
    keep: int = 0  # tokens a context shift never drops
    speculation: Speculation | None = None
    cached: int = 0
    started: float = field(default_factory=time.perf_counter)
    first_token_at: float = 0.0
    generated: int = 0
    pending: list[int] = field(default_factory=list)  # tokens to put into the KV cache next
    drafts: list[int] = field(default_factory=list)  # guesses to verify after ``pending``
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace"))


@dataclass
class _Slot:
    seq_id: int
    kv: list[int] = field(default_factory=list)  # the tokens this sequence holds in the KV cache
    request: _Request | None = None
    last_used: float = 0.0
    # Cells below this position may also belong to another sequence (a prefix copied with
    # seq_cp shares cells): moving their positions would move the other sequence's too.
    shared: int = 0


class Scheduler:
    def __init__(self, model: Any, ctx: Any, *, parallel: int, n_batch: int) -> None:
        self.model = model
        self.ctx = ctx
        self.vocab = model.vocab
        self.n_ctx = llama_cpp.llama_n_ctx(ctx)
        self.n_batch = n_batch
        self.memory = llama_cpp.llama_get_memory(ctx)
        # False for sliding-window caches that keep only the window (Gemma 3), among others.
        self.can_shift = bool(llama_cpp.llama_memory_can_shift(self.memory))
        self.slots = [_Slot(seq_id) for seq_id in range(parallel)]
        self.waiting: list[_Request] = []
        self.batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._pieces: dict[int, bytes] = {}
        self._tight = False  # the last batch did not fit the KV cache: no drafts until one does

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
        *,
        keep: int = 0,
        speculation: Speculation | None = None,
    ) -> None:
        policy = params.get("context_overflow_policy") or "stopAtLimit"
        requested = params.get("max_tokens")
        limit = None if shifts(policy) else self.n_ctx - len(tokens)
        budget = requested if limit is None else limit if requested is None else min(requested, limit)
        request = _Request(
            rid,
            emit,
            cancelled,
            tokens,
            budget,
            limit,
            sampler,
            StopMatcher(params.get("stop") or []),
            policy=policy,
            keep=keep,
            speculation=speculation,
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
                target.shared = common
                source.shared = max(source.shared, common)
            else:
                llama_cpp.llama_memory_seq_rm(self.memory, target.seq_id, common, -1)
                target.kv = target.kv[:common]
                target.shared = min(target.shared, common)
            request.cached = common
            request.pending = request.tokens[common:]
            target.request = request
            if request.budget is not None and request.budget <= 0:
                self._finish(target, request, "contextLengthReached")

    def _best_prefix(self, free: list[_Slot], tokens: list[int]) -> tuple[_Slot, _Slot, int]:
        """The free slot to use, the slot whose cache to start from, and how many tokens of it.

        At least one prompt token is always evaluated again, for the logits to sample from."""

        shared = {slot.seq_id: min(common_prefix(slot.kv, tokens), len(tokens) - 1) for slot in self.slots}
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
        for slot in active:
            request = slot.request
            assert request is not None
            if len(slot.kv) + len(request.pending) > self.n_ctx:  # only a shifting policy gets here
                self._shift(slot)
        if not self._tight:
            self._draft(active)
        # Generating requests first (one token each, and their drafts), then prompt chunks in
        # the room left.
        entries: list[Entry] = []
        placed: list[tuple[_Slot, int, bool]] = []
        room = self.n_batch
        for slot in sorted(active, key=lambda s: len(s.request.pending) > 1):  # type: ignore[union-attr]
            request = slot.request
            assert request is not None
            take = request.pending[:room]
            whole = len(take) == len(request.pending)
            drafts = request.drafts[: room - len(take)] if take and whole else []
            self._ignore(request, len(request.drafts) - len(drafts))
            request.drafts = drafts
            if not take:
                continue
            entries.append(Entry(slot.seq_id, len(slot.kv), take + drafts, 1 + len(drafts) if whole else 0))
            placed.append((slot, len(take), whole))
            room -= len(take) + len(drafts)
        starts = fill(self.batch, entries)
        if llama_cpp.llama_decode(self.ctx, self.batch) != 0:
            self._relieve(active)
            return
        self._tight = False
        for (slot, taken, whole), start in zip(placed, starts, strict=True):
            request = slot.request
            assert request is not None
            slot.kv += request.pending[:taken] + request.drafts
            request.pending = request.pending[taken:]
            if whole:
                self._verify(slot, start + taken - 1)

    def _verify(self, slot: _Slot, index: int) -> None:
        """Sample the target's own token after the pending one and after each draft token, as
        long as it agrees with the draft; the KV cache keeps only the agreed drafts. With no
        drafts this is plain decoding's one sample."""
        request = slot.request
        assert request is not None
        drafts, request.drafts = request.drafts, []
        counters = request.speculation.counters if request.speculation else None
        if counters is not None:
            counters.rejected += len(drafts)  # until the target agrees with them
        kept = 0  # drafts that stay in the KV cache: agreed and not the request's last token
        accepted = 0
        for offset in range(len(drafts) + 1):
            token = llama_cpp.llama_sampler_sample(request.sampler, self.ctx, index + offset)
            agreed = offset < len(drafts) and token == drafts[offset]
            if agreed and counters is not None:
                accepted += 1
                counters.accepted += 1
                counters.rejected -= 1
            if not self._take(slot, token):
                break
            if not agreed:
                request.pending = [token]
                break
            kept += 1
        if request.speculation is not None:
            request.speculation.adapt(len(drafts), accepted)
        keep = len(slot.kv) - len(drafts) + kept
        if keep < len(slot.kv):
            llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, keep, -1)
            del slot.kv[keep:]

    def _take(self, slot: _Slot, token: int) -> bool:
        """Hand a sampled token to its request; False if that finished the request."""
        request = slot.request
        assert request is not None
        if not request.first_token_at:
            request.first_token_at = time.perf_counter()
        if llama_cpp.llama_vocab_is_eog(self.vocab, token):
            self._finish(slot, request, "eosFound")
            return False
        request.generated += 1
        if request.speculation and request.speculation.lookup:
            request.speculation.lookup.append(token)
        text = request.stops.feed(request.decoder.decode(self._piece(token)))
        if text:
            request.emit({"ev": "text", "text": text})
        if request.stops.stopped:
            self._finish(slot, request, "stopStringFound")
            return False
        if request.budget is not None and request.generated >= request.budget:
            reason = (
                "maxPredictedTokensReached"
                if request.limit is None or request.budget < request.limit
                else "contextLengthReached"
            )
            self._finish(slot, request, reason)
            return False
        return True

    # -- speculative decoding ------------------------------------------------------------

    def _draft(self, active: list[_Slot]) -> None:
        """Give every speculating request that is generating its drafts for this step."""
        jobs: dict[DraftModel, list[tuple[_Request, DraftJob]]] = {}
        for slot in active:
            request = slot.request
            assert request is not None
            spec = request.speculation
            if spec is None or request.generated == 0 or len(request.pending) != 1:
                continue
            limit = min(spec.window, self.n_ctx - len(slot.kv) - 1)
            if request.budget is not None:
                limit = min(limit, request.budget - request.generated - 1)
            if limit <= 0:
                continue
            if spec.lookup is not None:
                request.drafts = spec.lookup.draft(limit)
                spec.counters.total += len(request.drafts)
            elif spec.model is not None:
                job = DraftJob(slot.seq_id, slot.kv + request.pending, limit, spec.min_probability)
                jobs.setdefault(spec.model, []).append((request, job))
        for model, pairs in jobs.items():
            try:
                model.draft([job for _, job in pairs])
            except RuntimeError:  # its cache is full: start it afresh, no drafts this step
                model.reset()
                continue
            for request, job in pairs:
                assert request.speculation is not None
                request.speculation.counters.total += len(job.drafted) + job.unsure
                self._ignore(request, job.unsure)
                request.drafts = job.drafted

    def _ignore(self, request: _Request, count: int) -> None:
        """Drafted tokens that will not be verified after all."""
        if count and request.speculation is not None:
            request.speculation.counters.ignored += count

    # -- a full context ------------------------------------------------------------------

    def _shift(self, slot: _Slot) -> None:
        """Make room in a sequence that reached the end of the context (llama.cpp's context
        shift): drop half of the tokens after the kept ones. Where the cache cannot move
        positions (a sliding-window cache, cells shared with another sequence), the kept
        tokens are evaluated again instead."""
        request = slot.request
        assert request is not None
        keep = request.keep
        discard = discard_count(len(slot.kv), keep)
        if self.can_shift and keep + discard >= slot.shared:
            llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, keep, keep + discard)
            llama_cpp.llama_memory_seq_add(self.memory, slot.seq_id, keep + discard, -1, -discard)
            del slot.kv[keep : keep + discard]
            slot.shared = min(slot.shared, keep)
            return
        kept = slot.kv[:keep] + slot.kv[keep + discard :]
        why = "this model's KV cache cannot shift" if not self.can_shift else "its cells are shared"
        print(f"context shift: {why}; evaluating {len(kept)} kept tokens again", file=sys.stderr)
        llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, -1, -1)
        slot.kv, slot.shared = [], 0
        request.pending = kept + request.pending

    def _relieve(self, active: list[_Slot]) -> None:
        """The batch did not fit the KV cache (its cells are shared by all sequences): drop
        this step's drafts; else forget idle sequences' caches; else shift or stop the
        longest request."""
        drafted = False
        for slot in active:
            request = slot.request
            assert request is not None
            if request.drafts:
                drafted = True
                self._ignore(request, len(request.drafts))
                request.drafts = []
        self._tight = True
        if drafted:
            return
        idle = [slot for slot in self.slots if slot.request is None and slot.kv]
        for slot in idle:
            llama_cpp.llama_memory_seq_rm(self.memory, slot.seq_id, -1, -1)
            slot.kv, slot.shared = [], 0
        if idle:
            return
        longest = max(active, key=lambda s: len(s.kv) + len(s.request.pending))  # type: ignore[union-attr]
        assert longest.request is not None
        if shifts(longest.request.policy) and len(longest.kv) > longest.request.keep + 1:
            self._shift(longest)
        else:
            self._finish(longest, longest.request, "contextLengthReached")

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
        done = {
            "ev": "done",
            "stop_reason": reason,
            "prompt_tokens": len(request.tokens),
            "cached_tokens": request.cached,
            "completion_tokens": request.generated,
            "time_to_first_token": (request.first_token_at or finished) - request.started,
            "generation_time": finished - request.started,
        }
        spec = request.speculation
        if spec is not None:
            self._ignore(request, len(request.drafts))
            request.drafts = []
            done["draft"] = spec.counters.to_json(spec.model_key)
        request.emit(done)
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
