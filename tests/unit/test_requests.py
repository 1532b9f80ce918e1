"""Request validation names the bad field exactly as a client wrote it."""

from __future__ import annotations

import json

import pytest

from lm_jupyter.api.errors import APIError
from lm_jupyter.api.requests import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, parse_request


def parse(model: type, body: object) -> object:
    return parse_request(model, json.dumps(body).encode())


def error_of(model: type, body: object) -> APIError:
    with pytest.raises(APIError) as caught:
        parse(model, body)
    return caught.value


def test_valid_chat_request_round_trips() -> None:
    request = parse(
        ChatCompletionRequest,
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
            ],
            "stop": "x",
            "max_tokens": -1,
            "user": "ignored",
        },
    )
    assert isinstance(request, ChatCompletionRequest)
    assert request.messages[0].text() == "ab"
    assert request.stop_list() == ["x"] and request.token_limit() is None


def test_max_completion_tokens_is_an_alias() -> None:
    request = parse(
        ChatCompletionRequest, {"model": "m", "messages": [{"role": "user"}], "max_completion_tokens": 7}
    )
    assert isinstance(request, ChatCompletionRequest) and request.token_limit() == 7


def test_ints_are_not_coerced_from_strings() -> None:
    error = error_of(CompletionRequest, {"model": "m", "prompt": "p", "seed": "1"})
    assert (error.param, error.code, error.status) == ("seed", "invalid_type", 400)
    assert "expected an integer" in error.message


def test_nested_field_paths() -> None:
    error = error_of(ChatCompletionRequest, {"model": "m", "messages": [{"role": "user"}, {"role": "x"}]})
    assert error.param == "messages.1.role"
    error = error_of(
        ChatCompletionRequest,
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
    )
    assert error.param == "messages.0.content.0.text"


def test_union_fields_report_one_type_error() -> None:
    error = error_of(ChatCompletionRequest, {"model": "m", "messages": [{"role": "user"}], "stop": 3})
    assert error.param == "stop" and error.code == "invalid_type"


def test_tool_message_needs_tool_call_id() -> None:
    error = error_of(ChatCompletionRequest, {"model": "m", "messages": [{"role": "tool", "content": "r"}]})
    assert error.param == "messages.0.tool_call_id"


@pytest.mark.parametrize("bias", [{"x": 1}, {"-1": 1}, {"3": 101}])
def test_logit_bias_checks(bias: dict) -> None:
    error = error_of(CompletionRequest, {"model": "m", "prompt": "p", "logit_bias": bias})
    assert error.param == "logit_bias" and error.code == "invalid_value"


def test_embedding_inputs() -> None:
    request = parse(EmbeddingRequest, {"model": "m", "input": "one"})
    assert isinstance(request, EmbeddingRequest) and request.inputs() == ["one"]
    assert error_of(EmbeddingRequest, {"model": "m", "input": [[1, 2]]}).param.startswith("input")


def test_body_shape_errors() -> None:
    for body, code in ((b"", "invalid_json"), (b"{", "invalid_json"), (b"3", "invalid_json")):
        with pytest.raises(APIError) as caught:
            parse_request(CompletionRequest, body)
        assert caught.value.code == code and caught.value.param is None
