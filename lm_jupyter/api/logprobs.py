"""Logprobs in OpenAI's two wire shapes, from the worker's per-token entries.

The worker sends chat's shape (``{"token", "logprob", "bytes", "top_logprobs": [...]}``, see
engine/logprobs.py). Chat completions wrap a list of them as ``{"content": [...]}``; legacy
completions turn them into parallel lists (``tokens``, ``token_logprobs``, ``top_logprobs`` as
``{token: logprob}`` maps, ``text_offset`` in characters from the start of the choice's text).
"""

from __future__ import annotations

from typing import Any


def chat_logprobs(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"content": entries, "refusal": None}


class LegacyLogprobs:
    """Legacy completions' logprobs; a stream calls ``block`` once per chunk, so offsets run on."""

    def __init__(self) -> None:
        self.offset = 0

    def block(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        tokens, offsets = [], []
        for item in entries:
            tokens.append(item["token"])
            offsets.append(self.offset)
            self.offset += len(item["token"])
        return {
            "tokens": tokens,
            "token_logprobs": [item["logprob"] for item in entries],
            # The first echoed token has no logprob, and so no alternatives: null, as OpenAI.
            "top_logprobs": [None if item["logprob"] is None else _top_map(item) for item in entries],
            "text_offset": offsets,
        }


def _top_map(item: dict[str, Any]) -> dict[str, float]:
    """Alternatives as a map; two tokens with the same text (byte pieces shown as U+FFFD)
    keep the likelier, which comes first."""
    top: dict[str, float] = {}
    for alt in item["top_logprobs"]:
        top.setdefault(alt["token"], alt["logprob"])
    return top


def upstream_entries(logprobs: Any, *, chat: bool) -> list[dict[str, Any]]:
    """An upstream chunk's ``choices[].logprobs`` as the worker's entries, so a remote model's
    logprobs reach the client in its route's shape like a local one's. Chat's shape is the
    entries already; legacy completions' parallel lists are read back into it (the bytes of a
    token given only as text are its UTF-8). Raises ValueError on anything else."""
    if logprobs is None:
        return []
    if not isinstance(logprobs, dict):
        raise ValueError("'logprobs' is not an object")
    if chat:
        content = logprobs.get("content") or []
        if not isinstance(content, list) or not all(_is_entry(item) for item in content):
            raise ValueError("'logprobs.content' is not a list of token entries")
        return content
    tokens, scores = logprobs.get("tokens") or [], logprobs.get("token_logprobs") or []
    tops = logprobs.get("top_logprobs") or [None] * len(tokens)
    if not (isinstance(tokens, list) and isinstance(scores, list) and isinstance(tops, list)):
        raise ValueError("'logprobs' has no 'tokens'/'token_logprobs' lists")
    if not len(tokens) == len(scores) == len(tops):
        raise ValueError("'logprobs' lists differ in length")
    return [
        {
            "token": token,
            "logprob": score,
            "bytes": list(str(token).encode()),
            "top_logprobs": [
                {"token": alt, "logprob": value, "bytes": list(str(alt).encode())}
                for alt, value in (top or {}).items()
            ],
        }
        for token, score, top in zip(tokens, scores, tops, strict=True)
    ]


def _is_entry(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("token"), str) and "logprob" in item


class ChoiceLogprobs:
    """One choice's logprobs in its route's shape, or None when the request did not ask."""

    def __init__(self, *, chat: bool, wanted: bool) -> None:
        self.chat = chat
        self.wanted = wanted
        self.legacy = LegacyLogprobs()

    def of(self, entries: list[dict[str, Any]]) -> dict[str, Any] | None:
        if not self.wanted:
            return None
        return chat_logprobs(entries) if self.chat else self.legacy.block(entries)

    def of_some(self, entries: list[dict[str, Any]]) -> dict[str, Any] | None:
        """A stream's chunk: logprobs only where the chunk's text brought tokens."""
        return self.of(entries) if entries else None
