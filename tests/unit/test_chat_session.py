"""%%chat's pure state: interpolation, folding streamed chunks, footers, history (kernel/chat_session.py)."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel

from lm_jupyter.kernel.chat_session import (
    ChatInputError,
    ChatSession,
    Reply,
    footer_text,
    interpolate,
    parse_structured,
    response_format,
)


class Point:
    x = 3


def test_interpolate_names_attributes_items_and_specs() -> None:
    ns = {"name": "Ada", "p": Point(), "items": {"k": [1, 2]}, "pi": 3.14159}
    assert (
        interpolate("Hi {name}, {p.x}, {items[k]}, {pi:.2f}, {name!r}", ns)
        == "Hi Ada, 3, [1, 2], 3.14, 'Ada'"
    )
    assert interpolate("{{name}} and }} {{", ns) == "{name} and } {"
    # braces that hold no name are left alone: code and JSON need no escaping
    assert interpolate('{"a": 1} def f(): {} { spaced }', ns) == '{"a": 1} def f(): {} { spaced }'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{missing}", "'missing' is not defined"),
        ("{p.nope}", "AttributeError"),
        ("{pi:q}", "Unknown format code"),
    ],
)
def test_interpolate_errors(text: str, message: str) -> None:
    with pytest.raises(ChatInputError, match=message):
        interpolate(text, {"p": Point(), "pi": 1.0})


def chunk(**delta: object) -> dict:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def test_reply_folds_text_reasoning_and_streamed_tool_calls() -> None:
    reply = Reply(requested_at=10.0)
    assert not reply.fold(chunk(role="assistant", content=""), 10.1)  # nothing visible yet
    assert reply.fold(chunk(reasoning_content="Let me "), 10.5)
    assert reply.fold(chunk(reasoning_content="see."), 10.6)
    assert reply.fold(chunk(content="Calling."), 10.7)
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "add", "arguments": ""}}
    assert reply.fold(chunk(tool_calls=[call]), 10.8)
    for piece in ('{"a": ', "1}"):
        reply.fold(chunk(tool_calls=[{"index": 0, "function": {"arguments": piece}}]), 10.9)
    reply.fold({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}, 11.0)
    reply.fold(
        {
            "choices": [],
            "usage": {
                "prompt_tokens": 30,
                "completion_tokens": 12,
                "prompt_tokens_details": {"cached_tokens": 8},
            },
        },
        11.0,
    )
    reply.ended_at = 11.5
    assert (reply.reasoning, reply.text, reply.finish_reason) == ("Let me see.", "Calling.", "tool_calls")
    assert reply.assistant_message() == {
        "role": "assistant",
        "content": "Calling.",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}
        ],
    }
    stats = reply.footer_stats()
    assert stats == {
        "completion_tokens": 12,
        "prompt_tokens": 30,
        "cached_tokens": 8,
        "ttft_s": 0.5,
        "tokens_per_second": 12.0,
        "finish_reason": "tool_calls",
    }


def test_draft_acceptance_in_the_footer() -> None:
    reply = Reply(requested_at=0.0)
    reply.fold(chunk(content="x"), 0.2)
    reply.fold(
        {
            "choices": [],
            "stats": {
                "tokens_per_second": 88.04,
                "draft_model": "small",
                "total_draft_tokens_count": 40,
                "accepted_draft_tokens_count": 30,
            },
        },
        1,
    )
    stats = reply.footer_stats()
    assert (stats["draft_total"], stats["draft_accepted"], stats["draft_model"]) == (40, 30, "small")
    assert stats["tokens_per_second"] == 88.0  # the server's own measurement wins
    assert (
        footer_text("m", stats)
        == "m · 1 token · 88.0 tok/s · 0.20s to first token · draft 30/40 accepted (75%)"
    )
    assert "stopped at the token limit" in footer_text(
        "m", {"completion_tokens": 5, "finish_reason": "length"}
    )


def test_session_builds_requests_and_keeps_history() -> None:
    session = ChatSession(system="Be brief.")
    turn = [{"role": "user", "content": "hi"}]
    body = session.request("m", turn, {"temperature": 0.5, "max_tokens": None})
    assert body == {
        "model": "m",
        "messages": [{"role": "system", "content": "Be brief."}, *turn],
        "temperature": 0.5,
    }
    session.commit([*turn, {"role": "assistant", "content": "hello"}], "hello")
    assert session.last_reply == "hello" and len(session.messages) == 2
    assert session.transcript() == "**system:** Be brief.\n\n**user:** hi\n\n**assistant:** hello"
    session.reset()
    assert session.messages == [] and session.system is None
    assert session.transcript() == "*No conversation yet.*"


class Answer(BaseModel):
    verdict: Literal["yes", "no"]


def test_json_schema_from_dicts_and_pydantic_models() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    fmt, cls = response_format(schema, "my schema!")
    assert cls is None
    assert fmt == {
        "type": "json_schema",
        "json_schema": {"name": "my_schema_", "schema": schema, "strict": True},
    }
    assert parse_structured('{"n": 2}', None) == {"n": 2}

    fmt, cls = response_format(Answer, "Answer")
    assert cls is Answer and fmt["json_schema"]["schema"]["required"] == ["verdict"]
    assert parse_structured('{"verdict": "no"}', Answer) == Answer(verdict="no")
    with pytest.raises(ChatInputError, match="not valid for the schema"):
        parse_structured('{"verdict": "maybe"}', Answer)
    with pytest.raises(ChatInputError, match="give a dict"):
        response_format([1], "x")
