"""Every bad input gets a 4xx in OpenAI's error format naming the bad field; the server stays healthy."""

from __future__ import annotations

import json

import httpx
import pytest

CHAT = "test/tiny-chat"
MSGS = [{"role": "user", "content": "hi"}]


def _error(response: httpx.Response, status: int, param: str | None, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    assert error["message"]
    return error


def test_malformed_json(http: httpx.Client) -> None:
    response = http.post("v1/chat/completions", content=b'{"model": "x", "messages": [', headers={})
    error = _error(response, 400, None, "invalid_json")
    assert "not valid JSON" in error["message"]


def test_empty_body_and_non_object(http: httpx.Client) -> None:
    _error(http.post("v1/chat/completions", content=b""), 400, None, "invalid_json")
    _error(http.post("v1/chat/completions", content=b"[1, 2]"), 400, None, "invalid_json")


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": MSGS}, "model", "missing_required_parameter"),
        ({"model": CHAT}, "messages", "missing_required_parameter"),
        ({"model": CHAT, "messages": []}, "messages", "invalid_value"),
        ({"model": 7, "messages": MSGS}, "model", "invalid_type"),
        ({"model": CHAT, "messages": "hi"}, "messages", "invalid_type"),
        (
            {"model": CHAT, "messages": [{"role": "wizard", "content": "x"}]},
            "messages.0.role",
            "invalid_value",
        ),
        ({"model": CHAT, "messages": [{"content": "x"}]}, "messages.0.role", "missing_required_parameter"),
        ({"model": CHAT, "messages": [{"role": "user", "content": 5}]}, "messages.0.content", "invalid_type"),
        ({"model": CHAT, "messages": [{"role": "tool", "content": "x"}]}, "messages.0.tool_call_id", None),
        ({"model": CHAT, "messages": MSGS, "max_tokens": "10"}, "max_tokens", "invalid_type"),
        ({"model": CHAT, "messages": MSGS, "max_tokens": -5}, "max_tokens", "invalid_value"),
        ({"model": CHAT, "messages": MSGS, "max_tokens": 0}, "max_tokens", "invalid_value"),
        ({"model": CHAT, "messages": MSGS, "temperature": 3}, "temperature", "invalid_value"),
        ({"model": CHAT, "messages": MSGS, "temperature": "hot"}, "temperature", "invalid_type"),
        ({"model": CHAT, "messages": MSGS, "top_p": 1.5}, "top_p", "invalid_value"),
        ({"model": CHAT, "messages": MSGS, "stop": 5}, "stop", "invalid_type"),
        ({"model": CHAT, "messages": MSGS, "stop": ["a", "b", "c", "d", "e"]}, "stop", "invalid_value"),
        ({"model": CHAT, "messages": MSGS, "stream": "yes"}, "stream", "invalid_type"),
        ({"model": CHAT, "messages": MSGS, "n": 2}, "n", "invalid_value"),
        ({"model": CHAT, "messages": MSGS, "logit_bias": {"abc": 1}}, "logit_bias", "invalid_value"),
        ({"model": CHAT, "messages": MSGS, "logit_bias": {"5": 500}}, "logit_bias", "invalid_value"),
        ({"model": CHAT, "messages": MSGS, "logit_bias": {"5": "x"}}, "logit_bias.5", "invalid_type"),
        ({"model": CHAT, "messages": MSGS, "logit_bias": {"999999": 1}}, "logit_bias", "invalid_value"),
        (
            {"model": CHAT, "messages": MSGS, "stream_options": {"include_usage": 1}},
            "stream_options.include_usage",
            "invalid_type",
        ),
    ],
)
def test_bad_chat_fields(http: httpx.Client, body: dict, param: str, code: str | None) -> None:
    for stream in (False, True):
        response = http.post(
            "v1/chat/completions", json={**body, "stream": stream} if "stream" not in body else body
        )
        _error(response, 400, param, code)


@pytest.mark.parametrize(
    ("route", "body", "param"),
    [
        ("v1/completions", {"model": CHAT}, "prompt"),
        ("v1/completions", {"model": CHAT, "prompt": [1.5]}, "prompt.0"),
        ("v1/completions", {"model": CHAT, "prompt": ["a", "b"]}, "prompt"),
        ("v1/embeddings", {"model": "test/tiny-embed"}, "input"),
        ("v1/embeddings", {"model": "test/tiny-embed", "input": [1, 2]}, "input.0"),
        ("v1/embeddings", {"model": "test/tiny-embed", "input": []}, "input"),
        (
            "v1/embeddings",
            {"model": "test/tiny-embed", "input": "x", "encoding_format": "hex"},
            "encoding_format",
        ),
    ],
)
def test_bad_completion_and_embedding_fields(http: httpx.Client, route: str, body: dict, param: str) -> None:
    _error(http.post(route, json=body), 400, param)


