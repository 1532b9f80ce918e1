"""Token log-probabilities as OpenAI reports them: from the model's own distribution.

A logprob is the log-softmax of the raw logits at that position, before anything the
request's sampler does to them (logit bias, repetition penalties, grammar, temperature,
top-k/top-p/min-p): it says what the model thinks, whatever was then sampled. OpenAI documents
the same (its logprobs do not change with temperature). The alternatives are the ``top`` most
likely tokens of that distribution, most likely first (ties: lower token id first); with
``constrained_logprobs`` only tokens the request's grammar allows there are listed (their
logprobs are still the raw distribution's), which is how ``llm.classify`` scores its labels.
"""

from __future__ import annotations

import ctypes
from typing import Any

import llama_cpp
import numpy as np

from .grammar_mask import GrammarState, allowed_ids

# JSON has no -inf; OpenAI reports vanishing probabilities as -9999.0.
FLOOR = -9999.0


def log_softmax_at(
    logits: np.ndarray, tokens: list[int], top: int, allowed: np.ndarray | None = None
) -> tuple[list[float], list[tuple[int, float]]]:
    """The logprobs of ``tokens`` and the ``top`` most likely (token, logprob) pairs, among
    the ``allowed`` token ids if given."""
    peak = float(logits.max())
    # exp in float32 (the vocabulary can be 262k wide), summed in float64.
    total = float(np.exp(logits - peak, dtype=np.float32).sum(dtype=np.float64))
    norm = peak + float(np.log(total))
    chosen = [_floor(float(logits[token]) - norm) for token in tokens]
    if top <= 0:
        return chosen, []
    ranked = _likeliest(logits if allowed is None else logits[allowed], top, allowed)
    return chosen, [(token, _floor(float(logits[token]) - norm)) for token in ranked]


def _likeliest(values: np.ndarray, top: int, ids: np.ndarray | None) -> list[int]:
    """The ``top`` ids (positions if ``ids`` is None) of the largest ``values``, largest
    first, the lower id first in a tie (also a tie at the cut, which is why every value equal
    to the cut's is ranked, not an arbitrary few of them)."""
    if top < len(values):
        cut = np.partition(values, len(values) - top)[len(values) - top]
        positions = np.flatnonzero(values >= cut)
    else:
        positions = np.arange(len(values))
    chosen = positions if ids is None else ids[positions]
    return chosen[np.lexsort((chosen, -values[positions]))][:top].tolist()


def _floor(value: float) -> float:
    return max(value, FLOOR)


def entry(piece: bytes, logprob: float | None, top: list[tuple[bytes, float]]) -> dict[str, Any]:
    """One token in OpenAI's chat shape (``choices[].logprobs.content[]``); the worker sends
    this and the legacy completions shape is derived from it (``api/logprobs.py``)."""
    return {
        "token": piece.decode("utf-8", errors="replace"),
        "logprob": logprob,
        "bytes": list(piece),
        "top_logprobs": [
            {"token": alt.decode("utf-8", errors="replace"), "logprob": value, "bytes": list(alt)}
            for alt, value in top
        ],
    }


def token_piece(vocab: Any, token: int, *, special: bool = False) -> bytes:
    """A token's bytes; ``special`` renders control tokens (``<|im_end|>``) as their text."""
    buffer = ctypes.create_string_buffer(64)
    size = llama_cpp.llama_token_to_piece(vocab, token, buffer, 64, 0, special)
    if size < 0:  # longer than the buffer: llama.cpp says how long
        buffer = ctypes.create_string_buffer(-size)
        size = llama_cpp.llama_token_to_piece(vocab, token, buffer, -size, 0, special)
    return buffer.raw[:size]


class TokenScorer:
    """Token pieces and logprob entries from one context's logits (the scheduler's thread)."""

    def __init__(self, ctx: Any, vocab: Any) -> None:
        self.ctx = ctx
        self.vocab = vocab
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        self._pieces: dict[tuple[int, bool], bytes] = {}

    def piece(self, token: int, special: bool = False) -> bytes:
        """A token's bytes (cached: the same few thousand tokens come back all the time);
        ``special``: control tokens as their text rather than nothing."""
        piece = self._pieces.get((token, special))
        if piece is None:
            piece = self._pieces[(token, special)] = token_piece(self.vocab, token, special=special)
        return piece

    def prompt_scores(
        self, start: int, first: int, taken: int, tokens: list[int], top: int
    ) -> list[dict[str, Any]]:
        """Echo: each prompt position's logits score the prompt token after it. The batch holds
        ``taken`` tokens of the prompt from position ``first`` on, at index ``start``."""
        return [
            self.scored(start + offset, tokens[first + offset + 1], top, prompt=True)
            for offset in range(taken)
            if first + offset + 1 < len(tokens)
        ]

    def scored(
        self, index: int, token: int, top: int, prompt: bool = False, mask: GrammarState | None = None
    ) -> dict[str, Any]:
        """``token``'s entry from the raw logits at batch ``index``; a prompt token is shown
        with its special text (``<start_of_turn>``), as it was written. With a ``mask`` (a
        grammar's state), alternatives are only tokens it allows now (asked about the likeliest
        tokens first, ``grammar_mask``)."""
        pointer = llama_cpp.llama_get_logits_ith(self.ctx, index)
        logits = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))
        allowed = allowed_ids(mask, logits, top) if mask is not None and top > 0 else None
        (logprob,), alternatives = log_softmax_at(logits, [token], top, allowed)
        pieces = [(self.piece(alt), value) for alt, value in alternatives]
        return entry(self.piece(token, special=prompt), logprob, pieces)
