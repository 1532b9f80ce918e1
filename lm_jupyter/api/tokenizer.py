"""llama-server's ``/tokenize`` and ``/detokenize``: requests and response bodies (pure).

lm_jupyter serves several models, so both take a ``model`` (llama-server has one model and no
such field; without it the only loaded model is used).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from .requests import _Request


class TokenizeRequest(_Request):
    model: str | None = Field(default=None, min_length=1)
    content: str
    add_special: bool = False  # BOS (and EOS where the vocabulary adds it), as llama-server
    parse_special: bool = True  # "<|im_end|>" in the text is one control token
    with_pieces: bool = False


class DetokenizeRequest(_Request):
    model: str | None = Field(default=None, min_length=1)
    tokens: list[int]


def tokenize_body(tokens: list[int], pieces: list[str | list[int]] | None) -> dict[str, Any]:
    """``{"tokens": [ids]}``, or with pieces ``{"tokens": [{"id": ..., "piece": ...}]}``, where a
    piece that is not valid UTF-8 on its own is a list of its byte values."""
    if pieces is None:
        return {"tokens": tokens}
    return {"tokens": [{"id": token, "piece": piece} for token, piece in zip(tokens, pieces, strict=True)]}
