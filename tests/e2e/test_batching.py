"""Continuous batching: requests that run together give what they give alone."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import GEMMA_KEY

NO_EOS = {"2": -100, "4": -100}
PROMPTS = ["hello world", "the model", "a local jupyter", "yes and no", "it is the token"]


def _complete(http: httpx.Client, model: str, prompt: str, **extra: object) -> str:
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": 40,
        "temperature": 0,
        "logit_bias": NO_EOS,
        **extra,
    }
    reply = http.post("v1/completions", json=body)
    assert reply.status_code == 200, reply.text
    return reply.json()["choices"][0]["text"]


@pytest.fixture
def batched(http: httpx.Client):
    http.post("api/v1/models/load", json={"model": "test/tiny-chat", "identifier": "batch-4", "parallel": 4})
    yield "batch-4"
    http.post("api/v1/models/unload", json={"instance_id": "batch-4"})


def test_greedy_batched_equals_solo(http: httpx.Client, batched: str) -> None:
    solo = [_complete(http, batched, prompt) for prompt in PROMPTS]
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        together = list(pool.map(lambda p: _complete(http, batched, p), PROMPTS))
    assert together == solo


def test_seeded_sampling_batched_equals_solo(http: httpx.Client, batched: str) -> None:
    extra = {"temperature": 1.0, "seed": 11}
    solo = [_complete(http, batched, prompt, **extra) for prompt in PROMPTS[:4]]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda p: _complete(http, batched, p, **extra), PROMPTS[:4]))
    assert together == solo


def test_requests_overlap_instead_of_queueing(http: httpx.Client, batched: str) -> None:
    """Two endless streams on a parallel-4 instance both produce tokens at the same time."""
    body = {"model": batched, "prompt": "go", "max_tokens": -1, "logit_bias": NO_EOS, "stream": True}
    counts = [0, 0]
    stop = threading.Event()

    def stream(index: int) -> None:
        with http.stream("POST", "v1/completions", json=body) as response:
            for line in response.iter_lines():
                counts[index] += line.startswith("data: {")
                if stop.is_set():
                    break

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    # Serialized, the second endless stream would never get a token; batched, both soon have
    # many (the deadline only absorbs a loaded machine).
    deadline = time.monotonic() + 20
    while min(counts) <= 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    both = list(counts)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert both[0] > 20 and both[1] > 20, both
    # Cancelled sequences are freed: the instance is idle and serves the next request at once.
    deadline = time.monotonic() + 3
    while any(
        i["status"] != "idle"
        for m in http.get("api/v1/models").json()["models"]
        for i in m["loaded_instances"]
        if i["id"] == batched
    ):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert _complete(http, batched, "a", max_tokens=3)


@pytest.mark.slow
def test_gemma_batched_greedy_follows_solo(http: httpx.Client) -> None:
    """On real weights, llama.cpp's CPU matmuls sum in a different order for a batch of four
    than for one sequence, so after a while a near-tie can flip (llama-server behaves the same).
    What must hold: every batched answer starts as its solo answer does."""
    prompts = [
        "Paris is the capital of",
        "def fibonacci(n):",
        "The three primary colors are",
        "Once upon a time",
    ]
    http.post("api/v1/models/load", json={"model": GEMMA_KEY, "identifier": "gemma-4", "parallel": 4})
    try:

        def run(prompt: str) -> str:
            return _complete(http, "gemma-4", prompt, max_tokens=24, logit_bias={})

        solo = [run(p) for p in prompts]
        with ThreadPoolExecutor(4) as pool:
            together = list(pool.map(run, prompts))
        for alone, batched in zip(solo, together, strict=True):
            shared = next(
                (i for i, (a, b) in enumerate(zip(alone, batched, strict=False)) if a != b), len(alone)
            )
            assert shared >= 30, (alone, batched)
    finally:
        http.post("api/v1/models/unload", json={"instance_id": "gemma-4"})
