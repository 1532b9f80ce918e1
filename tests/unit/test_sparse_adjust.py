"""``SparseAdjust`` against llama.cpp's own ``logit_bias`` + ``penalties`` samplers, bit for bit.

Both see the same random float32 logits every step (exact zeros and negatives included, for
the penalty's two branches) and accept the same tokens, drawn from a small pool so tokens
repeat and the 64-token window wraps and forgets; 192 steps in each setting.
"""

from __future__ import annotations

import ctypes

import llama_cpp
import numpy as np
import pytest
from llama_cpp import _internals

from lm_jupyter.engine.worker.defaults import PENALTY_LAST_N
from lm_jupyter.engine.worker.llama.adjust import SparseAdjust

N_VOCAB = 1000
STEPS = 192

SETTINGS = {
    "lm-studio-default": ([], 1.1, 0.0, 0.0),
    "all-of-them": ([(7, 2.5), (7, -1.25), (N_VOCAB + 5, 9.0), (-3, 1.0), (40, -100.0)], 1.3, 0.4, 0.6),
    "below-one-and-negative": ([(3, 0.1)], 0.9, -0.2, 0.0),
    "bias-and-presence-only": ([(11, float("-inf")), (12, 3.0)], 1.0, 0.0, 1.5),
}


def _llama_chain(bias: list[tuple[int, float]], repeat: float, frequency: float, presence: float):
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    entries = (llama_cpp.llama_logit_bias * max(len(bias), 1))(
        *(llama_cpp.llama_logit_bias(token, value) for token, value in bias)
    )
    for sampler in (
        llama_cpp.llama_sampler_init_logit_bias(N_VOCAB, len(bias), entries),
        llama_cpp.llama_sampler_init_penalties(N_VOCAB, PENALTY_LAST_N, repeat, frequency, presence),
    ):
        llama_cpp.llama_sampler_chain_add(chain, sampler)
    return chain


def _adjust(bias: list[tuple[int, float]], repeat: float, frequency: float, presence: float) -> SparseAdjust:
    return SparseAdjust(
        bias, N_VOCAB, last_n=PENALTY_LAST_N, repeat=repeat, frequency=frequency, presence=presence
    )


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_same_bits_as_llama_cpp(setting: str) -> None:
    bias, repeat, frequency, presence = SETTINGS[setting]
    chain = _llama_chain(bias, repeat, frequency, presence)
    adjust = _adjust(bias, repeat, frequency, presence)
    candidates = _internals.LlamaTokenDataArray(n_vocab=N_VOCAB)
    rng = np.random.default_rng(len(setting))
    try:
        for _ in range(STEPS):
            raw = (rng.standard_normal(N_VOCAB) * 4).astype(np.float32)
            raw[rng.integers(0, N_VOCAB, 50)] = 0.0
            candidates.copy_logits(raw)
            llama_cpp.llama_sampler_apply(chain, ctypes.byref(candidates.candidates))
            expected = candidates.candidates_data.logit.copy()

            logits = raw.copy()
            adjust.apply(logits)
            np.testing.assert_array_equal(logits.view(np.uint32), expected.view(np.uint32))
            adjust.restore(logits)
            np.testing.assert_array_equal(logits.view(np.uint32), raw.view(np.uint32))

            token = int(rng.integers(0, 80))  # a small pool: repeats, and the window forgets
            llama_cpp.llama_sampler_accept(chain, token)
            adjust.accept(token)
        assert len(adjust.window) == PENALTY_LAST_N
    finally:
        llama_cpp.llama_sampler_free(chain)


def test_nothing_to_adjust_is_inactive() -> None:
    assert not _adjust([], 1.0, 0.0, 0.0).active
    # An id outside the vocabulary changes nothing, in llama.cpp as here.
    assert not _adjust([(N_VOCAB, 1.0), (-1, 2.0)], 1.0, 0.0, 0.0).active
    assert _adjust([], 1.0, 0.0, 0.5).active
