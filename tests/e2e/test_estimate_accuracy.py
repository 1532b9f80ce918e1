"""Memory estimates against what the worker really holds, through the real server path.

The worker measures its resident memory (RSS) just before it creates the model and again after
one short decode (``memory.rss_before`` / ``rss_after`` in the load response); the difference
is the model's steady state: weights paged in, KV cache allocated and zeroed, runtime tables.

The estimate describes the *peak* of a loaded model: it also counts the working buffers that
only a long prompt at a full context touches (the attention scores, ``n_ctx x 512 x n_head``
floats, without flash attention). So each case is compared with what it can honestly be
compared with:

- after filling the context (a prompt of nearly ``n_ctx`` tokens), RSS against the whole
  estimate;
- with flash attention, whose working buffers are small, steady RSS against the whole estimate;
- at 32,768 tokens without flash attention (filling that context takes minutes here), steady
  RSS against the estimate minus its CPU compute buffers.

Loads are made without flash attention (the server's default is with it) except where named.

Run with ``-s`` to see the figures (docs/benchmarks.md, "Memory estimates", records them).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

GEMMA = "google/gemma-3-270m"
TINY = "test/tiny-long"  # the tiny chat model, written with a 32,768-token maximum
MIB = 1 << 20


def load(http: httpx.Client, model: str, identifier: str, context: int, **options: Any) -> dict[str, Any]:
    response = http.post(
        "api/v1/models/load",
        json={"model": model, "identifier": identifier, "context_length": context, **options},
    )
    assert response.status_code == 200, response.text
    memory = response.json()["memory"]
    assert memory["estimate"]["passesGuardrails"] is True
    assert memory["model_size"] > 0 and memory["buffers"]  # llama.cpp's own figures came along
    return memory


def resident_now(http: httpx.Client, identifier: str) -> int:
    for model in http.get("api/v1/models").json()["models"]:
        for instance in model["loaded_instances"]:
            if instance["id"] == identifier:
                return int(instance["memory_bytes"])
    raise AssertionError(f"{identifier} is not loaded")


def fill_context(http: httpx.Client, identifier: str, prompt: str, at_least: int) -> None:
    response = http.post("v1/completions", json={"model": identifier, "prompt": prompt, "max_tokens": 1})
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["prompt_tokens"] >= at_least


def report(case: str, estimate: int, measured: int) -> float:
    error = estimate / measured - 1
    print(
        f"\n{case}: estimate {estimate / MIB:.1f} MiB, measured {measured / MIB:.1f} MiB, error {error:+.1%}"
    )
    return error


def unload(http: httpx.Client, identifier: str) -> None:
    http.post("api/v1/models/unload", json={"instance_id": identifier})


def test_gemma_4096_after_filling_the_context(http: httpx.Client) -> None:
    memory = load(http, GEMMA, "est-gemma-4k", 4096, flash_attention=False)
    try:
        estimate = memory["estimate"]["memory"]["totalBytes"]
        steady = memory["rss_after"] - memory["rss_before"]
        report("gemma 4096 steady", estimate, steady)
        # 409 x 10 tokens + <bos> = 4,091 of the 4,096 cells: the last batch of 507 tokens attends
        # over all of them, which is when the attention buffers are largest
        fill_context(http, "est-gemma-4k", " the quick brown fox jumps over a lazy dog and" * 409, 4000)
        peak = resident_now(http, "est-gemma-4k") - memory["rss_before"]
        assert abs(report("gemma 4096 filled", estimate, peak)) <= 0.15
        assert steady < estimate  # the steady state has not touched the attention buffers yet
    finally:
        unload(http, "est-gemma-4k")


def test_gemma_32768_flash_attention(http: httpx.Client) -> None:
    memory = load(http, GEMMA, "est-gemma-32k-fa", 32768, flash_attention=True)
    try:
        estimate = memory["estimate"]["memory"]["totalBytes"]
        steady = memory["rss_after"] - memory["rss_before"]
        assert abs(report("gemma 32768 flash attention steady", estimate, steady)) <= 0.15
        # llama.cpp's KV buffers are exactly the estimate's: 18 layers x 32,768 cells (full-size SWA)
        assert memory["buffers"]["CPU KV"] == memory["estimate"]["breakdown"]["kv_cpu"] == 576 * MIB
    finally:
        unload(http, "est-gemma-32k-fa")


def test_gemma_32768_without_the_working_buffers(http: httpx.Client) -> None:
    memory = load(http, GEMMA, "est-gemma-32k", 32768, flash_attention=False)
    try:
        plan = memory["estimate"]
        held = plan["memory"]["totalBytes"] - plan["breakdown"]["compute_cpu"]
        steady = memory["rss_after"] - memory["rss_before"]
        assert abs(report("gemma 32768 steady, estimate without compute buffers", held, steady)) <= 0.15
    finally:
        unload(http, "est-gemma-32k")


def test_tiny_model(http: httpx.Client) -> None:
    """Its weights are 0.64 MiB, so fixed costs (about 7 MiB of runtime state and library
    code) dominate its steady state and a percentage of it says little. What is meaningful:
    the KV cache it grows by from 4,096 to 32,768 tokens, and the attention buffers that
    dominate its peak once a long prompt fills the context."""
    small = load(http, TINY, "est-tiny-4k", 4096, flash_attention=False)
    try:
        big = load(http, TINY, "est-tiny-32k", 32768, flash_attention=False)
        unload(http, "est-tiny-32k")

        def held(memory: dict[str, Any]) -> int:
            return memory["estimate"]["memory"]["totalBytes"] - memory["estimate"]["breakdown"]["compute_cpu"]

        def steady(memory: dict[str, Any]) -> int:
            return memory["rss_after"] - memory["rss_before"]

        growth = report(
            "tiny 4096 -> 32768 steady growth", held(big) - held(small), steady(big) - steady(small)
        )
        assert abs(growth) <= 0.15
        assert abs(steady(small) - held(small)) <= 4 * MIB  # fixed overheads, in absolute terms
        fill_context(http, "est-tiny-4k", "x" * 4088, 4000)  # 4,092 tokens
        peak = resident_now(http, "est-tiny-4k") - small["rss_before"]
        assert abs(report("tiny 4096 filled", small["estimate"]["memory"]["totalBytes"], peak)) <= 0.15
    finally:
        unload(http, "est-tiny-4k")
