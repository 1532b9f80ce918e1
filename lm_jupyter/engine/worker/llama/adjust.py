"""Logit bias and repetition penalties applied only where they change something.

llama.cpp's ``logit_bias`` and ``penalties`` samplers walk every candidate of the vocabulary on
every token: the penalties sampler looks each of Gemma 3's 262,144 tokens up in a hash map,
about 3.8 ms per token, and LM Studio's default repeat penalty (1.1) applies to every request
that sets none. Yet they change at most the biased tokens and the last 64 sampled ones.
``SparseAdjust`` changes just those, in the context's own logits, with llama.cpp's float32
arithmetic in llama.cpp's order (bias, then penalties), right before the sampler chain reads
them, and puts the raw values back afterwards, so logprobs still see the model's own
distribution (tests/unit/test_sparse_adjust.py compares it bit for bit with llama.cpp's).
"""

from __future__ import annotations

from collections import deque

import numpy as np


class SparseAdjust:
    """One request's logit bias and repetition/frequency/presence penalties over the last
    ``last_n`` accepted tokens (llama.cpp's ``penalties`` sampler's window)."""

    def __init__(
        self,
        bias: list[tuple[int, float]],
        n_vocab: int,
        *,
        last_n: int,
        repeat: float,
        frequency: float,
        presence: float,
    ) -> None:
        # llama.cpp skips ids outside the vocabulary and applies a repeated id once per entry.
        self.bias = [(token, np.float32(value)) for token, value in bias if 0 <= token < n_vocab]
        self.penalize = last_n != 0 and (repeat != 1.0 or frequency != 0.0 or presence != 0.0)
        self.last_n = last_n
        self.repeat = np.float32(repeat)
        self.frequency = np.float32(frequency)
        self.presence = np.float32(presence)
        self.window: deque[int] = deque()
        self.counts: dict[int, int] = {}
        self._saved: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def active(self) -> bool:
        """Anything to change at all (else the request needs no adjustment)."""
        return bool(self.bias) or self.penalize

    def apply(self, logits: np.ndarray) -> None:
        """Change ``logits`` (float32, the whole vocabulary) in place; ``restore`` undoes it."""
        penalized = list(self.counts) if self.penalize else []
        touched = np.array([token for token, _ in self.bias] + penalized, dtype=np.intp)
        self._saved = (touched, logits[touched].copy())
        for token, value in self.bias:
            logits[token] = logits[token] + value  # float32 + float32, as llama.cpp's +=
        if not penalized:
            return
        ids = np.array(penalized, dtype=np.intp)
        values = logits[ids]
        values = np.where(values <= 0, values * self.repeat, values / self.repeat)
        counts = np.array([self.counts[token] for token in penalized], dtype=np.float32)
        # float(count) * freq + float(count > 0) * present, every count here being > 0
        values = values - (counts * self.frequency + self.presence)
        logits[ids] = values

    def restore(self, logits: np.ndarray) -> None:
        """Put back the raw logits ``apply`` changed."""
        if self._saved is not None:
            touched, raw = self._saved
            logits[touched] = raw
            self._saved = None

    def accept(self, token: int) -> None:
        """A sampled token enters the penalty window (the oldest leaves a full one)."""
        if not self.penalize:
            return
        self.counts[token] = self.counts.get(token, 0) + 1
        if len(self.window) >= self.last_n:
            old = self.window.popleft()
            self.counts[old] -= 1
            if not self.counts[old]:
                del self.counts[old]
        self.window.append(token)
