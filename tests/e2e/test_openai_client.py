"""The official openai client against a real server: every parsed object must validate."""

from __future__ import annotations

import base64
import struct

import httpx
import numpy as np
import pytest
from openai import OpenAI

CHAT = "test/tiny-chat"
EMBED = "test/tiny-embed"
MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hello"}]


def test_list_models(openai_client: OpenAI) -> None:
    ids = {model.id for model in openai_client.models.list()}
    assert {CHAT, EMBED, "test/tiny-long", "google/gemma-3-270m"} <= ids
    model = next(iter(openai_client.models.list()))
    assert model.object == "model" and model.owned_by == "organization_owner"


def test_chat_non_streaming(openai_client: OpenAI) -> None:
    reply = openai_client.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=12, seed=1)
    assert reply.object == "chat.completion"
    assert reply.id.startswith("chatcmpl-")
    assert reply.model == CHAT
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.finish_reason in {"stop", "length"}
    assert reply.usage is not None
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    if choice.finish_reason == "length":
        assert reply.usage.completion_tokens == 12
    extra = reply.model_extra or {}
    assert extra["stats"] == {} and reply.system_fingerprint == CHAT


def test_usage_counts_the_whole_rendered_prompt(openai_client: OpenAI) -> None:
    short = openai_client.chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": "hello"}], max_tokens=1
    )
    with_system = openai_client.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=1)
    assert short.usage and with_system.usage
    # The system turn adds its text plus <|im_start|>system\n ... <|im_end|>\n markup.
    assert with_system.usage.prompt_tokens > short.usage.prompt_tokens + len("You are terse.") // 4


def test_usage_counts_tool_definitions(openai_client: OpenAI, http: httpx.Client) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    args = {"model": "test/tiny-tools", "messages": MESSAGES, "max_tokens": 1}
    plain = openai_client.chat.completions.create(**args)
    with_tools = openai_client.chat.completions.create(**args, tools=tools)  # type: ignore[arg-type]
    assert plain.usage and with_tools.usage
    assert with_tools.usage.prompt_tokens > plain.usage.prompt_tokens + 20
    assert http.get("api/v0/models/test/tiny-tools").json()["capabilities"] == ["tool_use"]


def test_chat_streaming_with_usage(openai_client: OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model=CHAT,
        messages=MESSAGES,
        max_tokens=16,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    whole = openai_client.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=16, temperature=0)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]
    assert all(c.id == chunks[0].id and c.object == "chat.completion.chunk" for c in chunks)


def test_streaming_without_usage_sends_none(openai_client: OpenAI) -> None:
    chunks = list(
        openai_client.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=4, stream=True)
    )
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason is not None


