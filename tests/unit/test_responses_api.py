"""The Responses API's pure layer: request validation, history -> messages, items and events."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from lm_jupyter.api.completions import Outcome
from lm_jupyter.api.errors import APIError
from lm_jupyter.api.requests import ChatCompletionRequest, parse_request
from lm_jupyter.api.responses_chat import DECLINED, chat_messages, chat_request, item_json, rename_param
from lm_jupyter.api.responses_events import ResponseEvents, new_response
from lm_jupyter.api.responses_request import FunctionCallItem, McpToolSpec, MessageItem, ResponsesRequest
from lm_jupyter.server.response_store import ResponseStore, StoredResponse


def parse(**body: object) -> ResponsesRequest:
    return parse_request(ResponsesRequest, json.dumps({"model": "m", "input": "hi", **body}).encode())


def error_of(**body: object) -> APIError:
    with pytest.raises(APIError) as caught:
        parse(**body)
    return caught.value


def test_string_input_is_one_user_message() -> None:
    [item] = parse().items()
    assert isinstance(item, MessageItem) and item.role == "user" and item.content == "hi"


def test_items_are_typed_and_messages_may_omit_type() -> None:
    request = parse(
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "a"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
        ]
    )
    assert [type(item).__name__ for item in request.items()] == [
        "MessageItem",
        "FunctionCallItem",
        "ReasoningItem",
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f"}]}, "input.0.arguments"),
        ({"input": [{"role": "user", "content": [{"type": "input_text"}]}]}, "input.0.content.0.text"),
        ({"input": ["text"]}, "input.0"),
        ({"input": [{"type": "nope"}]}, "input.0.type"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools.0"),
        ({"tools": [{"type": "mcp", "server_label": "x"}]}, "tools.0.server_url"),
        ({"tools": [{"type": "web_search"}]}, "tools.0.type"),
        ({"tool_choice": {"type": "function", "name": "f"}}, "tool_choice"),
        ({"metadata": {str(i): "v" for i in range(17)}}, "metadata"),
        ({"text": {"format": {"type": "json_schema"}}}, "text.format.schema"),
        ({"background": True}, "background"),
    ],
)
def test_errors_name_the_field(body: dict, param: str) -> None:
    error = error_of(**body)
    assert error.status == 400 and error.param == param, error.message
    assert param in error.message


def test_mcp_approval_rules() -> None:
    default = McpToolSpec(type="mcp", server_label="s", server_url="u")
    assert default.needs_approval("t")  # OpenAI's default: ask
    assert not McpToolSpec(
        type="mcp", server_label="s", server_url="u", require_approval="never"
    ).needs_approval("t")
    spec = McpToolSpec.model_validate(
        {
            "type": "mcp",
            "server_label": "s",
            "server_url": "u",
            "require_approval": {"never": {"tool_names": ["a"]}},
        }
    )
    assert not spec.needs_approval("a") and spec.needs_approval("b")
    spec = McpToolSpec.model_validate(
        {
            "type": "mcp",
            "server_label": "s",
            "server_url": "u",
            "require_approval": {"always": {"tool_names": ["a"]}},
        }
    )
    assert spec.needs_approval("a") and spec.needs_approval("b")
    limited = McpToolSpec.model_validate(
        {"type": "mcp", "server_label": "s", "server_url": "u", "allowed_tools": {"tool_names": ["a"]}}
    )
    assert limited.allows("a") and not limited.allows("b")
    assert (
        "headers" not in McpToolSpec(type="mcp", server_label="s", server_url="u", headers={"k": "v"}).echo()
    )


def test_history_becomes_chat_messages() -> None:
    items = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [],
         "content": [{"type": "reasoning_text", "text": "hm"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "c1", "name": "w", "arguments": '{"c":"A"}'},
        {"type": "function_call", "call_id": "c2", "name": "w", "arguments": '{"c":"B"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "sun"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "rain"}]},
        {"type": "mcp_list_tools", "id": "l", "server_label": "s", "tools": []},
        {"type": "mcp_call", "id": "m1", "name": "add", "arguments": "{}", "server_label": "s",
         "output": "3"},
        {"type": "mcp_call", "id": "m2", "name": "add", "arguments": "{}", "server_label": "s",
         "output": None, "error": {"type": "mcp_protocol_error", "code": 1, "message": "late"}},
        {"type": "mcp_approval_request", "id": "r1", "name": "add", "arguments": "{}", "server_label": "s"},
        {"type": "mcp_approval_response", "approval_request_id": "r1", "approve": False},
        {"type": "mcp_approval_request", "id": "r2", "name": "add", "arguments": "{}", "server_label": "s"},
    ]  # fmt: skip
    messages = chat_messages("Be brief.", items)
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert messages[1] == {"role": "user", "content": "Weather?"}
    assistant = messages[2]
    assert assistant["content"] == "Checking." and [c["id"] for c in assistant["tool_calls"]] == ["c1", "c2"]
    assert messages[3:5] == [
        {"role": "tool", "tool_call_id": "c1", "content": "sun"},
        {"role": "tool", "tool_call_id": "c2", "content": "rain"},
    ]
    assert messages[5]["tool_calls"][0]["id"] == "m1" and messages[5]["content"] is None
    assert messages[6] == {"role": "tool", "tool_call_id": "m1", "content": "3"}
    assert messages[8] == {"role": "tool", "tool_call_id": "m2", "content": "Error: late"}
    assert messages[9]["tool_calls"][0]["id"] == "r1" and messages[10]["content"] == DECLINED
    assert len(messages) == 11  # the unanswered approval request r2 is not shown
    # every message is one chat completions accepts
    parse_request(ChatCompletionRequest, json.dumps({"model": "m", "messages": messages}).encode())


def test_chat_request_maps_every_option() -> None:
    request = parse(
        instructions="sys",
        max_output_tokens=7,
        temperature=0.5,
        top_p=0.9,
        tools=[{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}],
        tool_choice={"type": "function", "name": "f"},
        parallel_tool_calls=False,
        text={"format": {"type": "json_schema", "name": "p", "schema": {"type": "object"}}},
        reasoning={"effort": "high"},
    )
    raw = {"ttl": 5, "draft_model": "d", "preset": "p", "top_k": 3, "grammar": None, "unknown": 1}
    extra = [{"type": "function", "function": {"name": "mcp_tool", "parameters": {}}}]
    body = chat_request(request, [{"role": "user", "content": "hi"}], extra, raw)
    assert body["max_tokens"] == 7 and body["temperature"] == 0.5 and body["top_p"] == 0.9
    assert body["ttl"] == 5 and body["draft_model"] == "d" and body["preset"] == "p" and body["top_k"] == 3
    assert "grammar" not in body and "unknown" not in body
    assert [t["function"]["name"] for t in body["tools"]] == ["f", "mcp_tool"]
    assert body["tools"][0]["function"] == {"name": "f", "parameters": {"type": "object"}}
    assert body["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert body["parallel_tool_calls"] is False and body["reasoning_effort"] == "high"
    assert body["response_format"]["json_schema"]["schema"] == {"type": "object"}
    chat = parse_request(ChatCompletionRequest, json.dumps(body).encode())
    assert chat.response_format is not None and chat.response_format.schema() == {"type": "object"}
    hidden = chat_request(request, [], extra, raw, offer_tools=False)
    assert "tools" not in hidden and "tool_choice" not in hidden


def test_chat_errors_are_renamed_to_responses_fields() -> None:
    error = rename_param(APIError("Invalid 'response_format.type': bad.", param="response_format.type"))
    assert error.param == "text.format.type" and "'text.format.type'" in error.message
    assert rename_param(APIError("x", param="tool_choice")).param == "tool_choice"


def outcome(stop: str = "eosFound", prompt: int = 10, completion: int = 5, cached: int = 0) -> Outcome:
    return Outcome(stop, prompt, completion, 0.1, 0.2, cached_tokens=cached, reasoning_tokens=2)


def test_events_for_reasoning_text_and_a_call() -> None:
    events = ResponseEvents(new_response(parse(), "m"))
    events.start()
    for delta in (
        {"reasoning_content": "think "},
        {"reasoning_content": "more"},
        {"content": "Hi"},
        {"content": "!"},
        {"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]},
    ):  # fmt: skip
        events.delta(delta)
    calls, held = events.end_round(truncated=False)
    response = events.finish([outcome(), outcome(prompt=20, cached=10)])
    emitted = events.drain()
    assert [e["sequence_number"] for e in emitted] == list(range(len(emitted)))
    assert [e["type"] for e in emitted] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    reasoning, message, call = response["output"]
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "think more"}]
    assert message["content"][0]["text"] == "Hi!" and message["status"] == "completed"
    assert call["arguments"] == '{"a":1}' and call["call_id"] == "call_1" and call["status"] == "completed"
    assert calls == [call] and held == []
    assert response["status"] == "completed" and response["output_text"] == "Hi!"
    assert response["usage"] == {
        "input_tokens": 30,
        "input_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 20},
        "output_tokens": 10,
        "output_tokens_details": {"reasoning_tokens": 4},
        "total_tokens": 40,
    }
    # the created event is a snapshot: later changes do not leak into it
    assert emitted[0]["response"]["output"] == [] and emitted[0]["response"]["status"] == "in_progress"


def test_held_calls_are_not_streamed_and_truncation_marks_items() -> None:
    events = ResponseEvents(new_response(parse(), "m"), held={"mcp_tool"})
    events.delta({"content": "x"})
    events.delta(
        {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "mcp_tool", "arguments": "{}"}}]}
    )
    events.delta({"tool_calls": [{"index": 1, "id": "d", "function": {"name": "f", "arguments": '{"a"'}}]})
    calls, held = events.end_round(truncated=True)
    assert calls == [] and held == [
        {"call_id": "c", "name": "mcp_tool", "arguments": "{}", "complete": False}
    ]
    assert [item["type"] for item in events.output] == ["message", "function_call"]
    # only the item the limit cut off is incomplete; the message had closed when the call began
    assert [item["status"] for item in events.output] == ["completed", "incomplete"]
    response = events.finish([outcome("maxPredictedTokensReached")])
    assert response["status"] == "incomplete" and response["incomplete_details"] == {
        "reason": "max_output_tokens"
    }
    assert events.drain()[-1]["type"] == "response.incomplete"


def test_a_cancelled_generation_is_a_cancelled_response() -> None:
    events = ResponseEvents(new_response(parse(), "m"))
    events.delta({"content": "partial"})
    events.end_round(truncated=False)
    assert events.finish([outcome("userStopped")])["status"] == "cancelled"
    assert events.drain()[-1]["type"] == "response.output_item.done"  # no terminal event


def test_failure_after_start() -> None:
    events = ResponseEvents(new_response(parse(), "m"))
    events.start()
    events.fail(APIError("worker died", status=500, type="server_error", code="internal_error"))
    error, failed = events.drain()[-2:]
    assert (
        error["type"] == "error" and error["message"] == "worker died" and error["code"] == "internal_error"
    )
    assert failed["type"] == "response.failed" and failed["response"]["status"] == "failed"
    assert failed["response"]["error"]["message"] == "worker died"


def test_input_items_get_ids() -> None:
    listed = item_json(MessageItem(role="user", content="hi"))
    assert listed["id"].startswith("msg_") and listed["content"] == [{"type": "input_text", "text": "hi"}]
    call = item_json(FunctionCallItem(type="function_call", call_id="c", name="f", arguments="{}"))
    assert call["id"].startswith("fc_")


def test_store_round_trip(tmp_path: Path) -> None:
    """Stored responses belong to the credential that stored them."""

    async def scenario() -> None:
        store = ResponseStore(tmp_path / "sub" / "r.sqlite3")
        response = new_response(parse(), "m")
        stored = StoredResponse(
            response, [{"type": "message", "id": "msg_1"}], [{"type": "message", "id": "h"}]
        )
        await store.put(stored, "token:a")
        again = await store.get(response["id"], "token:a")
        assert again == stored and [i["id"] for i in again.conversation()] == ["h", "msg_1"]
        # Another token neither sees nor deletes it; the Jupyter identity (None) sees everything.
        assert await store.get(response["id"], "token:b") is None
        assert not await store.delete(response["id"], "token:b")
        assert await store.get(response["id"], None) == stored
        assert await store.delete(response["id"], "token:a") and not await store.delete(response["id"], None)
        assert await store.get(response["id"], None) is None
        store.close()

    asyncio.run(scenario())


def test_templates_that_serialise_arguments_get_objects() -> None:
    """Qwen 2.5's template writes ``arguments | tojson``: a JSON string would be quoted twice."""
    from lm_jupyter.chat.prompt import prepare_chat

    messages = [
        {"role": "user", "content": "w?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "w", "arguments": '{"city": "Paris"}'}}]},
    ]  # fmt: skip
    for template, expected in (
        ("{% for m in messages %}{% for c in m.tool_calls or [] %}{{ c.function.arguments | tojson }}"
         "{% endfor %}{% endfor %}", '{"city": "Paris"}'),
        ("{% for m in messages %}{% for c in m.tool_calls or [] %}{{ c.function.arguments }}"
         "{% endfor %}{% endfor %}", '{"city": "Paris"}'),
    ):  # fmt: skip
        prompt = prepare_chat(template, messages, None, tool_choice=None, bos_token="", eos_token="").prompt
        assert prompt == expected
