"""Drafting for speculative decoding: guesses of the next tokens that the target model checks.

Two drafters propose tokens; the scheduler verifies them in one batch on the target and keeps
the longest run its own sampler agrees with, so the text is what plain decoding gives.

- :class:`PromptLookup` (n-gram drafting) looks for the last few tokens earlier in the prompt
  or the answer and proposes what followed them there. It costs nothing to draft, and pays
  off when the answer repeats or edits given text (code edits, quotes, summaries).
- :class:`DraftModel` runs a smaller model with the same vocabulary in the same worker and on
  the same inference thread, one sequence per slot of the target, all slots drafting together
  in each ``llama_decode``.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
import numpy as np

from ..backend import common_prefix
from .batch import Entry, fill

NGRAM_MAX = 3  # longest suffix looked up
NGRAM_MIN = 2  # a single matching token is too weak a hint to be worth a verification


@dataclass
class Counters:
    """LM Studio's draft statistics for one request: ``total = accepted + rejected + ignored``.

    Ignored tokens were drafted but never sent to the target (no room left in the batch, the
    answer's token budget or the context, or the draft model was not sure enough of them)."""

    total: int = 0
    accepted: int = 0
    rejected: int = 0
    ignored: int = 0

    def to_json(self, draft_model: str | None) -> dict[str, Any]:
        stats: dict[str, Any] = {} if draft_model is None else {"draft_model": draft_model}
        stats.update(
            total_draft_tokens_count=self.total,
            accepted_draft_tokens_count=self.accepted,
            rejected_draft_tokens_count=self.rejected,
            ignored_draft_tokens_count=self.ignored,
        )
        return stats


class PromptLookup:
    """An index of the n-grams of one request's tokens (prompt, then answer) to what followed."""

    def __init__(self, tokens: list[int]) -> None:
        self.tokens: list[int] = []
        self.next_after: dict[tuple[int, ...], int] = {}
        for token in tokens:
            self.append(token)

    def append(self, token: int) -> None:
        seq = self.tokens
        end = len(seq)
        for n in range(NGRAM_MIN, NGRAM_MAX + 1):
            if end >= n:  # the n tokens before this one are followed by it: latest wins
                self.next_after[tuple(seq[end - n : end])] = end
        seq.append(token)

    def draft(self, limit: int) -> list[int]:
        seq = self.tokens
        for n in range(NGRAM_MAX, NGRAM_MIN - 1, -1):
            start = self.next_after.get(tuple(seq[-n:])) if len(seq) >= n else None
            if start is not None:
                return seq[start : start + limit]
        return []


class VocabMismatch(ValueError):
    pass


def check_compatible(target: Any, draft: Any) -> None:
    """The draft must tokenize exactly as the target does (llama.cpp's
    ``common_speculative_are_compatible``): same vocabulary type, same special tokens, and the
    same text for every token id, allowing a few extra padding entries at the end."""
    tv, dv = target.vocab, draft.vocab
    if llama_cpp.llama_vocab_type(tv) != llama_cpp.llama_vocab_type(dv):
        raise VocabMismatch("their tokenizers are of different types")
    for name in ("bos", "eos", "eot"):
        get = getattr(llama_cpp, f"llama_vocab_{name}")
        if get(tv) != get(dv):
            raise VocabMismatch(f"their {name.upper()} tokens differ ({get(tv)} and {get(dv)})")
    for name in ("bos", "eos"):
        add = getattr(llama_cpp, f"llama_vocab_get_add_{name}")
        if bool(add(tv)) != bool(add(dv)):
            raise VocabMismatch(f"one adds a {name.upper()} token to prompts and the other does not")
    nt, nd = llama_cpp.llama_vocab_n_tokens(tv), llama_cpp.llama_vocab_n_tokens(dv)
    if abs(nt - nd) > 128:
        raise VocabMismatch(f"their vocabularies have {nt} and {nd} tokens")
    for token in range(min(nt, nd)):
        if llama_cpp.llama_vocab_get_text(tv, token) != llama_cpp.llama_vocab_get_text(dv, token):
            raise VocabMismatch(f"token {token} is different in each")


@dataclass
class DraftJob:
    """One slot's request for drafts: its whole context (ending with the token to continue
    from) and how many tokens it can use."""

    seq_id: int
    context: list[int]
    limit: int
    min_probability: float  # stop drafting at a token the draft is less sure of than this
    drafted: list[int] = field(default_factory=list)
    unsure: int = 0  # drafted, but below the confidence threshold: not worth verifying


class DraftModel:
    """A second, smaller model in the worker, drafting greedily for every slot at once."""

    def __init__(self, model: Any, ctx: Any, *, parallel: int, n_batch: int) -> None:
        self.model = model
        self.ctx = ctx
        self.n_batch = n_batch
        self.n_ctx = llama_cpp.llama_n_ctx(ctx)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(model.vocab)
        self.memory = llama_cpp.llama_get_memory(ctx)
        self.kv: list[list[int]] = [[] for _ in range(parallel)]  # what each sequence holds
        self.batch = llama_cpp.llama_batch_init(n_batch, 0, 1)

    def draft(self, jobs: list[DraftJob]) -> None:
        """Fill each job's ``drafted``: catch the draft's cache up with the context (what it
        drafted last time and the target rejected goes), then step all jobs together until
        each has its limit or the draft is not sure enough of its next token."""
        feeds: list[tuple[DraftJob, list[int]]] = []
        drafting = {job.seq_id for job in jobs}
        needed = sum(len(job.context) + job.limit for job in jobs)
        if needed + sum(len(kv) for seq, kv in enumerate(self.kv) if seq not in drafting) > self.n_ctx:
            for seq, kv in enumerate(self.kv):  # the cells are shared: make room for these jobs
                if seq not in drafting and kv:
                    llama_cpp.llama_memory_seq_rm(self.memory, seq, -1, -1)
                    kv.clear()
        for job in jobs:
            kv = self.kv[job.seq_id]
            common = min(common_prefix(kv, job.context), len(job.context) - 1)
            llama_cpp.llama_memory_seq_rm(self.memory, job.seq_id, common, -1)
            del kv[common:]
            job.limit = min(job.limit, self.n_ctx - len(job.context))
            if job.limit > 0:
                feeds.append((job, job.context[common:]))
        while feeds:
            ready, feeds = self._decode(feeds)
            for job, index in ready:
                token, probability = self._pick(index)
                if probability < job.min_probability:
                    job.unsure += 1
                    continue
                job.drafted.append(token)
                if len(job.drafted) < job.limit:
                    feeds.append((job, [token]))

    def reset(self) -> None:
        llama_cpp.llama_memory_clear(self.memory, True)
        for kv in self.kv:
            kv.clear()

    def _decode(
        self, feeds: list[tuple[DraftJob, list[int]]]
    ) -> tuple[list[tuple[DraftJob, int]], list[tuple[DraftJob, list[int]]]]:
        """One ``llama_decode`` of as much of the feeds as fits: the jobs whose feed went in
        whole, with the batch index of their logits, and what is left of the others."""
        entries: list[Entry] = []
        ready: list[DraftJob] = []
        rest: list[tuple[DraftJob, list[int]]] = []
        room = self.n_batch
        for job, tokens in feeds:
            take = tokens[:room]
            if not take:
                rest.append((job, tokens))
                continue
            room -= len(take)
            kv = self.kv[job.seq_id]
            whole = len(take) == len(tokens)
            entries.append(Entry(job.seq_id, len(kv), take, 1 if whole else 0))
            kv += take
            if whole:
                ready.append(job)
            else:
                rest.append((job, tokens[len(take) :]))
        starts = fill(self.batch, entries)
        if llama_cpp.llama_decode(self.ctx, self.batch) != 0:
            raise RuntimeError("the draft model's context is full")
        last = {e.seq_id: start + len(e.tokens) - 1 for e, start in zip(entries, starts, strict=True)}
        return [(job, last[job.seq_id]) for job in ready], rest

    def _pick(self, index: int) -> tuple[int, float]:
        """The draft's greedy token and its probability."""
        pointer = llama_cpp.llama_get_logits_ith(self.ctx, index)
        logits = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), (self.n_vocab,))
        token = int(logits.argmax())
        probability = 1.0 / float(np.exp(logits - logits[token]).sum())
        return token, probability


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
