"""The pure parts of remote upstreams: wire formats, health ordering, the config file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lm_jupyter.api.errors import APIError
from lm_jupyter.api.remote import (
    error_message,
    parse_embeddings,
    parse_listing,
    upstream_body,
)
from lm_jupyter.chat.events import ReasoningDelta, TextDelta, ToolCallArgs, ToolCallStart
from lm_jupyter.chat.output import AssistantMessage
from lm_jupyter.chat.upstream_output import ChunkReader, UpstreamStreamError
from lm_jupyter.engine.remote.health import Health
from lm_jupyter.engine.remote.turn import reasoning_family
from lm_jupyter.server.remote_config import RemoteConfig, make_upstream


def chunk(delta: dict | None = None, finish: str | None = None, **extra: object) -> str:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return json.dumps({"object": "chat.completion.chunk", "choices": choices, **extra})


def test_upstream_body_drops_our_fields_and_always_streams_with_usage() -> None:
    body = upstream_body(
        {"model": "m", "messages": [], "ttl": 60, "draft_model": "d", "reasoning_format": "none",
         "stream": False, "max_tokens": -1, "temperature": 0.2, "chat_template_kwargs": {"x": 1}}
    )  # fmt: skip
    assert body == {
        "model": "m", "messages": [], "temperature": 0.2, "chat_template_kwargs": {"x": 1},
        "stream": True, "stream_options": {"include_usage": True},
    }  # fmt: skip
    assert upstream_body({"model": "m", "max_tokens": 5})["max_tokens"] == 5


def test_listing_reads_context_lengths_and_refuses_other_shapes() -> None:
    listed = parse_listing(
        {"data": [{"id": "a", "max_model_len": 8192}, {"id": "b"}, {"id": "c", "n_ctx": 512}]}
    )
    assert [(m.id, m.context_length) for m in listed] == [("a", 8192), ("b", None), ("c", 512)]
    for bad in ({"models": []}, {"data": [{"name": "x"}]}, ["a"]):
        with pytest.raises(ValueError):
            parse_listing(bad)


def test_chunks_become_the_local_events_whichever_reasoning_field() -> None:
    reader = ChunkReader(chat=True)
    assert reader.feed(chunk({"role": "assistant", "content": ""})) == []
    assert reader.feed(chunk({"reasoning_content": "hmm"})) == [ReasoningDelta("hmm")]
    assert reader.feed(chunk({"reasoning": " so"})) == [ReasoningDelta(" so")]
    assert reader.feed(chunk({"content": "Hi"})) == [TextDelta("Hi")]
    call = {"index": 3, "id": "call_x", "type": "function", "function": {"name": "f", "arguments": '{"a"'}}
    assert reader.feed(chunk({"tool_calls": [call]})) == [
        ToolCallStart(0, "call_x", "f"),
        ToolCallArgs(0, '{"a"'),
    ]
    more = {"index": 3, "function": {"arguments": ": 1}"}}
    assert reader.feed(chunk({"tool_calls": [more]}, "tool_calls")) == [ToolCallArgs(0, ": 1}")]
    usage = {"prompt_tokens": 7, "completion_tokens": 9, "prompt_tokens_details": {"cached_tokens": 4}}
    assert reader.feed(chunk(None, usage=usage)) == []
    assert reader.feed("[DONE]") == [] and reader.done
    outcome = reader.outcome(0.5, 2.0, stopped=False)
    assert (outcome.stop_reason, outcome.finish_reason) == ("toolCalls", "tool_calls")
    assert (outcome.prompt_tokens, outcome.completion_tokens, outcome.cached_tokens) == (7, 9, 4)
    assert reader.outcome(0.5, 2.0, stopped=True).stop_reason == "userStopped"


def test_events_rebuild_the_message_under_the_clients_field() -> None:
    reader = ChunkReader(chat=True)
    message = AssistantMessage("reasoning")
    deltas = [
        message.add(event)
        for payload in (chunk({"reasoning_content": "think"}), chunk({"content": "answer"}, "stop"))
        for event in reader.feed(payload)
    ]
    assert deltas == [{"reasoning": "think"}, {"content": "answer"}]
    assert message.message() == {
        "role": "assistant",
        "content": "answer",
        "reasoning": "think",
    }


def test_completion_chunks_and_counts_without_usage() -> None:
    reader = ChunkReader(chat=False)
    for text in ("a", "", "b"):
        reader.feed(json.dumps({"choices": [{"index": 0, "text": text, "finish_reason": None}]}))
    reader.feed(json.dumps({"choices": [{"index": 0, "text": "", "finish_reason": "length"}]}))
    outcome = reader.outcome(0.1, 0.2, stopped=False)
    assert (outcome.completion_tokens, outcome.stop_reason) == (2, "maxPredictedTokensReached")


def test_error_events_and_bad_chunks_raise() -> None:
    with pytest.raises(UpstreamStreamError, match="worker died"):
        ChunkReader(chat=True).feed(json.dumps({"error": {"message": "worker died"}}))
    for bad in ("not json", "[1]"):
        with pytest.raises(ValueError):
            ChunkReader(chat=True).feed(bad)


def test_error_messages_in_every_shape_upstreams_use() -> None:
    assert error_message(400, b'{"error": {"message": "too long", "type": "x"}}') == "too long"
    assert (
        error_message(422, b'{"detail": [{"loc": ["body"], "msg": "bad"}]}')
        == '[{"loc": ["body"], "msg": "bad"}]'
    )
    assert error_message(400, b'{"message": "vLLM says no", "object": "error"}') == "vLLM says no"
    assert error_message(502, b"<html>Bad Gateway</html>") == "<html>Bad Gateway</html>"
    assert error_message(500, b"") == "HTTP 500"


def test_embeddings_in_input_order() -> None:
    body = {
        "data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1.0]}],
        "usage": {"prompt_tokens": 3},
    }
    assert parse_embeddings(body, 2) == ([[1.0], [2.0]], 3)
    with pytest.raises(ValueError):
        parse_embeddings(body, 3)
    with pytest.raises(ValueError):
        parse_embeddings({"data": [{"index": 0, "embedding": "AAAA"}]}, 1)


def test_reasoning_family_by_name() -> None:
    assert reasoning_family("openai/gpt-oss-20b").reasoning_field == "reasoning"
    assert reasoning_family("Qwen/Qwen3-8B").reasoning_field == "reasoning_content"


def test_failed_upstreams_go_last_until_their_cooldown_ends() -> None:
    now = [100.0]
    health = Health(cooldown=30, clock=lambda: now[0])
    names = ["a", "b", "c"]
    assert health.order(names, str) == ["a", "b", "c"]
    health.failed("a", "answered 500")
    now[0] += 1
    health.failed("b", "unreachable")
    assert health.order(names, str) == ["c", "a", "b"]  # down ones last, soonest back first
    assert health.state("a").last_error == "answered 500" and health.state("a").failures == 1
    now[0] += 29.5  # a's cooldown is over, b's not yet
    assert health.order(names, str) == ["a", "c", "b"]
    health.succeeded("b")
    assert health.order(names, str) == ["a", "b", "c"] and health.state("b").last_error is None


def test_config_entries_are_checked_and_never_hold_a_key(tmp_path: Path) -> None:
    up = make_upstream({"name": "c", "url": "http://h:8000", "api_key_env": "VLLM_KEY"}, source="file")
    assert up.url == "http://h:8000/v1"
    assert make_upstream({"name": "c", "url": "https://h/v1/"}, source="file").url == "https://h/v1"
    for entry, param in (
        ({"url": "http://h"}, "name"),
        ({"name": "../x", "url": "http://h"}, "name"),
        ({"name": "c", "url": "h:8000"}, "url"),
        ({"name": "c", "url": "http://h", "api_key_env": "sk-abc123"}, "api_key_env"),
        ({"name": "c", "url": "http://h", "models": "a,b"}, "models"),
    ):
        with pytest.raises(APIError) as error:
            make_upstream(entry, source="file")
        assert error.value.param == param and error.value.status == 400


def test_config_file_add_remove_and_the_settings_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "lm_jupyter" / "remotes.json"
    config = RemoteConfig.load(path, [{"name": "cluster", "url": "http://vllm:8000/v1"}])
    config.add({"name": "spare", "url": "http://other/v1", "api_key_env": "SPARE_KEY", "models": ["m"]})
    assert [u.name for u in config.upstreams] == ["cluster", "spare"]
    assert path.stat().st_mode & 0o777 == 0o600
    saved = json.loads(path.read_text())["upstreams"]
    assert saved == [{"name": "spare", "url": "http://other/v1", "api_key_env": "SPARE_KEY", "models": ["m"]}]
    again = RemoteConfig.load(path, [])
    assert [u.name for u in again.upstreams] == ["spare"]
    for action, code in ((lambda: config.add({"name": "spare", "url": "http://x"}), "upstream_exists"),
                         (lambda: config.remove("cluster"), "upstream_configured"),
                         (lambda: config.remove("nope"), "upstream_not_found")):  # fmt: skip
        with pytest.raises(APIError) as error:
            action()
        assert error.value.code == code
    spare = config.get("spare")
    assert spare is not None
    monkeypatch.delenv("SPARE_KEY", raising=False)
    with pytest.raises(APIError, match=r"\$SPARE_KEY") as error:
        spare.api_key()
    assert error.value.status == 503
    monkeypatch.setenv("SPARE_KEY", "secret")
    assert spare.api_key() == "secret"
    config.remove("spare")
    assert json.loads(path.read_text())["upstreams"] == []
    path.write_text("{not json")
    with pytest.raises(ValueError, match="remote upstreams file"):
        RemoteConfig.load(path, [])
