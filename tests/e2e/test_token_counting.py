"""Token counting: llama-server's ``/tokenize`` and ``/detokenize``, OpenAI's
``/v1/responses/input_tokens`` (Anthropic's ``count_tokens`` is in test_anthropic.py).

Counts must equal what the model is really fed, chat template included: each is checked
against the ``usage`` of a real request with the same input.
"""

from __future__ import annotations

import httpx
import pytest
from openai import OpenAI

from tests.conftest import GEMMA_KEY
from tests.e2e.test_lifecycle import unload_all

CHAT = "test/tiny-chat"
TOOLS_MODEL = "test/tiny-tools"
BOS, IM_END = 1, 4  # tests/tiny_gguf.py's control tokens
BYTE = 5  # the id of <0x00>; byte b is BYTE + b


def tokenize(http: httpx.Client, **body: object) -> list:
    response = http.post("tokenize", json={"model": CHAT, **body})
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"tokens"}
    return response.json()["tokens"]


def test_tokenize_with_llama_servers_options(http: httpx.Client) -> None:
    plain = tokenize(http, content="hello world")
    assert plain and all(isinstance(token, int) for token in plain)
    assert tokenize(http, content="hello world", add_special=True) == [BOS, *plain]
    assert tokenize(http, content="<|im_end|>") == [IM_END]  # parse_special defaults to true
    as_text = tokenize(http, content="<|im_end|>", parse_special=False)
    assert IM_END not in as_text and len(as_text) > 1
    pieces = tokenize(http, content="hello world", add_special=True, with_pieces=True)
    assert [piece["id"] for piece in pieces] == [BOS, *plain] and pieces[0]["piece"] == "<s>"
    # A piece that is not valid UTF-8 on its own is its bytes, as llama-server sends it.
    assert tokenize(http, content="<|im_end|>é", with_pieces=True)[-2:] == [
        {"id": BYTE + 0xC3, "piece": [0xC3]},
        {"id": BYTE + 0xA9, "piece": [0xA9]},
    ]


def test_detokenize(http: httpx.Client) -> None:
    hello, world = 261 + 2, 261 + 3  # "▁hello", "▁world" in the tiny vocabulary
    response = http.post("detokenize", json={"model": CHAT, "tokens": [BOS, hello, world, IM_END]})
    assert response.status_code == 200 and response.json() == {"content": "<s> hello world<|im_end|>"}
    assert http.post("detokenize", json={"model": CHAT, "tokens": []}).json() == {"content": ""}


@pytest.mark.slow
def test_tokenize_round_trip_on_a_real_vocabulary(http: httpx.Client) -> None:
    text = "Hello, world! Ünïcödé 😀 and <b>tags</b>"
    tokens = http.post("tokenize", json={"model": GEMMA_KEY, "content": text}).json()["tokens"]
    assert 5 < len(tokens) < len(text)
    back = http.post("detokenize", json={"model": GEMMA_KEY, "tokens": tokens}).json()["content"]
    assert back == text


def test_without_a_model_the_only_loaded_one_is_used(http: httpx.Client) -> None:
    unload_all(http)
    response = http.post("tokenize", json={"content": "hi"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "model"
    assert "exactly one LLM" in response.json()["error"]["message"]
    http.post("api/v1/models/load", json={"model": CHAT}).raise_for_status()
    assert http.post("tokenize", json={"content": "<|im_end|>"}).json() == {"tokens": [IM_END]}
    assert http.post("detokenize", json={"tokens": [IM_END]}).json() == {"content": "<|im_end|>"}
    http.post("api/v1/models/load", json={"model": TOOLS_MODEL}).raise_for_status()
    response = http.post("detokenize", json={"tokens": [IM_END]})
    assert response.status_code == 400 and CHAT in response.json()["error"]["message"]
    unload_all(http)


@pytest.mark.parametrize(
    ("route", "body", "param", "status"),
    [
        ("tokenize", {"model": CHAT}, "content", 400),
        ("tokenize", {"model": CHAT, "content": 3}, "content", 400),
        ("tokenize", {"model": CHAT, "content": "x", "with_pieces": "yes"}, "with_pieces", 400),
        ("tokenize", {"model": "nobody/nothing", "content": "x"}, "model", 404),
        ("detokenize", {"model": CHAT}, "tokens", 400),
        ("detokenize", {"model": CHAT, "tokens": [1, "2"]}, "tokens.1", 400),
        ("detokenize", {"model": CHAT, "tokens": [1, 99999]}, "tokens.1", 400),
        ("detokenize", {"model": CHAT, "tokens": [-1]}, "tokens.0", 400),
    ],
)
def test_bad_input(http: httpx.Client, route: str, body: dict, param: str, status: int) -> None:
    response = http.post(route, json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param


def test_responses_input_tokens_equal_the_responses_usage(openai_client: OpenAI) -> None:
    tools = [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    request = {
        "model": TOOLS_MODEL,
        "instructions": "You check the weather.",
        "input": [
            {"role": "user", "content": "Weather in Lyon?"},
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "get_weather",
                "arguments": '{"city": "Lyon"}',
            },
            {"type": "function_call_output", "call_id": "c1", "output": "18C"},
        ],
        "tools": tools,
    }
    counted = openai_client.responses.input_tokens.count(**request)  # type: ignore[arg-type]
    assert counted.object == "response.input_tokens"
    reply = openai_client.responses.create(**request, max_output_tokens=1, store=False)  # type: ignore[arg-type]
    assert reply.usage is not None and counted.input_tokens == reply.usage.input_tokens
    without_tools = openai_client.responses.input_tokens.count(
        model=TOOLS_MODEL,
        input=request["input"],
        instructions=request["instructions"],  # type: ignore[arg-type]
    )
    assert without_tools.input_tokens < counted.input_tokens


def test_responses_input_tokens_follow_previous_response_id(openai_client: OpenAI) -> None:
    first = openai_client.responses.create(model=CHAT, input="Hi", max_output_tokens=3)
    follow = {"model": CHAT, "input": "And then?", "previous_response_id": first.id}
    counted = openai_client.responses.input_tokens.count(**follow)  # type: ignore[arg-type]
    reply = openai_client.responses.create(**follow, max_output_tokens=1)  # type: ignore[arg-type]
    assert reply.usage is not None and counted.input_tokens == reply.usage.input_tokens


def test_responses_input_tokens_errors(http: httpx.Client) -> None:
    missing = http.post("v1/responses/input_tokens", json={"model": CHAT})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "input"
    unknown = http.post("v1/responses/input_tokens", json={"model": "nobody/nothing", "input": "x"})
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "model"
    gone = http.post(
        "v1/responses/input_tokens", json={"model": CHAT, "input": "x", "previous_response_id": "resp_x"}
    )
    assert gone.status_code == 404 and gone.json()["error"]["param"] == "previous_response_id"
    assert http.get("v1/responses/input_tokens").status_code == 405