def test_completions(openai_client: OpenAI) -> None:
    reply = openai_client.completions.create(model=CHAT, prompt="hello world", max_tokens=8, temperature=0)
    assert reply.object == "text_completion"
    assert reply.id.startswith("cmpl-")
    assert reply.choices[0].finish_reason in {"stop", "length"}
    streamed = openai_client.completions.create(
        model=CHAT, prompt="hello world", max_tokens=8, temperature=0, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == reply.choices[0].text


def test_stop_strings_cut_output(openai_client: OpenAI) -> None:
    """Greedy output is deterministic; asking to stop at a piece of it must end just before it."""
    args = {
        "model": CHAT,
        "prompt": "the model",
        "max_tokens": 40,
        "temperature": 0,
        "logit_bias": {"2": -100},
    }
    full = openai_client.completions.create(**args).choices[0].text
    assert len(full) > 6
    stop = full[3:6]
    cut = full[: full.index(stop)]
    for stop_value in (stop, [stop, "\x00never"]):
        reply = openai_client.completions.create(**args, stop=stop_value)
        assert reply.choices[0].text == cut
        assert reply.choices[0].finish_reason == "stop"
    streamed = openai_client.completions.create(**args, stop=stop, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == cut


def test_seed_makes_sampling_repeatable(openai_client: OpenAI) -> None:
    args = {"model": CHAT, "messages": MESSAGES, "max_tokens": 16, "temperature": 1.0, "seed": 42}
    first = openai_client.chat.completions.create(**args).choices[0].message.content
    second = openai_client.chat.completions.create(**args).choices[0].message.content
    assert first == second


def test_sampling_options_are_accepted(openai_client: OpenAI) -> None:
    reply = openai_client.chat.completions.create(
        model=CHAT,
        messages=MESSAGES,
        max_tokens=-1 if False else 4,
        temperature=0.7,
        top_p=0.9,
        presence_penalty=0.5,
        frequency_penalty=0.5,
        logit_bias={"5": 10},
        extra_body={"top_k": 20, "min_p": 0.1, "repeat_penalty": 1.2},
    )
    assert reply.usage and reply.usage.completion_tokens <= 4


def test_logit_bias_steers_tokens(http: httpx.Client) -> None:
    """+100 on one token id makes greedy decoding emit only that token."""
    body = {
        "model": CHAT,
        "prompt": "hello",
        "max_tokens": 5,
        "temperature": 0,
        "logit_bias": {str(5 + 256 + 2): 100},  # the word "▁hello"
    }
    reply = http.post("v1/completions", json=body).json()
    assert reply["choices"][0]["text"].strip().split() == ["hello"] * 5


def test_max_tokens_minus_one_runs_until_eos_or_context(http: httpx.Client) -> None:
    body = {"model": CHAT, "prompt": "a", "max_tokens": -1, "temperature": 0.8, "seed": 3}
    reply = http.post("v1/completions", json=body).json()
    assert reply["choices"][0]["finish_reason"] in {"stop", "length"}
    assert reply["usage"]["completion_tokens"] >= 1


def _floats(data: str) -> list[float]:
    raw = base64.b64decode(data)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def test_embeddings_float_and_base64(openai_client: OpenAI) -> None:
    floats = openai_client.embeddings.create(model=EMBED, input=["hello world", "a"], encoding_format="float")
    assert [d.index for d in floats.data] == [0, 1]
    vector = np.array(floats.data[0].embedding)
    assert vector.shape == (64,)
    assert abs(np.linalg.norm(vector) - 1) < 1e-4  # normalised like LM Studio
    assert floats.usage.prompt_tokens > 0
    encoded = openai_client.embeddings.create(
        model=EMBED, input=["hello world", "a"], encoding_format="base64"
    )
    assert np.allclose(_floats(encoded.data[0].embedding), vector, atol=1e-6)  # type: ignore[arg-type]
    # Without an explicit format the SDK asks for base64 and decodes it itself.
    default = openai_client.embeddings.create(model=EMBED, input=["hello world", "a"])
    assert np.allclose(default.data[1].embedding, floats.data[1].embedding, atol=1e-6)
    single = openai_client.embeddings.create(model=EMBED, input="hello world")
    assert np.allclose(single.data[0].embedding, vector, atol=1e-6)


def test_embeddings_base64_wire_format(http: httpx.Client) -> None:
    body = {"model": EMBED, "input": "hello world", "encoding_format": "base64"}
    data = http.post("v1/embeddings", json=body).json()["data"][0]["embedding"]
    assert isinstance(data, str) and len(_floats(data)) == 64


def test_v0_models(http: httpx.Client) -> None:
    http.post("api/v1/models/load", json={"model": CHAT}).raise_for_status()
    listing = http.get("api/v0/models").json()
    assert listing["object"] == "list"
    entries = {entry["id"]: entry for entry in listing["data"]}
    chat = entries[CHAT]
    assert chat["type"] == "llm" and chat["publisher"] == "test" and chat["arch"] == "llama"
    assert chat["compatibility_type"] == "gguf" and chat["quantization"] == "F32"
    assert chat["state"] == "loaded" and chat["loaded_context_length"] == 4096
    assert chat["max_context_length"] == 4096
    assert entries[EMBED]["type"] == "embeddings"
    gemma = entries["google/gemma-3-270m"]
    assert gemma["arch"] == "gemma3" and gemma["quantization"] == "Q4_K_M"
    assert gemma["max_context_length"] == 32768
    one = http.get("api/v0/models/test/tiny-chat").json()
    assert one["id"] == CHAT
    base = http.get("api/v0/models/test/tiny-base").json()
    assert base["state"] in {"loaded", "not-loaded"} and "capabilities" not in base


@pytest.mark.parametrize("route", ["api/v0/chat/completions", "api/v0/completions"])
def test_v0_generation_has_stats_model_info_runtime(http: httpx.Client, route: str) -> None:
    body = {"model": CHAT, "max_tokens": 6, "temperature": 0, "logit_bias": {"2": -100, "4": -100}}
    body |= {"messages": MESSAGES} if "chat" in route else {"prompt": "hello"}
    reply = http.post(route, json=body).json()
    stats = reply["stats"]
    assert stats["stop_reason"] == "maxPredictedTokensReached"
    assert stats["tokens_per_second"] > 0 and 0 < stats["time_to_first_token"] <= stats["generation_time"]
    assert reply["model_info"] == {"arch": "llama", "quant": "F32", "format": "gguf", "context_length": 4096}
    assert reply["runtime"]["supported_formats"] == ["gguf"]


def test_v0_streaming_final_chunk_has_stats(http: httpx.Client) -> None:
    body = {"model": CHAT, "messages": MESSAGES, "max_tokens": 3, "stream": True}
    with http.stream("POST", "api/v0/chat/completions", json=body) as response:
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    import json

    final = json.loads(events[-2])
    assert final["choices"][0]["finish_reason"] and "stop_reason" in final["stats"]


def test_v0_embeddings(http: httpx.Client) -> None:
    reply = http.post("api/v0/embeddings", json={"model": EMBED, "input": ["x"]}).json()
    assert reply["object"] == "list" and len(reply["data"][0]["embedding"]) == 64
