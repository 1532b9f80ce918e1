"""Logprobs on chat completions and completions, through the real openai SDK.

On the tiny F32 models: the greedy token is the most likely one, batched and speculative runs
give their solo tokens and logprobs, streamed chunks carry the whole answer's logprobs, and
scoring a text with ``echo`` gives the logprobs its generation had. Tokens and their order are
compared exactly; logprobs to 1e-4, because llama.cpp's CPU kernels round differently when
the same token is computed in a batch of another shape (a prompt chunk, several sequences, a
prefix-cache hit that recomputes only the last prompt token): measured differences are ~1e-6.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from openai import BadRequestError, OpenAI

from tests.conftest import GEMMA_KEY

TINY = "test/tiny-chat"
TWIN = "test/tiny-tools"  # same weights as tiny-chat: a draft model that agrees with it
# Greedy means argmax of the raw logits only without the repetition penalty (LM Studio's default 1.1).
GREEDY = {"temperature": 0, "extra_body": {"repeat_penalty": 1.0}}
NO_EOS = {"2": -100, "4": -100}  # biases sampling only: logprobs stay the raw distribution's
PROMPTS = ["hello world", "the model is local", "yes and no and yes", "a jupyter token"]


@pytest.fixture(scope="module")
def batched(http: httpx.Client):
    # llama.cpp's flash-attention kernels sum a batch of queries in another order than one
    # query (logprobs move by ~1e-3): the exact comparisons here need it off.
    options = {"model": TINY, "identifier": "logprobs-4", "parallel": 4, "flash_attention": False}
    loaded = http.post("api/v1/models/load", json=options)
    assert loaded.status_code == 200, loaded.text
    yield "logprobs-4"
    http.post("api/v1/models/unload", json={"instance_id": "logprobs-4"})


def _chat(client: OpenAI, model: str, prompt: str, top: int = 5, **extra: Any) -> Any:
    options = {**GREEDY, **extra, "extra_body": {**GREEDY["extra_body"], **extra.get("extra_body", {})}}
    return client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=24,
        logprobs=True,
        top_logprobs=top,
        **options,
    )


def _entries(reply: Any) -> list[dict[str, Any]]:
    return [item.model_dump() for item in reply.choices[0].logprobs.content]


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    """Same tokens in the same order, logprobs equal up to float rounding."""

    def tokens(entries: list[dict[str, Any]]) -> list[Any]:
        return [(e["bytes"], [alt["bytes"] for alt in e["top_logprobs"]]) for e in entries]

    def values(entries: list[dict[str, Any]]) -> list[float]:
        return [v for e in entries for v in [e["logprob"], *(alt["logprob"] for alt in e["top_logprobs"])]]

    assert tokens(a) == tokens(b)
    assert values(a) == pytest.approx(values(b), abs=1e-4)


def test_chat_logprobs_shape_and_greedy_choice(openai_client: OpenAI, batched: str) -> None:
    reply = _chat(openai_client, batched, PROMPTS[0])
    entries = _entries(reply)
    assert entries, "the tiny model answered nothing"
    for item in entries:
        top = item["top_logprobs"]
        assert len(top) == 5
        values = [alt["logprob"] for alt in top]
        assert values == sorted(values, reverse=True)
        assert sum(math.exp(v) for v in values) <= 1 + 1e-6
        # Greedy on the raw distribution: the chosen token is the most likely one.
        assert item["logprob"] == values[0]
        assert item["bytes"] == top[0]["bytes"]
        assert item["logprob"] <= 0
    text = b"".join(bytes(item["bytes"]) for item in entries).decode(errors="replace")
    assert text == reply.choices[0].message.content


def test_without_logprobs_there_are_none(openai_client: OpenAI, batched: str) -> None:
    reply = openai_client.chat.completions.create(
        model=batched, messages=[{"role": "user", "content": "hello"}], max_tokens=4, logprobs=False
    )
    assert reply.choices[0].logprobs is None


def test_top_logprobs_zero_gives_the_chosen_token_only(openai_client: OpenAI, batched: str) -> None:
    entries = _entries(_chat(openai_client, batched, PROMPTS[1], top=0))
    assert entries and all(item["top_logprobs"] == [] for item in entries)


def test_streamed_chunks_carry_the_whole_answers_logprobs(openai_client: OpenAI, batched: str) -> None:
    whole = _entries(_chat(openai_client, batched, PROMPTS[2]))
    streamed: list[dict[str, Any]] = []
    text = ""
    options = {**GREEDY}
    stream = openai_client.chat.completions.create(
        model=batched,
        messages=[{"role": "user", "content": PROMPTS[2]}],
        max_tokens=24,
        logprobs=True,
        top_logprobs=5,
        stream=True,
        **options,
    )
    for chunk in stream:
        choice = chunk.choices[0]
        text += choice.delta.content or ""
        if choice.logprobs is not None:
            streamed += [item.model_dump() for item in choice.logprobs.content]
    _same(streamed, whole)
    assert b"".join(bytes(item["bytes"]) for item in streamed).decode(errors="replace") == text


def test_batched_logprobs_equal_solo(openai_client: OpenAI, batched: str) -> None:
    solo = [_entries(_chat(openai_client, batched, prompt)) for prompt in PROMPTS]
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        together = list(pool.map(lambda p: _entries(_chat(openai_client, batched, p)), PROMPTS))
    for mine, alone in zip(together, solo, strict=True):
        _same(mine, alone)


@pytest.mark.parametrize(
    "drafting",
    [{"draft_model": TWIN, "draft_min_probability": 0}, {"prompt_lookup": True}],
    ids=["draft-model", "prompt-lookup"],
)
def test_speculative_logprobs_equal_plain(openai_client: OpenAI, batched: str, drafting: dict) -> None:
    """Each verified position's logprobs come from the target's own logits: drafting changes
    nothing (the prompt repeats, so prompt lookup has n-grams to draft from)."""

    def run(**extra: Any) -> Any:
        return openai_client.completions.create(
            model=batched,
            prompt="hello world " * 8,
            max_tokens=60,
            logprobs=5,
            temperature=0,
            extra_body={"repeat_penalty": 1.0, "logit_bias": NO_EOS, **extra},
        )

    plain, speculated = run(), run(**drafting)
    assert speculated.model_extra["stats"]["accepted_draft_tokens_count"] > 0
    first, second = plain.choices[0].logprobs, speculated.choices[0].logprobs
    assert first is not None and second is not None
    assert second.tokens == first.tokens and len(first.tokens) == 60
    assert second.token_logprobs == pytest.approx(first.token_logprobs, abs=1e-4)
    assert [list(top) for top in second.top_logprobs] == [list(top) for top in first.top_logprobs]


def test_constrained_alternatives_are_what_the_grammar_allows(openai_client: OpenAI, batched: str) -> None:
    """``constrained_logprobs`` (ours, for llm.classify): the alternatives are the likeliest
    tokens the grammar allows; the values stay the raw distribution's."""
    labels = [b"yes", b"no", b"maybe"]
    grammar = {"grammar": 'root ::= "yes" | "no" | "maybe"'}
    free = _entries(_chat(openai_client, batched, PROMPTS[0], top=20))
    constrained = _entries(
        _chat(
            openai_client, batched, PROMPTS[0], top=20, extra_body={**grammar, "constrained_logprobs": True}
        )
    )
    first = constrained[0]
    assert first["top_logprobs"], "no alternative allowed"
    for alt in first["top_logprobs"]:
        assert any(label.startswith(bytes(alt["bytes"])) for label in labels), alt
    # The same position of the same prompt: a token listed in both has the same logprob.
    raw = {bytes(alt["bytes"]): alt["logprob"] for alt in free[0]["top_logprobs"]}
    for alt in first["top_logprobs"]:
        if bytes(alt["bytes"]) in raw:
            assert alt["logprob"] == pytest.approx(raw[bytes(alt["bytes"])], abs=1e-4)
    assert b"".join(bytes(e["bytes"]) for e in constrained) in labels


