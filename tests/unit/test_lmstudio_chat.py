"""The pure side of ``/api/v1/chat``: requests into Responses bodies, Responses events into LM
Studio's, and the result body (api/lmstudio_chat*.py)."""

from __future__ import annotations

import json

import pytest

from lm_jupyter.api.completions import Outcome, PromptProgress
from lm_jupyter.api.errors import APIError
from lm_jupyter.api.lmstudio_chat import V1ChatRequest, responses_body
from lm_jupyter.api.lmstudio_chat_events import V1ChatEvents, error_json, result
from lm_jupyter.api.requests import parse_request

MCP = {"type": "mcp_call", "name": "add", "arguments": '{"a": 1}', "server_label": "calc"}
PROVIDER = {"type": "ephemeral_mcp", "server_label": "calc"}


def test_request_becomes_a_responses_body() -> None:
    raw = {
        "model": "m",
        "input": [{"type": "text", "text": "a"}, {"type": "message", "content": "b"}],
        "system_prompt": "s",
        "reasoning": "high",
        "context_length": 2048,
        "seed": 7,
        "integrations": [{"type": "ephemeral_mcp", "server_label": "calc", "server_url": "http://x"}],
    }
    body = responses_body(parse_request(V1ChatRequest, json.dumps(raw).encode()), raw)
    assert body["input"] == [{"type": "message", "role": "user", "content": "a\n\nb"}]
    assert body["instructions"] == "s" and body["reasoning"] == {"effort": "high"}
    assert body["context_length"] == 2048 and body["seed"] == 7 and body["store"] is True
    assert body["tools"] == [
        {"type": "mcp", "server_label": "calc", "server_url": "http://x", "require_approval": "never"}
    ]
    plugin = parse_request(V1ChatRequest, b'{"model": "m", "input": "x", "integrations": ["mcp/p"]}')
    with pytest.raises(APIError) as refused:
        responses_body(plugin, {})
    assert refused.value.status == 404 and refused.value.param == "integrations.0"


def test_events_are_renamed_and_tool_calls_reported() -> None:
    chat = V1ChatEvents(hide_reasoning=False)
    added = {"type": "response.output_item.added"}
    done = {"type": "response.output_item.done"}
    assert chat.translate({**added, "item": {"type": "reasoning"}}) == [{"type": "reasoning.start"}]
    assert chat.translate({"type": "response.reasoning_text.delta", "delta": "hm"}) == [
        {"type": "reasoning.delta", "content": "hm"}
    ]
    assert chat.translate({"type": "response.output_text.delta", "delta": "Hi"}) == [
        {"type": "message.delta", "content": "Hi"}
    ]
    opened = chat.translate({**added, "item": {**MCP, "status": "in_progress"}})
    assert opened == [
        {"type": "tool_call.start", "tool": "add", "provider_info": PROVIDER},
        {"type": "tool_call.arguments", "tool": "add", "arguments": {"a": 1}, "provider_info": PROVIDER},
    ]
    ran = chat.translate({**done, "item": {**MCP, "status": "completed", "output": "2"}})
    assert ran == [
        {
            "type": "tool_call.success",
            "tool": "add",
            "arguments": {"a": 1},
            "output": "2",
            "provider_info": PROVIDER,
        }
    ]
    failed = chat.translate({**done, "item": {**MCP, "status": "failed", "error": {"message": "boom"}}})
    assert failed[0]["type"] == "tool_call.failure" and failed[0]["reason"] == "boom"
    assert failed[0]["metadata"]["type"] == "invalid_arguments"
    unknown = chat.translate({**done, "item": {"type": "function_call", "name": "nope", "arguments": "{}"}})
    assert unknown[0]["metadata"] == {"type": "invalid_name", "tool_name": "nope"}
    assert chat.translate({"type": "response.completed"}) == []
    error = chat.translate({"type": "error", "message": "bad", "code": "x", "param": None})
    assert error == [{"type": "error", "error": {"type": "internal_error", "message": "bad", "code": "x"}}]
    hidden = V1ChatEvents(hide_reasoning=True)
    assert hidden.translate({**added, "item": {"type": "reasoning"}}) == []
    assert hidden.translate({"type": "response.reasoning_text.delta", "delta": "hm"}) == []


def test_prompt_processing_opens_and_closes_around_its_chunks() -> None:
    chat = V1ChatEvents(hide_reasoning=False)
    first = chat.progress(PromptProgress(512, 1024, 0, 5.0))
    last = chat.progress(PromptProgress(1024, 1024, 0, 9.0))
    assert [e["type"] for e in first + last] == [
        "prompt_processing.start",
        "prompt_processing.progress",
        "prompt_processing.progress",
        "prompt_processing.end",
    ]
    assert (first[1]["progress"], last[0]["progress"]) == (0.5, 1.0)


def test_result_and_error_shapes() -> None:
    response = {
        "id": "resp_1",
        "store": True,
        "output": [
            {"type": "reasoning", "content": [{"text": "think"}]},
            {**MCP, "status": "completed", "output": "2"},
            {"type": "message", "content": [{"text": "3"}]},
        ],
    }
    outcome = Outcome("eosFound", 10, 5, time_to_first_token=0.5, generation_time=1.5, reasoning_tokens=2)
    body = result(response, [outcome], "m", load_time=1.25, hide_reasoning=False)
    assert [item["type"] for item in body["output"]] == ["reasoning", "tool_call", "message"]
    assert body["response_id"] == "resp_1" and body["model_instance_id"] == "m"
    assert body["stats"] == {
        "input_tokens": 10,
        "total_output_tokens": 5,
        "reasoning_output_tokens": 2,
        "tokens_per_second": 4.0,
        "time_to_first_token_seconds": 0.5,
        "model_load_time_seconds": 1.25,
    }
    assert error_json(APIError("gone", status=404, param="model", code="model_not_found")) == {
        "type": "model_not_found",
        "message": "gone",
        "code": "model_not_found",
        "param": "model",
    }
