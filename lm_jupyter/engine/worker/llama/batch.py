"""Filling a ``llama_batch`` with several sequences' tokens at once (target and draft models)."""

from __future__ import annotations

from typing import Any, NamedTuple


class Entry(NamedTuple):
    seq_id: int
    pos: int  # position of the first token
    tokens: list[int]
    logits: int  # the last this many tokens get logits


def fill(batch: Any, entries: list[Entry]) -> list[int]:
    """Lay the entries out one after another; returns each entry's first index in the batch."""
    n = 0
    starts = []
    for entry in entries:
        starts.append(n)
        first_logit = len(entry.tokens) - entry.logits
        for offset, token in enumerate(entry.tokens):
            batch.token[n] = token
            batch.pos[n] = entry.pos + offset
            batch.n_seq_id[n] = 1
            batch.seq_id[n][0] = entry.seq_id
            batch.logits[n] = offset >= first_logit
            n += 1
    batch.n_tokens = n
    return starts
