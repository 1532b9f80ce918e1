"""A request's sampler and logits processors in mlx-lm's terms, with LM Studio's defaults.

The filters run in llama.cpp's order (top-k, top-p, min-p, then temperature) so a request
means the same on both backends. Each sampler draws from a PRNG key of its own: requests
batched together never share random state, and a ``seed`` replays its answer whatever else
runs beside it (mlx-lm's own sampler draws from MLX's global state).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import mlx.core as mx
from mlx_lm.sample_utils import apply_min_p, apply_top_k, apply_top_p, make_logits_processors

from ...protocol import GenerateParams
from ..defaults import PENALTY_LAST_N, pick

Sampler = Callable[[mx.array], mx.array]


def make_sampler(params: GenerateParams) -> Sampler:
    temperature = float(pick(params, "temperature"))
    if temperature <= 0:
        return lambda logprobs: mx.argmax(logprobs, axis=-1)
    top_k, top_p, min_p = (
        int(pick(params, "top_k")),
        float(pick(params, "top_p")),
        float(pick(params, "min_p")),
    )
    seed = params.get("seed")
    key = [mx.random.key(seed if seed is not None else random.getrandbits(31))]

    def sample(logprobs: mx.array) -> mx.array:
        if 0 < top_k < logprobs.shape[-1]:
            logprobs = apply_top_k(logprobs, top_k)
        if 0 < top_p < 1:
            logprobs = apply_top_p(logprobs, top_p)
        if min_p > 0:
            logprobs = apply_min_p(logprobs, min_p)
        key[0], draw = mx.random.split(key[0])
        return mx.random.categorical(logprobs * (1 / temperature), key=draw)

    return sample


def make_processors(params: GenerateParams) -> list[Callable[[mx.array, mx.array], mx.array]]:
    """Logit bias and the three penalties over the last ``PENALTY_LAST_N`` tokens."""
    repeat = float(pick(params, "repeat_penalty"))
    bias: dict[str, float] = params.get("logit_bias") or {}
    processors: list[Any] = make_logits_processors(
        logit_bias={int(token): float(value) for token, value in bias.items()} or None,
        repetition_penalty=repeat if repeat != 1.0 else None,
        repetition_context_size=PENALTY_LAST_N,
        presence_penalty=params.get("presence_penalty") or None,
        presence_context_size=PENALTY_LAST_N,
        frequency_penalty=params.get("frequency_penalty") or None,
        frequency_context_size=PENALTY_LAST_N,
    )
    return processors