def test_legacy_completions_logprobs(openai_client: OpenAI, batched: str) -> None:
    reply = openai_client.completions.create(
        model=batched, prompt="hello world", max_tokens=16, logprobs=3, **GREEDY
    )
    choice = reply.choices[0]
    logprobs = choice.logprobs
    assert logprobs is not None
    n = len(logprobs.tokens)
    assert n == reply.usage.completion_tokens > 0
    assert len(logprobs.token_logprobs) == len(logprobs.top_logprobs) == len(logprobs.text_offset) == n
    for token, value, top in zip(
        logprobs.tokens, logprobs.token_logprobs, logprobs.top_logprobs, strict=True
    ):
        assert 1 <= len(top) <= 3 and value == max(top.values())
        assert top[token] == value
    offsets = [0] + [sum(len(t) for t in logprobs.tokens[: i + 1]) for i in range(n - 1)]
    assert logprobs.text_offset == offsets


def test_echo_scores_the_prompt_as_generation_scored_it(openai_client: OpenAI, batched: str) -> None:
    """Generate greedily, then score prompt + answer with echo and max_tokens 0 (what
    lm-evaluation-harness sends): the answer's tokens get the logprobs they were generated with."""
    prompt = "the model is"
    # Letters only: the tiny tokenizer spells text byte by byte, so the answer must be bytes
    # that tokenize back into the same tokens (its random bytes and word tokens would not).
    # The grammar steers sampling; logprobs stay the raw distribution's.
    words = {"grammar": "root ::= [a-z]+"}
    generated = openai_client.completions.create(
        model=batched,
        prompt=prompt,
        max_tokens=8,
        logprobs=2,
        temperature=0,
        extra_body={**GREEDY["extra_body"], **words},
    ).choices[0]
    assert generated.logprobs is not None
    scored = openai_client.completions.create(
        model=batched, prompt=prompt + generated.text, max_tokens=0, echo=True, logprobs=2, **GREEDY
    )
    choice = scored.choices[0]
    assert choice.text == prompt + generated.text
    assert choice.finish_reason == "length" and scored.usage.completion_tokens == 0
    logprobs = choice.logprobs
    assert logprobs is not None
    tail = len(generated.logprobs.tokens)
    assert logprobs.tokens[-tail:] == generated.logprobs.tokens
    # A prompt batch and one-token decode steps do the same arithmetic in another order.
    assert logprobs.token_logprobs[-tail:] == pytest.approx(generated.logprobs.token_logprobs, abs=1e-4)
    # The tiny model adds BOS: every token of the text has a logprob.
    assert all(value is not None for value in logprobs.token_logprobs)


