"""Tokenizing for the MLX backend with the model's own Hugging Face tokenizer.

A chat prompt arrives as (text, special?) parts (chat/segments.py): only the template's markup
may become control tokens, so ``<|im_end|>`` typed by a user stays text. The ``tokenizers``
library matches added tokens anywhere unless ``encode_special_tokens`` is set, so it is set
for the content parts. Only the worker's preparation thread encodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..backend import Cancelled


class MlxTokens:
    def __init__(self, wrapper: Any) -> None:
        self.wrapper = wrapper  # mlx-lm's TokenizerWrapper (streaming detokenizers, EOS ids)
        self.hf = wrapper._tokenizer  # transformers' tokenizer
        self.raw = self.hf.backend_tokenizer  # the tokenizers library's: encode_special_tokens
        bos = self.hf.bos_token_id
        # BOS goes first only when the tokenizer itself adds it to a text (as llama.cpp's add_bos).
        self.bos: int | None = bos if bos is not None and self.hf.encode("a")[:1] == [bos] else None
        self.n_vocab = len(self.hf)

    def encode(self, text: str, *, special: bool, add_special: bool = False) -> list[int]:
        self.raw.encode_special_tokens = not special
        try:
            return list(self.raw.encode(text, add_special_tokens=add_special).ids)
        finally:
            self.raw.encode_special_tokens = False

    def prompt(self, parts: list[tuple[str, bool]], cancelled: Callable[[], bool]) -> list[int]:
        """A prompt's tokens, BOS first if the tokenizer adds one and the text lacks it."""
        tokens: list[int] = []
        for text, special in parts:
            if cancelled():
                raise Cancelled
            tokens += self.encode(text, special=bool(special))
        if self.bos is not None and tokens[:1] != [self.bos]:
            tokens.insert(0, self.bos)
        return tokens

    def tokens(
        self,
        text: str,
        *,
        parts: list[tuple[str, bool]] | None,
        add_special: bool,
        parse_special: bool,
        with_pieces: bool,
    ) -> dict[str, Any]:
        """``/tokenize``, or a chat prompt's count exactly as ``generate`` tokenizes it."""
        if parts is not None:
            tokens = self.prompt([(piece, bool(special)) for piece, special in parts], lambda: False)
        else:
            tokens = self.encode(text, special=parse_special, add_special=add_special)
        result: dict[str, Any] = {"tokens": tokens}
        if with_pieces:
            result["pieces"] = [self.detokenize([token]) for token in tokens]
        return result

    def detokenize(self, tokens: list[int]) -> str:
        return str(self.hf.decode(tokens, skip_special_tokens=False))

    def max_token_bytes(self) -> int:
        """The longest token's vocabulary entry in bytes: never shorter than its text (byte-level
        and SentencePiece spellings only lengthen it), so the server's bound stays safe."""
        return max(len(piece.encode()) for piece in self.hf.get_vocab())
