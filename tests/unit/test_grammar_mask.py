"""Asking a grammar about the likeliest tokens first gives what masking every token gives.

On the tiny model's real vocabulary (control, byte and word tokens), with the likeliest set cut
to 16 tokens so every stage is reached: the argmax allowed, refused with an allowed token among
the 16 likeliest, refused everywhere but far down, ties at the cut and at the top, and
everything refused or -inf (llama.cpp's greedy then takes token 0).
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
import pytest
from llama_cpp import _internals

from lm_jupyter.engine.worker.llama import grammar_mask
from lm_jupyter.engine.worker.llama.grammar_mask import GrammarState, allowed_ids, first_allowed
from tests.tiny_gguf import write_tiny_model

# Byte tokens spelling "x" are allowed, and the words "▁yes" / "▁no".
GRAMMAR = 'root ::= " yes" | " no" | "x" [a-z]*'


@pytest.fixture(scope="module")
def vocab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    path = write_tiny_model(Path(tmp_path_factory.mktemp("grammar")) / "tiny-F32.gguf")
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = _internals.LlamaModel(path_model=str(path), params=params, verbose=False)
    yield model.vocab
    model.close()


@pytest.fixture
def grammar(vocab: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[GrammarState]:
    monkeypatch.setattr(grammar_mask, "LIKELIEST", 16)
    monkeypatch.setattr(GrammarState, "_kept", type(GrammarState._kept)())
    monkeypatch.setattr(GrammarState, "_met", type(GrammarState._met)())
    state = GrammarState(vocab, GRAMMAR)
    yield state
    state.free()


def _full(grammar: GrammarState | Any, logits: np.ndarray) -> np.ndarray:
    """llama.cpp's way: the grammar over every token."""
    sampler = grammar.sampler if isinstance(grammar, GrammarState) else grammar
    candidates = _internals.LlamaTokenDataArray(n_vocab=len(logits))
    candidates.copy_logits(logits)
    llama_cpp.llama_sampler_apply(sampler, ctypes.byref(candidates.candidates))
    return candidates.candidates_data.logit.copy()


def _cases(n_vocab: int, allowed: np.ndarray) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(5)
    for _ in range(40):
        yield (rng.standard_normal(n_vocab) * 3).astype(np.float32)
    first = int(np.flatnonzero(allowed)[0])
    far = np.full(n_vocab, 5.0, dtype=np.float32)  # every refused token above every allowed one
    far[allowed] = -5.0
    yield far
    tied = np.zeros(n_vocab, dtype=np.float32)  # one big tie: the lowest allowed id wins
    yield tied
    cut = np.zeros(n_vocab, dtype=np.float32)
    cut[:30] = 1.0  # 30 tokens tied at the top, more than the 16 asked about first
    cut[first] = 1.0
    yield cut
    yield np.full(n_vocab, -np.inf, dtype=np.float32)


def test_same_as_masking_every_token(vocab: Any, grammar: Any) -> None:
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    allowed = np.isfinite(_full(grammar, np.zeros(n_vocab, dtype=np.float32)))
    assert 0 < allowed.sum() < n_vocab
    for logits in _cases(n_vocab, allowed):
        masked = _full(grammar, logits)
        assert first_allowed(grammar, logits) == int(np.argmax(masked))
        for need in (1, 3, 20):
            ids = allowed_ids(grammar, logits, need)
            expected = np.isfinite(masked)
            assert expected[ids].all()  # never a refused token
            top = min(need, int(expected.sum()))
            ranked = sorted(np.flatnonzero(expected), key=lambda t: (-logits[t], t))[:top]
            assert sorted(ids.tolist(), key=lambda t: (-logits[t], t))[:top] == ranked


def test_kept_whole_vocabulary_answers_follow_the_state(vocab: Any, grammar: GrammarState) -> None:
    """A whole-vocabulary answer is kept per grammar and accepted tokens: a second request in
    the same state reuses it, and after other tokens it is asked anew. Either way each answer
    is what llama.cpp's own grammar sampler in that state gives."""
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    zeros = np.zeros(n_vocab, dtype=np.float32)
    assert grammar.known() is None
    first = grammar.whole(n_vocab)
    assert np.array_equal(first, np.flatnonzero(np.isfinite(_full(grammar, zeros))))
    twin = GrammarState(vocab, GRAMMAR)
    raw = llama_cpp.llama_sampler_init_grammar(vocab, GRAMMAR.encode(), b"root")
    try:
        assert twin.known() is first  # the same state: no second walk over the vocabulary
        token = int(first[0])  # a start the grammar allows
        for state in (grammar, twin):
            state.accept(token)
        llama_cpp.llama_sampler_accept(raw, token)
        assert twin.known() is None  # a new state
        after = twin.whole(n_vocab)
        assert np.array_equal(after, np.flatnonzero(np.isfinite(_full(raw, zeros))))
        assert not np.array_equal(after, first)
        assert grammar.known() is after
        far = np.full(n_vocab, 5.0, dtype=np.float32)  # every refused token above every allowed one
        far[after] = -5.0
        assert first_allowed(grammar, far) == int(np.argmax(_full(raw, far)))
    finally:
        twin.free()
        llama_cpp.llama_sampler_free(raw)


def test_a_state_met_again_is_asked_about_every_token_once(vocab: Any, grammar: GrammarState) -> None:
    """The first request in a state whose argmax the grammar refuses searches the likeliest
    tokens and keeps nothing (a state met once may never come back); the next request in that
    state asks the whole vocabulary and keeps the answer. The token is llama.cpp's either way."""
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    allowed = np.isfinite(_full(grammar, np.zeros(n_vocab, dtype=np.float32)))
    logits = np.zeros(n_vocab, dtype=np.float32)
    refused = int(np.flatnonzero(~allowed)[0])
    logits[refused] = 9.0  # the argmax is refused
    expected = int(np.argmax(_full(grammar, logits)))
    assert first_allowed(grammar, logits) == expected
    assert grammar.known() is None
    twin = GrammarState(vocab, GRAMMAR)
    try:
        assert first_allowed(twin, logits) == expected
        assert twin.known() is not None and grammar.known() is twin.known()
        assert first_allowed(grammar, logits) == expected
    finally:
        twin.free()
