"""LM Studio 0.4's ``POST /api/v1/chat`` on the tiny F32 models: stateful chats through the stored
responses, a just-in-time load and prompt processing announced on the stream, LM Studio's
field names and error shape (docs/lmstudio-rest-v1.md)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

TINY = "test/tiny-chat"
JIT = "test/tiny-long"  # loaded only by this module's stream test
ERROR_TYPES = {"model_not_found": "model_not_found", "plugin_not_found": "plugin_connection_error"}
LONG = "hello world " * 90  # about 1,450 tokens: three prompt chunks


def _events(http: httpx.Client, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    events = []
    with http.stream("POST", "api/v1/chat", json={**body, "stream": True}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                assert data["type"] == name
                events.append((name, data))
    return events


def test_a_chat_is_answered_in_lm_studios_fields(http: httpx.Client) -> None:
    reply = http.post("api/v1/chat", json={"model": TINY, "input": "hello", "max_output_tokens": 8})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model_instance_id"] == TINY
    assert [item["type"] for item in body["output"]] == ["message"]
    assert isinstance(body["output"][0]["content"], str)
    assert set(body["stats"]) - {"model_load_time_seconds"} == {  # that one only if this request loaded it
        "input_tokens",
        "total_output_tokens",
        "reasoning_output_tokens",
        "tokens_per_second",
        "time_to_first_token_seconds",
    }
    assert 0 < body["stats"]["total_output_tokens"] <= 8
    assert body["response_id"].startswith("resp_")


def test_previous_response_id_continues_the_stored_chat(http: httpx.Client) -> None:
    common = {"model": TINY, "max_output_tokens": 4, "system_prompt": "be brief"}
    first = http.post("api/v1/chat", json={**common, "input": "my favourite colour is blue"}).json()
    alone = http.post("api/v1/chat", json={**common, "input": "which colour?", "store": False}).json()
    assert "response_id" not in alone
    follow = http.post(
        "api/v1/chat", json={**common, "input": "which colour?", "previous_response_id": first["response_id"]}
    ).json()
    # the continuation's prompt holds the whole first exchange before the same new message
    grown = follow["stats"]["input_tokens"] - alone["stats"]["input_tokens"]
    assert grown >= first["stats"]["input_tokens"] - alone["stats"]["input_tokens"] + 1
    assert follow["response_id"] not in (first["response_id"],)
    stored = http.get(f"v1/responses/{follow['response_id']}")
    assert stored.status_code == 200 and stored.json()["previous_response_id"] == first["response_id"]
    # a branch from the first response does not see the follow-up
    branch = http.post(
        "api/v1/chat", json={**common, "input": "which colour?", "previous_response_id": first["response_id"]}
    ).json()
    assert branch["stats"]["input_tokens"] == follow["stats"]["input_tokens"]


def test_the_stream_announces_the_load_and_prompt_processing(http: httpx.Client) -> None:
    http.post("api/v1/models/unload", json={"instance_id": JIT})  # not loaded yet, or no longer
    events = _events(http, {"model": JIT, "input": LONG, "max_output_tokens": 4, "context_length": 3072})
    names = [name for name, _ in events]
    # llama.cpp's share of the weights read, relayed while the load runs
    loading = [data for name, data in events if name == "model_load.progress"]
    assert names[:2] == ["chat.start", "model_load.start"] and loading
    assert names[2 : 2 + len(loading)] == ["model_load.progress"] * len(loading)
    fractions = [data["progress"] for data in loading]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[0] >= 0
    assert all(data["model_instance_id"] == JIT for data in loading)
    events = [event for event in events if event[0] != "model_load.progress"]
    names = [name for name, _ in events]
    assert names[:3] == ["chat.start", "model_load.start", "model_load.end"]
    assert names[-1] == "chat.end"
    assert events[2][1]["load_time_seconds"] > 0
    prompt = [data for name, data in events if name.startswith("prompt_processing.")]
    assert prompt[0]["type"] == "prompt_processing.start" and prompt[-1]["type"] == "prompt_processing.end"
    fractions = [data["progress"] for data in prompt if data["type"] == "prompt_processing.progress"]
    assert len(fractions) == 3 and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert names.index("prompt_processing.end") < names.index("message.start") < names.index("message.end")
    deltas = "".join(data["content"] for name, data in events if name == "message.delta")
    result = events[-1][1]["result"]
    assert result["output"] == [{"type": "message", "content": deltas}]
    assert result["stats"]["model_load_time_seconds"] > 0
    assert result["model_instance_id"] == JIT
    listed = http.get("api/v1/models").json()["models"]
    config = next(m for m in listed if m["key"] == JIT)["loaded_instances"][0]["config"]
    assert config["context_length"] == 3072
    again = _events(http, {"model": JIT, "input": "hi", "max_output_tokens": 2, "store": False})
    assert again[0][0] == "chat.start"
    assert "model_load.start" not in [name for name, _ in again]
    assert "response_id" not in again[-1][1]["result"]
    http.post("api/v1/models/unload", json={"instance_id": JIT})


def test_input_items_are_one_user_message(http: httpx.Client) -> None:
    items = [{"type": "message", "content": "hello"}, {"type": "text", "text": "world"}]
    body = {"model": TINY, "max_output_tokens": 2, "store": False}
    as_items = http.post("api/v1/chat", json={**body, "input": items}).json()
    as_text = http.post("api/v1/chat", json={**body, "input": "hello\n\nworld"}).json()
    assert as_items["stats"]["input_tokens"] == as_text["stats"]["input_tokens"]


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"input": "hi"}, 400, "model", None),
        ({"model": TINY}, 400, "input", None),
        ({"model": TINY, "input": []}, 400, "input", None),
        ({"model": TINY, "input": [{"type": "video"}]}, 400, "input.0.type", None),
        (
            {"model": TINY, "input": [{"type": "image", "data_url": "data:image/png;base64,AA=="}]},
            400,
            "input.0",
            "unsupported_input",
        ),
        ({"model": TINY, "input": "hi", "reasoning": "max"}, 400, "reasoning", None),
        (
            {"model": TINY, "input": "hi", "reasoning": "on"},
            400,
            "reasoning",
            "unsupported_reasoning_setting",
        ),
        ({"model": TINY, "input": "hi", "context_length": 0}, 400, "context_length", None),
        ({"model": TINY, "input": "hi", "temperature": -1}, 400, "temperature", None),
        ({"model": TINY, "input": "hi", "max_output_tokens": 0}, 400, "max_output_tokens", None),
        ({"model": TINY, "input": "hi", "store": "yes"}, 400, "store", None),
        (
            {"model": TINY, "input": "hi", "integrations": ["mcp/playwright"]},
            404,
            "integrations.0",
            "plugin_not_found",
        ),
        (
            {"model": TINY, "input": "hi", "integrations": [{"type": "ephemeral_mcp", "server_label": "x"}]},
            400,
            "integrations.0.server_url",
            None,
        ),
        (
            {
                "model": TINY,
                "input": "hi",
                "integrations": [
                    {"type": "ephemeral_mcp", "server_label": "x", "server_url": "http://127.0.0.1:9"}
                ],
            },
            400,
            "integrations.0.type",
            "mcp_disabled",
        ),
        (
            {"model": TINY, "input": "hi", "previous_response_id": "resp_missing"},
            404,
            "previous_response_id",
            "previous_response_not_found",
        ),
        ({"model": "nobody/nothing", "input": "hi"}, 404, "model", "model_not_found"),
    ],
)
def test_bad_requests_get_lm_studios_error_shape(
    http: httpx.Client, body: dict[str, Any], status: int, param: str, code: str | None
) -> None:
    for stream in (False, True):
        response = http.post("api/v1/chat", json={**body, "stream": stream})
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/json")
        error = response.json()["error"]
        assert error["param"] == param
        assert error["type"] == ERROR_TYPES.get(code, "invalid_request")
        assert error["message"]
        if code is not None:
            assert error["code"] == code


def test_reasoning_streams_as_its_own_events_or_is_left_out(http: httpx.Client) -> None:
    """A tiny model forced (by a grammar, an extension field that passes through as on
    /v1/responses) to think, then answer: reasoning.* events, then message.*; ``reasoning: off``
    leaves the reasoning out of the events and the output."""
    forced = {"grammar": 'root ::= "<think>Compare the powers.</think>Yes: 1024 > 1000."'}
    body = {"model": "test/tiny-think", "input": "Is 2^10 > 1000?", "max_output_tokens": 64, **forced}
    events = _events(http, body)
    names = [name for name, _ in events]
    assert names.index("reasoning.start") < names.index("reasoning.end") < names.index("message.start")
    thought = "".join(data["content"] for name, data in events if name == "reasoning.delta")
    answer = "".join(data["content"] for name, data in events if name == "message.delta")
    assert (thought.strip(), answer.strip()) == ("Compare the powers.", "Yes: 1024 > 1000.")
    result = events[-1][1]["result"]
    assert [item["type"] for item in result["output"]] == ["reasoning", "message"]
    assert result["stats"]["reasoning_output_tokens"] > 0
    hidden = _events(http, {**body, "reasoning": "off"})
    assert not [name for name, _ in hidden if name.startswith("reasoning.")]
    assert hidden[-1][1]["result"]["output"] == [{"type": "message", "content": answer}]
    whole = http.post("api/v1/chat", json={**body, "reasoning": "off"}).json()
    assert whole["output"] == hidden[-1][1]["result"]["output"]
