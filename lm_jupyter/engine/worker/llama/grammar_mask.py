"""Ask a grammar about the likeliest tokens first.

A grammar sampler decides token by token, decoding each candidate's text against its parse
stacks: over Gemma 3's 262,144 tokens that is most of a step's time. What a greedy step and a
logprobs mask need is only the likeliest tokens the grammar allows, and those are nearly always
among the likeliest tokens overall. So the grammar is asked about the argmax alone, then about
the ``LIKELIEST`` likeliest tokens (with every token tied with the last of them), and about the
whole vocabulary only if those do not give the answer. Every token left out of a smaller set
is strictly less likely than every token in it, so the answer is exactly what masking the
whole vocabulary gives: the first (lowest id) of the likeliest allowed tokens.

When the whole vocabulary must be asked (a label grammar allows a handful of tokens, fewer than
the ``top_logprobs`` a classification asks for), the answer is kept: the same grammar after the
same tokens allows the same tokens, and a classification over a table reaches the same few
states row after row (:class:`GrammarState`, ``MASKS``).
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import llama_cpp
import numpy as np

LIKELIEST = 4096
KEYED_TOKENS = 64  # states further into an answer are not kept: long answers rarely repeat them
MASKS = 32  # whole-vocabulary answers kept (262 KB each for Gemma 3), least recently used dropped

_TOKEN_DATA = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)


class GrammarState:
    """A request's grammar sampler and what it has accepted, which is its state: ``key``
    names it (None past ``KEYED_TOKENS`` tokens) for the whole-vocabulary answers kept."""

    _kept: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()  # one worker, one model

    def __init__(self, vocab: Any, gbnf: str) -> None:
        self.sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
        self.key: tuple[Any, ...] | None = (gbnf,)

    def accept(self, token: int) -> None:
        llama_cpp.llama_sampler_accept(self.sampler, token)
        if self.key is not None:
            self.key = (*self.key, token) if len(self.key) <= KEYED_TOKENS else None

    def free(self) -> None:
        llama_cpp.llama_sampler_free(self.sampler)

    def known(self) -> np.ndarray | None:
        """The whole vocabulary's answer for this state, if it was kept."""
        kept = self._kept.get(self.key) if self.key is not None else None
        if kept is not None:
            self._kept.move_to_end(self.key)  # type: ignore[arg-type]
        return kept

    def whole(self, n_vocab: int) -> np.ndarray:
        """Which tokens of the whole vocabulary the grammar allows now (asked with equal
        logits, so the answer is the grammar's alone and can be kept)."""
        allowed = self.known()
        if allowed is None:
            allowed = np.isfinite(_masked(self.sampler, np.zeros(n_vocab, np.single), np.arange(n_vocab)))
            if self.key is not None:
                self._kept[self.key] = allowed
                if len(self._kept) > MASKS:
                    self._kept.popitem(last=False)
        return allowed


def _masked(grammar: Any, logits: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The logits of ``ids`` after the grammar sets those it refuses to -inf."""
    data = np.zeros(len(ids), dtype=_TOKEN_DATA)
    data["id"] = ids
    data["logit"] = logits[ids]
    candidates = llama_cpp.llama_token_data_array(
        data=data.ctypes.data_as(llama_cpp.llama_token_data_p), size=len(ids), selected=-1, sorted=False
    )
    llama_cpp.llama_sampler_apply(grammar, ctypes.byref(candidates))
    return data["logit"]


def _subsets(logits: np.ndarray, need: int) -> Iterator[np.ndarray]:
    """Ever larger sets of the likeliest token ids, short of the whole vocabulary: the argmax
    alone (if one token is all that is needed), then the ``LIKELIEST`` likeliest and every
    token tied with the last of them. Ids ascending, so a tie's first is the lowest id."""
    if need <= 1:
        yield np.array([int(np.argmax(logits))])
    if len(logits) > LIKELIEST:
        threshold = np.partition(logits, len(logits) - LIKELIEST)[len(logits) - LIKELIEST]
        yield np.flatnonzero(logits >= threshold)


def _search(
    state: GrammarState, logits: np.ndarray, need: int, enough: Callable[[np.ndarray], bool]
) -> tuple[np.ndarray, np.ndarray]:
    """The ids of the first set of likeliest tokens whose masked logits are ``enough``, else
    of the whole vocabulary, with their masked logits."""
    if state.known() is None:
        for ids in _subsets(logits, need):
            masked = _masked(state.sampler, logits, ids)
            if enough(masked):
                return ids, masked
    return np.arange(len(logits)), np.where(state.whole(len(logits)), logits, -np.inf)


def first_allowed(state: GrammarState, logits: np.ndarray) -> int:
    """The greedy token under ``grammar``: the likeliest allowed token, the lowest id of a tie,
    as llama.cpp's greedy sampler after its grammar sampler picks it (even when the whole
    vocabulary is refused or -inf: then the first of the maxima, token 0)."""
    ids, masked = _search(state, logits, 1, lambda masked: bool(np.isfinite(masked.max())))
    return int(ids[np.argmax(masked)])


def allowed_mask(state: GrammarState, logits: np.ndarray, need: int) -> np.ndarray:
    """A boolean mask over the vocabulary, True for tokens ``grammar`` allows among a set of
    likeliest tokens holding at least ``need`` allowed ones (the whole vocabulary when it has
    fewer): enough to rank the ``need`` likeliest allowed tokens exactly."""
    ids, masked = _search(state, logits, need, lambda masked: int(np.isfinite(masked).sum()) >= need)
    mask = np.zeros(len(logits), dtype=bool)
    mask[ids[np.isfinite(masked)]] = True
    return mask
