"""LM Studio's context-overflow policies on a tiny model loaded with a small context."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import GEMMA_KEY

NO_EOS = {"2": -100, "4": -100}
LONG = "hello world " * 40  # about 480 tokens: more than the context


@pytest.fixture(scope="module")
def small(http: httpx.Client):
    loaded = http.post(
        "api/v1/models/load",
        json={
            "model": "test/tiny-chat",
            "identifier": "tiny-256",
            "context_length": 256,
            "parallel": 2,
            "echo_load_config": True,
        },
    )
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["load_config"]["context_length"] == 256
    yield "tiny-256"
    http.post("api/v1/models/unload", json={"instance_id": "tiny-256"})


def _complete(http: httpx.Client, model: str, prompt: str, route: str = "v1", **extra: object) -> dict:
    body = {"model": model, "prompt": prompt, "temperature": 0, "logit_bias": NO_EOS, **extra}
    reply = http.post(f"{route}/completions", json=body)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_default_policy_stops_at_the_limit(http: httpx.Client, small: str) -> None:
    body = _complete(http, small, "hello world", route="api/v0", max_tokens=1000)
    prompt = body["usage"]["prompt_tokens"]
    assert body["usage"]["completion_tokens"] == 256 - prompt
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["stats"]["stop_reason"] == "contextLengthReached"
    reply = http.post("v1/completions", json={"model": small, "prompt": LONG})
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["code"] == "context_length_exceeded" and "truncateMiddle" in error["message"]


@pytest.mark.parametrize("policy", ["truncateMiddle", "rollingWindow"])
def test_cutting_policies_fit_a_prompt_that_does_not(http: httpx.Client, small: str, policy: str) -> None:
    body = _complete(http, small, LONG, max_tokens=20, context_overflow_policy=policy)
    assert body["usage"]["prompt_tokens"] == 256 - 20
    assert body["usage"]["completion_tokens"] == 20
    assert body["choices"][0]["finish_reason"] == "length"
    chat = http.post(
        "v1/chat/completions",
        json={
            "model": small,
            "messages": [{"role": "system", "content": "the model"}, {"role": "user", "content": LONG}],
            "max_tokens": 5,
            "contextOverflowPolicy": policy,  # the SDKs' spelling is accepted too
        },
    )
    assert chat.status_code == 200, chat.text
    assert chat.json()["usage"]["prompt_tokens"] <= 256 - 5


@pytest.mark.parametrize("policy", ["truncateMiddle", "rollingWindow"])
def test_answers_longer_than_the_context_shift_it(http: httpx.Client, small: str, policy: str) -> None:
    body = _complete(
        http, small, "hello world", route="api/v0", max_tokens=600, context_overflow_policy=policy
    )
    assert body["usage"]["completion_tokens"] == 600  # more than the context holds
    assert body["stats"]["stop_reason"] == "maxPredictedTokensReached"
    assert body["choices"][0]["text"]


def test_sequences_sharing_the_cache_shift_side_by_side(http: httpx.Client, small: str) -> None:
    """The parallel sequences share the context's cells (one unified KV cache, as LM Studio
    loads it), so together they fill it sooner than alone and shift earlier: their answers
    agree with the solo answers until then, go on to the end, and leave the cache sound."""
    prompts = ["hello world", "the local jupyter model"]

    def run(prompt: str, max_tokens: int = 400) -> dict:
        return _complete(http, small, prompt, max_tokens=max_tokens, context_overflow_policy="rollingWindow")

    solo = [run(p)["choices"][0]["text"] for p in prompts]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(run, prompts))
    for alone, body in zip(solo, together, strict=True):
        assert body["usage"]["completion_tokens"] == 400
        assert body["choices"][0]["text"][:40] == alone[:40]
    again = run(prompts[0], 20)["choices"][0]["text"]
    assert again == solo[0][: len(again)]


def test_unknown_policy_is_a_400(http: httpx.Client, small: str) -> None:
    reply = http.post(
        "v1/completions", json={"model": small, "prompt": "hi", "context_overflow_policy": "dropAll"}
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "context_overflow_policy"


def test_shared_prefix_cells_are_evaluated_again_not_moved(http: httpx.Client, small: str) -> None:
    """A request that starts from another running request's prompt shares its KV cells;
    shifting would move the other's positions too, so both evaluate their kept tokens again."""
    prompt = "hello world " * 10  # about 160 tokens: most of the context
    body = {"model": small, "prompt": prompt, "temperature": 0, "logit_bias": NO_EOS,
            "context_overflow_policy": "rollingWindow"}  # fmt: skip
    with http.stream("POST", "v1/completions", json={**body, "max_tokens": 3000, "stream": True}) as first:
        lines = first.iter_lines()
        next(line for line in lines if line.startswith("data: {"))
        second = _complete(http, small, prompt, max_tokens=300, context_overflow_policy="rollingWindow")
        assert second["usage"]["prompt_tokens"] > 128  # longer than what a shift keeps
        assert second["usage"]["prompt_tokens_details"]["cached_tokens"] > 128
        assert second["usage"]["completion_tokens"] == 300
        seen = 0  # the first request is still streaming
        for line in lines:
            seen += line.startswith("data: {")
            if seen == 100:
                break
        assert seen == 100
    alone = _complete(http, small, "hello world", max_tokens=30)["choices"][0]["text"]
    assert _complete(http, small, "hello world", max_tokens=30)["choices"][0]["text"] == alone


@pytest.mark.slow
def test_gemma_sliding_window_cache_shifts(http: httpx.Client) -> None:
    """Gemma 3 has sliding-window layers; llama.cpp can shift their cache only when it is
    full-size (``swa_full``, llama.cpp's default and ours): a real model's answer goes on
    past the end of its context."""
    loaded = http.post(
        "api/v1/models/load",
        json={"model": GEMMA_KEY, "identifier": "gemma-256", "context_length": 256, "parallel": 1},
    )
    assert loaded.status_code == 200, loaded.text
    try:
        body = _complete(
            http,
            "gemma-256",
            "Count from one to one thousand: one, two, three,",
            route="api/v0",
            max_tokens=300,
            logit_bias={},
            context_overflow_policy="rollingWindow",
        )
        assert body["usage"]["completion_tokens"] == 300, body
        assert body["stats"]["stop_reason"] == "maxPredictedTokensReached"
    finally:
        http.post("api/v1/models/unload", json={"instance_id": "gemma-256"})