def test_unknown_model_says_how_to_get_it(http: httpx.Client) -> None:
    for stream in (False, True):
        response = http.post(
            "v1/chat/completions", json={"model": "nobody/nothing", "messages": MSGS, "stream": stream}
        )
        error = _error(response, 404, "model", "model_not_found")
        assert "'nobody/nothing' is not downloaded" in error["message"] and "lmj import" in error["message"]
    _error(http.get("api/v0/models/nobody/nothing"), 404, "model", "model_not_found")


def test_wrong_model_type_for_route(http: httpx.Client) -> None:
    _error(
        http.post("v1/embeddings", json={"model": CHAT, "input": "x"}), 400, "model", "model_not_embedding"
    )
    response = http.post("v1/chat/completions", json={"model": "test/tiny-embed", "messages": MSGS})
    _error(response, 400, "model", "model_not_llm")


def test_model_without_template_or_fallback(http: httpx.Client) -> None:
    response = http.post("v1/chat/completions", json={"model": "test/tiny-base", "messages": MSGS})
    error = _error(response, 400, "model", "no_chat_template")
    assert "/v1/completions" in error["message"]
    # The same model still works for completions, which need no template.
    assert http.post(
        "v1/completions", json={"model": "test/tiny-base", "prompt": "a", "max_tokens": 2}
    ).is_success


def test_prompt_longer_than_context_is_a_400_not_an_empty_stream(http: httpx.Client) -> None:
    loaded = http.post(
        "api/v1/models/load",
        json={"model": CHAT, "context_length": 64, "identifier": "tiny-64", "echo_load_config": True},
    )
    assert loaded.status_code == 200, loaded.text
    n_ctx = loaded.json()["load_config"]["context_length"]  # llama.cpp rounds small contexts up
    try:
        long_text = "hello world " * 100
        for stream in (False, True):
            response = http.post(
                "v1/chat/completions",
                json={
                    "model": "tiny-64",
                    "messages": [{"role": "user", "content": long_text}],
                    "stream": stream,
                },
            )
            error = _error(response, 400, "messages", "context_length_exceeded")
            assert f"context length of {n_ctx} tokens" in error["message"]
            assert "--context-length" in error["message"]
        response = http.post("v1/completions", json={"model": "tiny-64", "prompt": long_text})
        _error(response, 400, "prompt", "context_length_exceeded")
        # The instance is still healthy for a prompt that fits.
        ok = http.post("v1/completions", json={"model": "tiny-64", "prompt": "hi", "max_tokens": 3})
        assert ok.status_code == 200
    finally:
        http.post("api/v1/models/unload", json={"instance_id": "tiny-64"})


def test_embedding_input_longer_than_context(http: httpx.Client) -> None:
    http.post(
        "api/v1/models/load",
        json={"model": "test/tiny-embed", "context_length": 32, "identifier": "embed-32"},
    ).raise_for_status()
    try:
        response = http.post(
            "v1/embeddings", json={"model": "embed-32", "input": ["ok", "hello world " * 50]}
        )
        error = _error(response, 400, "input", "context_length_exceeded")
        assert "Input 1" in error["message"]
    finally:
        http.post("api/v1/models/unload", json={"instance_id": "embed-32"})


def test_load_and_unload_errors(http: httpx.Client) -> None:
    _error(http.post("api/v1/models/load", json={"model": "nobody/nothing"}), 404, "model", "model_not_found")
    _error(http.post("api/v1/models/load", json={}), 400, "model", "missing_required_parameter")
    response = http.post("api/v1/models/load", json={"model": CHAT, "context_length": 10**6})
    _error(response, 400, "context_length")
    response = http.post("api/v1/models/unload", json={"instance_id": "not-loaded"})
    _error(response, 404, "instance_id", "model_not_loaded")
    http.post("api/v1/models/load", json={"model": CHAT, "identifier": "dup"}).raise_for_status()
    try:
        response = http.post("api/v1/models/load", json={"model": CHAT, "identifier": "dup"})
        _error(response, 409, "identifier", "identifier_in_use")
    finally:
        http.post("api/v1/models/unload", json={"instance_id": "dup"})


def test_server_is_healthy_after_all_that(http: httpx.Client) -> None:
    body = {"model": CHAT, "messages": MSGS, "max_tokens": 3}
    assert http.post("v1/chat/completions", json=body).status_code == 200
    assert json.loads(http.get("v1/models").text)["object"] == "list"


def test_load_and_unload_on_api_v0_name_the_right_route(http: httpx.Client) -> None:
    """LM Studio loads and unloads under /api/v1 only; /api/v0 says where to go, not "Bad request"."""
    for action, field in (("load", "model"), ("unload", "instance_id")):
        response = http.post(f"api/v0/models/{action}", json={"model_key": CHAT})
        error = _error(response, 404, None, "unknown_url")
        assert f"POST /api/v1/models/{action}" in error["message"] and f'"{field}"' in error["message"]


def test_load_with_a_misnamed_field_names_it(http: httpx.Client) -> None:
    error = _error(http.post("api/v1/models/load", json={"model_key": CHAT}), 400, "model")
    assert "model_key" in error["message"] and '"model"' in error["message"]
