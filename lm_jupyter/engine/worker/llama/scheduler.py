"""Continuous batching: several requests share every ``llama_decode`` of one context.

Runs on the worker's single inference thread, the only code that touches the context. Each
request gets a sequence id (a "slot") in a unified KV cache; every step puts one decode token
for each generating request and prompt chunks of newly admitted ones into the same batch,
samples each sequence with its own sampler (parameters, grammar, seed), and streams its
text. Requests join and leave between steps. A finished request leaves its tokens in its slot's
KV cache, which a later request starting with the same tokens (a chat's next turn) reuses.
"""

from __future__ import annotations

import codecs
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import llama_cpp

from ....chat.stops import StopMatcher
from ...protocol import Emit, GenerateParams, prompt_progress, shifts
from ..backend import common_prefix, done_event
from ..overflow import discard_count
from .batch import Entry, fill
from .grammar_mask import GrammarState
from .logprobs import TokenScorer, entry
from .sampling import Sampler
from .speculative import DraftJob, DraftModel, Speculation


@dataclass
class _Request:
    rid: str
    emit: Emit
    cancelled: Callable[[], bool]
    tokens: list[int]  # the prompt
    budget: int | None  # None: until the end of the answer (a shifting policy, no max_tokens)
    limit: int | None  # tokens the context has left after the prompt; None: it shifts
    sampler: Sampler
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
    top_logprobs: int | None = None  # None: no logprobs; else alternatives per token
    echo: bool = False  # score the prompt's tokens too (completions' echo)
    progress: bool = False  # a prompt_progress event after each prompt chunk (return_progress)
    mask: GrammarState | None = None  # constrained_logprobs: a grammar following the answer
    scores: list[dict[str, Any]] = field(default_factory=list)  # logprobs not yet sent with text


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
        self.scorer = TokenScorer(ctx, self.vocab)
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
        sampler: Sampler,
        emit: Emit,
        cancelled: Callable[[], bool],
        *,
        keep: int = 0,
        speculation: Speculation | None = None,
        added_bos: bool = False,
        mask: GrammarState | None = None,
    ) -> None:
        """``added_bos``: the server put BOS before the prompt's text (echo leaves it out).
        ``mask``: a grammar sampler that limits logprobs' alternatives to what it allows."""
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
            top_logprobs=params.get("logprobs"),
            echo=bool(params.get("echo")),
            progress=bool(params.get("progress")),
            mask=mask,
        )
        if request.echo and tokens and not added_bos:  # nothing before the first token scores it
            first = entry(self.scorer.piece(tokens[0], special=True), None, [])
            request.emit({"ev": "prompt_logprobs", "logprobs": [first]})
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
            if request.echo:  # every prompt token needs its logits: nothing comes from the cache
                common = 0
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
            if request.budget is not None and request.budget <= 0 and not request.echo:
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
            logits = 1 + len(drafts) if whole else 0
            if self._scoring_prompt(slot):
                logits = len(take) + len(drafts)
            entries.append(Entry(slot.seq_id, len(slot.kv), take + drafts, logits))
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
            if self._scoring_prompt(slot):
                self._score_prompt(slot, start, taken)
            slot.kv += request.pending[:taken] + request.drafts
            request.pending = request.pending[taken:]
            if request.progress and request.generated == 0:  # one event per prompt chunk
                request.emit(
                    prompt_progress(len(slot.kv), len(request.tokens), request.cached, request.started)
                )
            if whole and request.budget == 0:  # echo with max_tokens 0: the prompt's scores only
                self._finish(slot, request, "maxPredictedTokensReached")
            elif whole:
                self._verify(slot, start + taken - 1)

    # -- logprobs ------------------------------------------------------------------------

    def _scoring_prompt(self, slot: _Slot) -> bool:
        request = slot.request
        assert request is not None
        return request.echo and request.generated == 0 and len(slot.kv) < len(request.tokens)

    def _score_prompt(self, slot: _Slot, start: int, taken: int) -> None:
        request = slot.request
        assert request is not None
        top = request.top_logprobs or 0
        scored = self.scorer.prompt_scores(start, len(slot.kv), taken, request.tokens, top)
        if scored:
            request.emit({"ev": "prompt_logprobs", "logprobs": scored})

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
            token = request.sampler.sample(self.ctx, index + offset)
            if request.top_logprobs is not None and not llama_cpp.llama_vocab_is_eog(self.vocab, token):
                # Each position's logits are the target's own, drafts or not: exact either way.
                request.scores.append(
                    self.scorer.scored(index + offset, token, request.top_logprobs, mask=request.mask)
                )
                if request.mask is not None:
                    request.mask.accept(token)
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
        text = request.stops.feed(request.decoder.decode(self.scorer.piece(token)))
        if text:
            self._emit_text(request, text)
        if request.stops.stopped:
            self._finish(slot, request, "stopStringFound")
            return False
        if request.budget is not None and request.generated >= request.budget:
            capped = request.limit is not None and request.budget >= request.limit
            self._finish(slot, request, "contextLengthReached" if capped else "maxPredictedTokensReached")
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

    def _emit_text(self, request: _Request, text: str) -> None:
        """Text goes out with the logprobs of the tokens that made it (and of held-back ones)."""
        event: dict[str, Any] = {"ev": "text", "text": text}
        if request.scores:
            event["logprobs"], request.scores = request.scores, []
        request.emit(event)

    def _finish(self, slot: _Slot | None, request: _Request, reason: str) -> None:
        if not request.stops.stopped:
            tail = request.stops.feed(request.decoder.decode(b"", final=True)) + request.stops.flush()
            if tail:
                self._emit_text(request, tail)
        if request.scores:  # tokens whose text was held back (by a stop string that then matched)
            self._emit_text(request, "")
        done = done_event(reason, request, request.stops.matched)
        spec = request.speculation
        if spec is not None:
            self._ignore(request, len(request.drafts))
            request.drafts = []
            done["draft"] = spec.counters.to_json(spec.model_key)
        request.emit(done)
        request.sampler.free()
        if request.mask is not None:
            request.mask.free()
        if slot is not None:
            slot.request = None
            slot.last_used = time.perf_counter()