def test_echo_streamed_sends_the_prompt_first(http: httpx.Client, batched: str) -> None:
    body = {"model": batched, "prompt": "hello world", "max_tokens": 3, "echo": True, "logprobs": 1,
            "temperature": 0, "stream": True}  # fmt: skip
    chunks = []
    with http.stream("POST", "v1/completions", json=body) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: {"):
                chunks.append(httpx.Response(200, content=line[6:]).json())
    first = chunks[0]["choices"][0]
    assert first["text"] == "hello world"
    assert first["logprobs"]["tokens"] and first["logprobs"]["text_offset"][0] == 0
    later = [c["choices"][0]["logprobs"] for c in chunks[1:] if c["choices"][0]["logprobs"]]
    offsets = [o for block in [first["logprobs"], *later] for o in block["text_offset"]]
    assert offsets == sorted(offsets) and len(later) >= 1


def test_lm_evaluation_harness_request_shape(http: httpx.Client, batched: str) -> None:
    """lm-evaluation-harness's ``local-completions`` loglikelihood request and its parsing."""
    context, continuation = "hello world", " the model"
    body = {"model": batched, "prompt": context + continuation, "max_tokens": 1, "logprobs": 1,
            "echo": True, "temperature": 0, "seed": 1234}  # fmt: skip
    reply = http.post("v1/completions", json=body)
    assert reply.status_code == 200, reply.text
    logprobs = reply.json()["choices"][0]["logprobs"]
    context_only = http.post("v1/completions", json={**body, "prompt": context, "max_tokens": 0})
    ctxlen = len(context_only.json()["choices"][0]["logprobs"]["tokens"])
    # The harness sums token_logprobs[ctxlen:-1] (the last one is the generated token).
    scores = logprobs["token_logprobs"][ctxlen:-1]
    assert len(scores) >= 1 and all(value <= 0 for value in scores)
    is_greedy = all(
        value == max(top.values())
        for value, top in zip(scores, logprobs["top_logprobs"][ctxlen:-1], strict=True)
    )
    assert isinstance(is_greedy, bool)


def _harness_loglikelihood(choice: dict[str, Any], ctxlen: int) -> tuple[float, bool]:
    """lm-evaluation-harness 0.4's ``LocalCompletionsAPI.parse_logprobs``: the continuation's
    logprobs are ``token_logprobs[ctxlen:-1]`` (the last one is the generated token), greedy when
    each is the largest of its ``top_logprobs``."""
    scores = choice["logprobs"]["token_logprobs"][ctxlen:-1]
    tops = choice["logprobs"]["top_logprobs"][ctxlen:-1]
    return sum(scores), all(value == max(top.values()) for value, top in zip(scores, tops, strict=True))


def test_lm_evaluation_harness_token_id_prompts(http: httpx.Client, batched: str) -> None:
    """The harness tokenizes itself and sends ``prompt: [[context ids + continuation ids]]`` with
    ``max_tokens: 1``, ``logprobs: 1``, ``echo: true`` (older versions ``max_tokens: 0``). The
    loglikelihood it computes equals what the generation of those tokens scored, and so does its
    greedy flag."""
    context = "the model is"
    words = {"grammar": "root ::= [a-z]+", "repeat_penalty": 1.0}
    generated = http.post(
        "v1/completions",
        json={"model": batched, "prompt": context, "max_tokens": 6, "logprobs": 1, "temperature": 0, **words},
    ).json()["choices"][0]

    def ids(text: str) -> list[int]:
        reply = http.post("tokenize", json={"model": batched, "content": text, "add_special": False})
        return reply.json()["tokens"]

    # As the harness's _encode_pair: the continuation is what the whole text adds to the context.
    context_ids = ids(context)
    continuation_ids = ids(context + generated["text"])[len(context_ids) :]
    assert len(continuation_ids) == len(generated["logprobs"]["tokens"])  # letters tokenize back alike
    body = {"model": batched, "prompt": [context_ids + continuation_ids], "max_tokens": 1, "logprobs": 1,
            "echo": True, "temperature": 0, "seed": 1234, "repeat_penalty": 1.0}  # fmt: skip
    detokenized = http.post("detokenize", json={"model": batched, "tokens": context_ids + continuation_ids})
    spelled = detokenized.json()["content"]
    for shape in ([context_ids + continuation_ids], context_ids + continuation_ids):
        for max_tokens in (1, 0):
            reply = http.post("v1/completions", json={**body, "prompt": shape, "max_tokens": max_tokens})
            assert reply.status_code == 200, reply.text
            choice = reply.json()["choices"][0]
            assert choice["text"].startswith(spelled)  # the ids, as the model spells them
            scored = choice["logprobs"]["token_logprobs"]
            assert len(scored) == len(context_ids) + len(continuation_ids) + max_tokens
            if max_tokens == 1:
                loglikelihood, greedy = _harness_loglikelihood(choice, len(context_ids))
                assert loglikelihood == pytest.approx(sum(generated["logprobs"]["token_logprobs"]), abs=1e-3)
                # greedy as the generation's own raw top choices say (the grammar only steered it)
                raw_top = generated["logprobs"]["top_logprobs"]
                assert greedy == all(
                    value == max(top.values())
                    for value, top in zip(generated["logprobs"]["token_logprobs"], raw_top, strict=True)
                )
            tail = scored[len(context_ids) : len(context_ids) + len(continuation_ids)]
            assert tail == pytest.approx(generated["logprobs"]["token_logprobs"], abs=1e-4)
    other = ids(context + ("zzzz" if not generated["text"].startswith("z") else "qqqq"))[len(context_ids) :]
    choice = http.post("v1/completions", json={**body, "prompt": [context_ids + other]}).json()["choices"][0]
    unlikely, greedy = _harness_loglikelihood(choice, len(context_ids))
    assert not greedy and unlikely < sum(generated["logprobs"]["token_logprobs"])


@pytest.mark.parametrize(
    ("prompt", "extra"),
    [
        ([], {}),
        ([[]], {}),
        ([-1, 5], {}),
        ([[1, 2], [3]], {}),
        (["a", "b"], {}),
        (["a", 1], {}),
        ([1.5], {}),
        ([[10**6]], {}),  # outside the vocabulary
        ([[5, 6]], {"suffix": "after"}),
    ],
)
def test_bad_token_prompts_are_400s(http: httpx.Client, prompt: Any, extra: dict[str, Any]) -> None:
    for stream in (False, True):
        body = {"model": TINY, "prompt": prompt, "max_tokens": 1, "stream": stream, **extra}
        reply = http.post("v1/completions", json=body)
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["param"].startswith("prompt")


def test_gemma_logprobs(openai_client: OpenAI) -> None:
    reply = openai_client.completions.create(
        model=GEMMA_KEY, prompt="The capital of France is", max_tokens=4, logprobs=5, **GREEDY
    )
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None and logprobs.token_logprobs
    for value, top in zip(logprobs.token_logprobs, logprobs.top_logprobs, strict=True):
        assert value == max(top.values())
        assert sum(math.exp(v) for v in top.values()) <= 1 + 1e-6
    # Echo with a real tokenizer: the tokens spell the prompt (BOS, which the server added, is
    # left out), and every one has a logprob.
    prompt = "The capital of France is"
    scored = openai_client.completions.create(
        model=GEMMA_KEY, prompt=prompt, max_tokens=0, echo=True, logprobs=1, temperature=0
    ).choices[0]
    assert scored.text == prompt and scored.logprobs is not None
    assert "".join(scored.logprobs.tokens) == prompt
    assert scored.logprobs.text_offset[-1] == prompt.rindex(" is")
    assert all(value is not None and value <= 0 for value in scored.logprobs.token_logprobs)


@pytest.mark.parametrize(
    ("route", "body", "param"),
    [
        ("chat", {"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ("chat", {"top_logprobs": 3}, "top_logprobs"),
        ("chat", {"logprobs": False, "top_logprobs": 3}, "top_logprobs"),
        ("chat", {"logprobs": "yes"}, "logprobs"),
        ("chat", {"logprobs": True, "top_logprobs": -1}, "top_logprobs"),
        ("completions", {"logprobs": 21}, "logprobs"),
        ("completions", {"logprobs": True}, "logprobs"),
        ("completions", {"max_tokens": 0}, "max_tokens"),
        ("completions", {"echo": "yes"}, "echo"),
        ("chat", {"max_tokens": 0}, "max_tokens"),
        ("chat", {"logprobs": True, "top_logprobs": 3, "constrained_logprobs": True}, "constrained_logprobs"),
        ("chat", {"grammar": 'root ::= "a"', "constrained_logprobs": True}, "constrained_logprobs"),
    ],
)
def test_bad_logprobs_fields_are_400s(http: httpx.Client, route: str, body: dict, param: str) -> None:
    if route == "chat":
        request = {"model": TINY, "messages": [{"role": "user", "content": "hi"}], **body}
        reply = http.post("v1/chat/completions", json=request)
    else:
        reply = http.post("v1/completions", json={"model": TINY, "prompt": "hi", **body})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == param


def test_sdk_reports_the_bad_field(openai_client: OpenAI) -> None:
    with pytest.raises(BadRequestError, match="top_logprobs"):
        openai_client.chat.completions.create(
            model=TINY, messages=[{"role": "user", "content": "hi"}], logprobs=True, top_logprobs=25
        )
