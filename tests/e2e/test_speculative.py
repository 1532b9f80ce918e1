"""Speculative decoding: a draft model or prompt lookup changes the speed, never the text."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from lm_jupyter.client.discovery import ServerInfo
from tests.conftest import GEMMA_KEY
from tests.e2e.test_cli_lifecycle import lmj

NO_EOS = {"2": -100, "4": -100}
PROMPTS = ["hello world", "the model is local", "yes and no and yes and no"]
TWIN = "test/tiny-tools"  # the same weights as tiny-chat (another chat template): agrees with it
STRANGER = "test/tiny-long"  # the same vocabulary, other weights: mostly disagrees
COUNTERS = (
    "total_draft_tokens_count",
    "accepted_draft_tokens_count",
    "rejected_draft_tokens_count",
    "ignored_draft_tokens_count",
)


@pytest.fixture(scope="module")
def target(http: httpx.Client):
    loaded = http.post(
        "api/v1/models/load", json={"model": "test/tiny-chat", "identifier": "spec-target", "parallel": 3}
    )
    assert loaded.status_code == 200, loaded.text
    yield "spec-target"
    http.post("api/v1/models/unload", json={"instance_id": "spec-target"})


def _complete(http: httpx.Client, model: str, prompt: str, route: str = "v1", **extra: object) -> dict:
    body = {"model": model, "prompt": prompt, "max_tokens": 60, "temperature": 0, "logit_bias": NO_EOS}
    reply = http.post(f"{route}/completions", json={**body, **extra})
    assert reply.status_code == 200, reply.text
    return reply.json()


def _text(body: dict) -> str:
    return body["choices"][0]["text"]


def _adds_up(stats: dict) -> None:
    total, accepted, rejected, ignored = (stats[name] for name in COUNTERS)
    assert total == accepted + rejected + ignored
    assert min(total, accepted, rejected, ignored) >= 0


@pytest.mark.parametrize(
    "drafting",
    [
        {"draft_model": TWIN, "draft_min_probability": 0},
        {"draft_model": STRANGER, "draft_min_probability": 0},
        {"draft_model": TWIN},  # the default confidence threshold: unsure drafts are ignored
        {"prompt_lookup": True},
    ],
    ids=["twin", "stranger", "twin-threshold", "prompt-lookup"],
)
def test_greedy_text_is_the_same_with_drafting(http: httpx.Client, target: str, drafting: dict) -> None:
    for prompt in PROMPTS:
        plain = _complete(http, target, prompt)
        drafted = _complete(http, target, prompt, **drafting)
        assert _text(drafted) == _text(plain)
        assert drafted["usage"] == plain["usage"] | {
            "prompt_tokens_details": drafted["usage"]["prompt_tokens_details"]
        }
        stats = drafted["stats"]
        _adds_up(stats)
        assert stats["tokens_per_second"] > 0
        assert stats.get("draft_model") == drafting.get("draft_model")
        assert plain["stats"] == {}  # /v1 sends stats only when speculative decoding ran


def test_a_draft_that_agrees_is_accepted(http: httpx.Client, target: str) -> None:
    stats = _complete(http, target, PROMPTS[0], max_tokens=120, draft_model=TWIN, draft_min_probability=0)[
        "stats"
    ]
    # Only what the target's logit bias changes (its banned end tokens) can differ.
    assert stats["accepted_draft_tokens_count"] >= 0.6 * stats["total_draft_tokens_count"] > 0
    lookup = _complete(http, target, "hello world " * 8, max_tokens=120, prompt_lookup=True)["stats"]
    assert lookup["total_draft_tokens_count"] > 0


def test_seeded_sampling_is_the_same_with_drafting(http: httpx.Client, target: str) -> None:
    """Every token is still the target's own sample, drawn in the same order from the same
    seeded generator: a draft that agrees saves decode steps, not random draws."""
    extra = {"temperature": 1.0, "seed": 5}
    for drafting in ({"draft_model": TWIN, "draft_min_probability": 0}, {"prompt_lookup": True}):
        assert _text(_complete(http, target, PROMPTS[1], **extra, **drafting)) == _text(
            _complete(http, target, PROMPTS[1], **extra)
        )


def test_speculating_requests_in_one_batch_give_their_solo_text(http: httpx.Client, target: str) -> None:
    def run(index: int) -> str:
        drafting = {"draft_model": TWIN, "draft_min_probability": 0} if index % 2 else {"prompt_lookup": True}
        return _text(_complete(http, target, PROMPTS[index], max_tokens=80, **drafting))

    solo = [run(i) for i in range(3)]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(run, range(3)))
    assert together == solo


def test_stats_in_lmstudio_routes_and_streams(http: httpx.Client, target: str) -> None:
    drafting = {"draft_model": TWIN, "draft_min_probability": 0}
    v0 = _complete(http, target, PROMPTS[0], route="api/v0", **drafting)["stats"]
    assert v0["draft_model"] == TWIN and v0["stop_reason"] == "maxPredictedTokensReached"
    assert {"tokens_per_second", "time_to_first_token", "generation_time"} <= set(v0)
    _adds_up(v0)
    for route, usage in (("v1", False), ("v1", True), ("api/v0", False)):
        body = {"model": target, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 30,
                "temperature": 0, "logit_bias": NO_EOS, "stream": True, **drafting}  # fmt: skip
        if usage:
            body["stream_options"] = {"include_usage": True}
        with http.stream("POST", f"{route}/chat/completions", json=body) as response:
            chunks = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
        assert "stats" not in chunks[0]
        stats = chunks[-1]["stats"]  # the last chunk: the usage chunk when there is one
        assert stats["draft_model"] == TWIN
        _adds_up(stats)
        assert [("stats" in chunk) for chunk in chunks].count(True) == 1


def test_load_time_draft_model_applies_to_requests(http: httpx.Client) -> None:
    loaded = http.post(
        "api/v1/models/load",
        json={"model": "test/tiny-chat", "identifier": "spec-default", "draft_model": TWIN},
    )
    assert loaded.status_code == 200, loaded.text
    try:
        body = _complete(http, "spec-default", PROMPTS[0], draft_min_probability=0)
        assert body["stats"]["draft_model"] == TWIN
        lookup = _complete(http, "spec-default", PROMPTS[0], prompt_lookup=True)["stats"]
        assert "draft_model" not in lookup  # the request chose prompt lookup instead
    finally:
        http.post("api/v1/models/unload", json={"instance_id": "spec-default"})
    missing = http.post("api/v1/models/load", json={"model": "test/tiny-chat", "draft_model": "nobody/none"})
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "draft_model"
    embedding = http.post("api/v1/models/load", json={"model": "test/tiny-embed", "draft_model": TWIN})
    assert embedding.status_code == 400, embedding.text
    assert "only be configured for LLM" in embedding.json()["error"]["message"]


@pytest.mark.parametrize(
    ("drafting", "status", "code", "words"),
    [
        ({"draft_model": GEMMA_KEY}, 400, "draft_model_incompatible", [GEMMA_KEY, "test/tiny-chat"]),
        ({"draft_model": "nobody/none"}, 404, "model_not_found", ["nobody/none"]),
        ({"draft_model": "test/tiny-embed"}, 400, "model_not_llm", ["test/tiny-embed"]),
        ({"draft_model": TWIN, "prompt_lookup": True}, 400, None, ["prompt_lookup"]),
        ({"num_draft_tokens": 0, "prompt_lookup": True}, 400, None, ["num_draft_tokens"]),
    ],
    ids=["incompatible", "unknown", "embedding", "both", "zero-tokens"],
)
def test_bad_draft_requests(
    http: httpx.Client, target: str, drafting: dict, status: int, code: str | None, words: list[str]
) -> None:
    for stream in (False, True):
        body = {"model": target, "prompt": "hi", "max_tokens": 5, "stream": stream, **drafting}
        reply = http.post("v1/completions", json=body)
        assert reply.status_code == status, reply.text
        error = reply.json()["error"]
        assert error["param"] in {"draft_model", "prompt_lookup", "num_draft_tokens"}
        if code:
            assert error["code"] == code
        for word in words:
            assert word in error["message"]
    assert _complete(http, target, "hi", max_tokens=3)["usage"]["completion_tokens"] == 3


@pytest.mark.slow
def test_gemma_prompt_lookup_accepts_most_drafts_and_follows_plain_decoding(http: httpx.Client) -> None:
    """On Gemma 3 (Q4_K_M) llama.cpp's logits for a position differ by up to ~0.4 between a
    one-token decode and a batch of several tokens (other matmul kernels and summation order),
    so a verification batch can flip a near-tie that plain decoding resolves the other way,
    exactly as batching several requests can (test_batching.py). What holds: the answer starts
    as the plain answer does, every token is still the target's own choice, and on a
    repeat-the-text task most drafts are accepted."""
    http.post("api/v1/models/load", json={"model": GEMMA_KEY, "identifier": "gemma-spec", "parallel": 1})
    try:
        text = (
            "def mean(values):\n    total = 0\n    for value in values:\n        total += value\n"
            "    return total / len(values)\n"
        )
        messages = [{"role": "user", "content": f"Repeat this code exactly:\n```python\n{text}```"}]
        body = {"model": "gemma-spec", "messages": messages, "max_tokens": 80, "temperature": 0}
        plain = http.post("v1/chat/completions", json=body).json()["choices"][0]["message"]["content"]
        drafted = http.post("v1/chat/completions", json={**body, "prompt_lookup": True}).json()
        content = drafted["choices"][0]["message"]["content"]
        shared = next((i for i, (a, b) in enumerate(zip(plain, content, strict=False)) if a != b), len(plain))
        assert shared >= 30, (plain, content)
        stats = drafted["stats"]
        _adds_up(stats)
        assert stats["accepted_draft_tokens_count"] > 0.5 * stats["total_draft_tokens_count"] > 10
    finally:
        http.post("api/v1/models/unload", json={"instance_id": "gemma-spec"})


def test_lmj_load_draft_model_flag(server: ServerInfo, http: httpx.Client) -> None:
    out = lmj(server, "load", "test/tiny-chat", "--identifier", "spec-cli", "--draft-model", TWIN)
    assert 'use the identifier "spec-cli"' in out.stderr
    try:
        body = _complete(http, "spec-cli", PROMPTS[0], draft_min_probability=0)
        assert body["stats"]["draft_model"] == TWIN
    finally:
        lmj(server, "unload", "spec-cli")


def test_metrics_count_drafts_prefix_hits_and_occupancy(http: httpx.Client, target: str) -> None:
    def sample(name: str) -> float:
        for line in http.get("metrics").text.splitlines():
            if line.split(" ")[0] == name:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    label = f'{{model="{target}",outcome="accepted"}}'
    _complete(http, target, PROMPTS[0], max_tokens=3)
    before = sample(f"lm_jupyter_draft_tokens_total{label}")
    hits = sample(f'lm_jupyter_prefix_cache_hits_total{{model="{target}"}}')
    stats = _complete(http, target, PROMPTS[0], draft_model=TWIN, draft_min_probability=0)["stats"]
    assert sample(f"lm_jupyter_draft_tokens_total{label}") == before + stats["accepted_draft_tokens_count"]
    assert sample(f'lm_jupyter_prefix_cache_hits_total{{model="{target}"}}') == hits + 1  # same prompt again
    # Occupancy on an instance whose endless request cannot end before the scrape: tiny-chat
    # fills its 4,096-token context in well under a second, tiny-long's 32,768 take many seconds.
    long = {"model": STRANGER, "identifier": "occupancy", "parallel": 3, "context_length": 32768}
    assert http.post("api/v1/models/load", json=long).status_code == 200
    try:
        endless = {"model": "occupancy", "prompt": "go", "max_tokens": -1, "logit_bias": NO_EOS}
        with http.stream("POST", "v1/completions", json={**endless, "stream": True}) as response:
            next(line for line in response.iter_lines() if line.startswith("data: {"))
            text = http.get("metrics").text  # one scrape while the request runs
            assert 'lm_jupyter_batch_occupancy{model="occupancy"} 0.333' in text
            assert 'lm_jupyter_running_sequences{model="occupancy"} 1.0' in text
    finally:
        http.post("api/v1/models/unload", json={"instance_id": "occupancy"})


def test_lmj_load_lm_studio_speculative_flags_set_request_defaults(
    server: ServerInfo, http: httpx.Client
) -> None:
    """``lms load``'s ``--speculative-draft-*`` flags: requests that set nothing draft as if they
    had sent ``num_draft_tokens`` and ``draft_min_probability`` themselves."""
    lmj(
        server,
        "load",
        "test/tiny-chat",
        "--identifier",
        "spec-flags",
        "--speculative-draft-model",
        TWIN,
        "--speculative-draft-max-tokens",
        "2",
        "--speculative-draft-min-continue-probability",
        "0",
    )
    plain = http.post("api/v1/models/load", json={"model": "test/tiny-chat", "identifier": "spec-plain"})
    assert plain.status_code == 200, plain.text
    try:
        defaults = _complete(http, "spec-flags", PROMPTS[1])["stats"]
        asked = _complete(
            http, "spec-plain", PROMPTS[1], draft_model=TWIN, num_draft_tokens=2, draft_min_probability=0
        )["stats"]
        assert defaults["draft_model"] == TWIN and defaults["total_draft_tokens_count"] > 0
        assert {k: defaults[k] for k in COUNTERS} == {k: asked[k] for k in COUNTERS}
        own = _complete(http, "spec-flags", PROMPTS[1], num_draft_tokens=6, draft_min_probability=0)["stats"]
        other = _complete(
            http, "spec-plain", PROMPTS[1], draft_model=TWIN, num_draft_tokens=6, draft_min_probability=0
        )["stats"]
        assert {k: own[k] for k in COUNTERS} == {k: other[k] for k in COUNTERS}  # a request's own wins
    finally:
        lmj(server, "unload", "spec-flags")
        http.post("api/v1/models/unload", json={"instance_id": "spec-plain"})
    for field, value in [
        ("num_draft_tokens", 0),
        ("speculative_draft_max_tokens", 33),
        ("speculative_draft_min_continue_probability", 1.5),
        ("draft_min_probability", "high"),
    ]:
        bad = http.post(
            "api/v1/models/load", json={"model": "test/tiny-chat", "draft_model": TWIN, field: value}
        )
        assert bad.status_code == 400, bad.text
        assert bad.json()["error"]["param"] == field
