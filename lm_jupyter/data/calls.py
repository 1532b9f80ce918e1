"""One request each: a streamed chat answer (text and logprobs) or a batch of embeddings.

Answers are streamed even though only the whole is used: closing a stream is how a stopped
run cancels a generation on the server within one token.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from ._client import Client, LmError
from .runner import Cancelled


def chat_answer(
    client: Client, body: dict[str, Any], stop: threading.Event
) -> tuple[str, list[dict[str, Any]]]:
    """The answer's text and, if the body asks for logprobs, their entries."""
    text: list[str] = []
    entries: list[dict[str, Any]] = []
    finish = None
    with contextlib.closing(client.chat_stream(body)) as chunks:
        for chunk in chunks:
            if stop.is_set():
                raise Cancelled
            for choice in chunk.get("choices") or []:
                text.append((choice.get("delta") or {}).get("content") or "")
                entries += (choice.get("logprobs") or {}).get("content") or []
                finish = choice.get("finish_reason") or finish
    if finish == "length" and body.get("response_format"):
        raise LmError(f"the answer was cut at max_tokens={body.get('max_tokens')} before its JSON ended")
    return "".join(text), entries


def embedding_batch(client: Client, model: str, texts: list[str]) -> list[list[float]]:
    reply = client.embeddings(model, texts)
    return [item["embedding"] for item in sorted(reply["data"], key=lambda item: item["index"])]
