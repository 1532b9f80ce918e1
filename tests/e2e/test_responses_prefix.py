"""A continued conversation reuses the KV cache: turn N's time to first token stays flat.

Not a timed assertion (shared CI machines are noisy): the test prints each turn's client-side
time to first token next to the prompt and cached token counts, and a cold control (the last
turn's prompt on a freshly loaded instance), and asserts only the cache accounting.
"""

from __future__ import annotations

import time

import httpx
import pytest
from openai import OpenAI
from openai.types.responses import Response

from tests.conftest import GEMMA_KEY

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

TURNS = 6
FILLER = (
    "Here are some notes about the project, which I will keep adding to as we talk: the server "
    "runs models in worker processes, keeps stored responses in SQLite and streams typed events. "
)


def timed_turn(client: OpenAI, text: str, previous: str | None) -> tuple[float, Response]:
    started = time.perf_counter()
    first_token = None
    events = client.responses.create(
        model=GEMMA_KEY,
        input=text,
        previous_response_id=previous,
        temperature=0,
        max_output_tokens=16,
        stream=True,
    )
    for event in events:
        if event.type == "response.output_text.delta" and first_token is None:
            first_token = time.perf_counter() - started
    assert first_token is not None and event.type in ("response.completed", "response.incomplete")
    return first_token, event.response


def fresh_instance(client: OpenAI, http: httpx.Client) -> None:
    """A newly loaded instance, warmed up by one short unrelated request (its first decode
    allocates buffers), so the timings below measure prompt processing only."""
    http.post("/api/v1/models/unload", json={"instance_id": GEMMA_KEY})
    assert http.post("/api/v1/models/load", json={"model": GEMMA_KEY}).status_code == 200
    client.responses.create(model=GEMMA_KEY, input="Hi", max_output_tokens=2, store=False)


def test_turn_ttft_does_not_grow_with_history(openai_client: OpenAI, http: httpx.Client) -> None:
    fresh_instance(openai_client, http)
    previous = None
    rows = []
    for turn in range(1, TURNS + 1):
        text = f"Turn {turn}. " + FILLER * 3 + "Summarise in one word."
        ttft, response = timed_turn(openai_client, text, previous)
        usage = response.usage
        rows.append((turn, usage.input_tokens, usage.input_tokens_details.cached_tokens, ttft))
        if previous is not None:
            assert usage.input_tokens_details.cached_tokens >= rows[-2][1]  # all of the last prompt
        last_previous, previous = previous, response.id
    fresh_instance(openai_client, http)
    cold, response = timed_turn(openai_client, text, last_previous)
    assert response.usage.input_tokens_details.cached_tokens < 20  # at most the chat template's opening
    print("\nturn  prompt_tokens  cached_tokens  ttft_s")
    for turn, prompt, cached, ttft in rows:
        print(f"{turn:>4}  {prompt:>13}  {cached:>13}  {ttft:6.3f}")
    print(
        f"cold  {response.usage.input_tokens:>13}  {0:>13}  {cold:6.3f}  (turn {TURNS}'s prompt, empty cache)"
    )
