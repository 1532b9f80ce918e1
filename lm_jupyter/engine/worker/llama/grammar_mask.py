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
from collections.abc import Iterator
from typing import Any

import llama_cpp
import numpy as np

LIKELIEST = 4096
KEYED_TOKENS = 64  # states further into an answer are not kept: long answers rarely repeat them
MASKS = 32  # whole-vocabulary answers kept (allowed ids), least recently used dropped
MET = 1024  # states remembered as met before

_TOKEN_DATA = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)


class GrammarState:
    """A request's grammar sampler and what it has accepted, which is its state: ``key``
    names it (None past ``KEYED_TOKENS`` tokens) for the whole-vocabulary answers kept."""

    _kept: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()  # one worker, one model
    _met: OrderedDict[tuple[Any, ...], None] = OrderedDict()  # states asked about before

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
        """The ids the grammar allows in this state (ascending), if its answer was kept."""
        kept = self._kept.get(self.key) if self.key is not None else None
        if kept is not None:
            self._kept.move_to_end(self.key)  # type: ignore[arg-type]
        return kept

    def met_before(self) -> bool:
        """Whether a request was in this state before (noting that one is now): a state met
        twice is met again (a table's rows), so its whole answer is worth asking for once."""
        if self.key is None:
            return False
        met = self.key in self._met
        self._met[self.key] = None
        self._met.move_to_end(self.key)
        if len(self._met) > MET:
            self._met.popitem(last=False)
        return met

    def whole(self, n_vocab: int) -> np.ndarray:
        """Ask which ids of the whole vocabulary the grammar allows now, and keep the answer
        (asked with equal logits, so it is the grammar's alone); callers ask ``known`` first."""
        zeros = np.zeros(n_vocab, np.single)
        allowed = np.flatnonzero(np.isfinite(_masked(self.sampler, zeros, np.arange(n_vocab))))
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


def allowed_ids(state: GrammarState, logits: np.ndarray, need: int) -> np.ndarray:
    """Ids the grammar allows (ascending) whose logits are not -inf: all of them within the
    first set of likeliest tokens that holds ``need`` such tokens, else within the whole
    vocabulary (kept), which is enough to rank the ``need`` likeliest allowed tokens exactly.
    A state met before goes to the whole vocabulary as soon as the argmax alone is not enough:
    asked once, its answer serves every later visit."""
    allowed = state.known()
    if allowed is None:
        again = state.met_before()
        for ids in _subsets(logits, need):
            found = ids[np.isfinite(_masked(state.sampler, logits, ids))]
            if len(found) >= need:
                return found
            if again:
                break
        allowed = state.whole(len(logits))
    return allowed[np.isfinite(logits[allowed])]


def first_allowed(state: GrammarState, logits: np.ndarray) -> int:
    """The greedy token under ``grammar``: the likeliest allowed token, the lowest id of a tie,
    as llama.cpp's greedy sampler after its grammar sampler picks it (even when the whole
    vocabulary is refused or -inf: then the first of the maxima, token 0)."""
    allowed = allowed_ids(state, logits, 1)
    return int(allowed[np.argmax(logits[allowed])]) if len(allowed) else 0
