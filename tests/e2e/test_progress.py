"""Prompt-processing progress (llama-server's ``return_progress``) on the tiny F32 model.

The worker reports after each prompt chunk the batch took (512 tokens): a long prompt gives one
``prompt_progress`` chunk per chunk, counting up to the prompt's size, all before the first token.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

TINY = "test/tiny-chat"
LONG = "progress " + "hello world " * 90  # ~1,450 tokens (bytes, mostly): three prompt chunks


def _stream(http: httpx.Client, route: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    chunks = []
    with http.stream("POST", route, json={**body, "stream": True}) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[6:]))
    return chunks


def _progress(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [chunk["prompt_progress"] for chunk in chunks if "prompt_progress" in chunk]


def test_chat_stream_reports_each_prompt_chunk_before_the_first_token(http: httpx.Client) -> None:
    body = {
        "model": TINY,
        "messages": [{"role": "user", "content": LONG}],
        "max_tokens": 4,
        "return_progress": True,
        "stream_options": {"include_usage": True},
    }
    chunks = _stream(http, "v1/chat/completions", body)
    progress = _progress(chunks)
    prompt_tokens = chunks[-1]["usage"]["prompt_tokens"]
    assert len(progress) == -(-prompt_tokens // 512)  # one per chunk of the batch
    assert [p["processed"] for p in progress] == sorted({p["processed"] for p in progress})
    assert progress[-1]["processed"] == progress[-1]["total"] == prompt_tokens
    # Earlier chats on this shared instance may have left the template's opening in the cache:
    # at most that few tokens, the same in every event (LONG itself is never cached before).
    assert all(p["cache"] == progress[0]["cache"] < 16 and p["time_ms"] >= 0 for p in progress)
    first_text = next(
        i for i, c in enumerate(chunks) if c["choices"] and c["choices"][0]["delta"].get("content")
    )
    last_progress = max(i for i, c in enumerate(chunks) if "prompt_progress" in c)
    assert last_progress < first_text
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


def test_a_cached_prefix_counts_as_processed(http: httpx.Client) -> None:
    body = {"model": TINY, "messages": [{"role": "user", "content": LONG}], "max_tokens": 2}
    _stream(http, "v1/chat/completions", body)  # fills the prefix cache
    progress = _progress(_stream(http, "v1/chat/completions", {**body, "return_progress": True}))
    assert progress[0]["cache"] > 512  # the shared history is reused, not processed again
    assert progress[-1]["processed"] == progress[-1]["total"]
    assert len(progress) == 1


def test_completions_stream_and_no_progress_unless_asked(http: httpx.Client) -> None:
    body = {"model": TINY, "prompt": LONG + "once more", "max_tokens": 2}
    chunks = _stream(http, "v1/completions", {**body, "return_progress": True})
    assert len(_progress(chunks)) >= 2
    assert all(c["object"] == "text_completion" for c in chunks)
    assert _progress(_stream(http, "v1/completions", {**body, "prompt": LONG + "twice"})) == []
    whole = http.post("v1/completions", json={**body, "return_progress": True})  # not streamed: ignored
    assert whole.status_code == 200 and "prompt_progress" not in whole.json()


def test_return_progress_must_be_a_boolean(http: httpx.Client) -> None:
    body = {"model": TINY, "messages": [{"role": "user", "content": "hi"}], "return_progress": "yes"}
    response = http.post("v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "return_progress"
