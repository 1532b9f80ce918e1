"""The llama.cpp objects a request and an instance get: a sampler with the request's own
settings (LM Studio's defaults where it sets none), and the context its sequences share."""

from __future__ import annotations

import random
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import _internals

from ...protocol import GenerateParams
from ..defaults import PENALTY_LAST_N, pick
from .adjust import SparseAdjust
from .grammar_mask import GrammarState, first_allowed


class Sampler:
    """Picks a request's tokens from the context's logits.

    Logit bias and repetition penalties are a ``SparseAdjust`` on the logits the chain then
    reads (not llama.cpp's samplers, which walk the whole vocabulary every token). Greedy
    (temperature 0) is an argmax over the adjusted logits, under the grammar if the request has
    one (asked about the likeliest tokens first, ``grammar_mask``): it needs no llama.cpp chain.
    Any other temperature runs llama.cpp's chain (grammar, top-k, top-p, min-p, temperature,
    seeded draw)."""

    def __init__(self, n_vocab: int, adjust: SparseAdjust, grammar: GrammarState | None, chain: Any) -> None:
        self.n_vocab = n_vocab
        self.adjust = adjust if adjust.active else None
        self.grammar = grammar  # greedy only: the chain holds its own
        self.chain = chain  # None: greedy

    def sample(self, ctx: Any, index: int) -> int:
        """The token after batch position ``index``; the context's logits are left raw."""
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, index), shape=(self.n_vocab,))
        if self.adjust is not None:
            self.adjust.apply(logits)
        try:
            if self.chain is not None:
                token = int(llama_cpp.llama_sampler_sample(self.chain, ctx, index))
            elif self.grammar is not None:
                token = first_allowed(self.grammar, logits)
            else:
                token = int(np.argmax(logits))
        finally:
            if self.adjust is not None:
                self.adjust.restore(logits)
        if self.adjust is not None:
            self.adjust.accept(token)
        if self.chain is None and self.grammar is not None:
            self.grammar.accept(token)
        return token

    def free(self) -> None:
        if self.chain is not None:
            llama_cpp.llama_sampler_free(self.chain)
        if self.grammar is not None:
            self.grammar.free()


def make_sampler(model: Any, params: GenerateParams, grammar: str | None) -> Sampler:
    """A sampler with the request's own settings; the caller has validated the grammar."""
    vocab = model.vocab
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    adjust = SparseAdjust(
        [(int(token), float(value)) for token, value in (params.get("logit_bias") or {}).items()],
        n_vocab,
        last_n=PENALTY_LAST_N,
        repeat=pick(params, "repeat_penalty"),
        frequency=params.get("frequency_penalty") or 0.0,
        presence=params.get("presence_penalty") or 0.0,
    )
    temperature = pick(params, "temperature")
    if temperature <= 0:
        return Sampler(n_vocab, adjust, GrammarState(vocab, grammar) if grammar else None, None)
    compiled = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root") if grammar else None
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    seed = params.get("seed")
    samplers = [compiled] if compiled else []
    samplers += [
        llama_cpp.llama_sampler_init_top_k(pick(params, "top_k")),
        llama_cpp.llama_sampler_init_top_p(pick(params, "top_p"), 1),
        llama_cpp.llama_sampler_init_min_p(pick(params, "min_p"), 1),
        llama_cpp.llama_sampler_init_temp(temperature),
        llama_cpp.llama_sampler_init_dist(seed if seed is not None else random.getrandbits(31)),
    ]
    for sampler in samplers:
        llama_cpp.llama_sampler_chain_add(chain, sampler)
    return Sampler(n_vocab, adjust, None, chain)


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
