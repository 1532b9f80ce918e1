"""The llama.cpp objects a request and an instance get: a sampler chain with the request's own
settings (LM Studio's defaults where it sets none), and the context its sequences share."""

from __future__ import annotations

import random
from typing import Any

import llama_cpp
from llama_cpp import _internals

from ...protocol import GenerateParams
from ..defaults import PENALTY_LAST_N, pick


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
    repeat = pick(params, "repeat_penalty")
    frequency = params.get("frequency_penalty") or 0.0
    presence = params.get("presence_penalty") or 0.0
    if repeat != 1.0 or frequency or presence:
        add(llama_cpp.llama_sampler_init_penalties(
            llama_cpp.llama_vocab_n_tokens(vocab), PENALTY_LAST_N, repeat, frequency, presence
        ))  # fmt: skip
    if grammar:
        add(llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root"))
    temperature = pick(params, "temperature")
    if temperature <= 0:
        add(llama_cpp.llama_sampler_init_greedy())
        return chain
    seed = params.get("seed")
    add(llama_cpp.llama_sampler_init_top_k(pick(params, "top_k")))
    add(llama_cpp.llama_sampler_init_top_p(pick(params, "top_p"), 1))
    add(llama_cpp.llama_sampler_init_min_p(pick(params, "min_p"), 1))
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
