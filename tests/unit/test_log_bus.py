"""The live log's bus: selection, bounded queues, history, redaction and event shapes."""

from __future__ import annotations

import asyncio
import json

import pytest

from lm_jupyter.api.completions import Outcome
from lm_jupyter.api.errors import APIError
from lm_jupyter.server.log_bus import LogBus, Selection, parse_selection, redact

JUPYTER_TOKEN = "4f1d2c3b4a5968778695a4b3c2d1e0f00112233445566778"
API_TOKEN = "sk-lmj-AbCdEf0123456789_-AbCdEf0123456789AbCdEf0"


def model_input(text: str = "prompt") -> dict:
    return {"type": "llm.prediction.input", "input": text, "modelPath": "p/r/f.gguf", "modelIdentifier": "m"}


def model_output(text: str = "out") -> dict:
    return {"type": "llm.prediction.output", "output": text, "modelIdentifier": "m"}


def server_event(text: str = "GET /v1/models 200") -> dict:
    return {"type": "server.log", "level": "info", "content": text, "details": {}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /api/v1/models?token=abc123&x=1 200", "GET /api/v1/models?token=[redacted]&x=1 200"),
        ("/v1/models?a=1&api_key=xyz", "/v1/models?a=1&api_key=[redacted]"),
        ("/lab?_xsrf=2|abc|def", "/lab?_xsrf=[redacted]"),
        (f"my key is {API_TOKEN}.", "my key is sk-lmj-[redacted]."),
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer [redacted]"),
        (f"the jupyter token {JUPYTER_TOKEN} leaked", "the jupyter token [redacted] leaked"),
        ("nothing secret here: tokens=5", "nothing secret here: tokens=5"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text, {JUPYTER_TOKEN, ""}) == expected


def test_published_events_never_hold_secrets() -> None:
    bus = LogBus()
    bus.secrets.add(JUPYTER_TOKEN)
    sub = bus.subscribe(Selection(frozenset({"server", "model"})))
    bus.request("POST", f"/v1/chat/completions?token={JUPYTER_TOKEN}", 200, 0.25)
    bus.publish(model_input(f"user: here is {API_TOKEN} and {JUPYTER_TOKEN}"))
    bus.publish(model_output(f"echo {API_TOKEN}"))
    text = json.dumps([*sub.queue, *bus.history])
    assert JUPYTER_TOKEN not in text and API_TOKEN not in text and "AbCdEf0123" not in text
    assert sub.queue[0]["data"]["details"]["path"] == "/v1/chat/completions?token=[redacted]"
    assert sub.queue[0]["data"]["details"]["durationMs"] == 250.0


@pytest.mark.parametrize(
    ("source", "filter_", "kept"),
    [
        (None, None, ["input", "output"]),
        ("server", None, ["server"]),
        ("model", "input", ["input"]),
        ("model", "output", ["output"]),
        ("server,model", "output", ["server", "output"]),
        ("model,server", "input,output", ["input", "output", "server"]),
    ],
)
def test_selection_keeps_exactly_what_it_names(
    source: str | None, filter_: str | None, kept: list[str]
) -> None:
    bus = LogBus()
    sub = bus.subscribe(parse_selection(source, filter_))
    bus.publish(model_input())
    bus.publish(model_output())
    bus.publish(server_event())
    names = {"llm.prediction.input": "input", "llm.prediction.output": "output", "server.log": "server"}
    assert sorted(names[e["data"]["type"]] for e in sub.queue) == sorted(kept)


@pytest.mark.parametrize(
    ("source", "filter_", "param"),
    [("bogus", None, "source"), ("", None, "source"), ("model", "inputs", "filter"), (None, "", "filter")],
)
def test_bad_selection_is_a_400_naming_the_parameter(
    source: str | None, filter_: str | None, param: str
) -> None:
    with pytest.raises(APIError) as caught:
        parse_selection(source, filter_)
    assert caught.value.status == 400 and caught.value.param == param


def test_a_slow_subscriber_drops_its_oldest_events_and_is_told() -> None:
    async def scenario() -> None:
        bus = LogBus(queue_size=3)
        slow = bus.subscribe(Selection(frozenset({"server"})))
        for number in range(10):
            bus.request("GET", f"/n/{number}", 200, 0.0)
        assert len(slow.queue) == 3  # bounded: the server never waits and memory never grows
        notice = await slow.get(1)
        assert notice is not None and notice["data"]["level"] == "warn"
        assert notice["data"]["details"] == {"event": "dropped", "count": 7}
        rest = [await slow.get(1) for _ in range(3)]
        assert [e["data"]["details"]["path"] for e in rest if e] == ["/n/7", "/n/8", "/n/9"]
        assert await slow.get(0.05) is None  # nothing more: a heartbeat's worth of silence
        bus.close()
        assert slow.closed
        await bus.wait_closed(0.05)  # nobody unsubscribed: it gives up after the timeout
        bus.unsubscribe(slow)
        assert not bus.subscribers
        await asyncio.wait_for(bus.wait_closed(10), 1)

    asyncio.run(scenario())


def test_get_wakes_on_publish_and_on_close() -> None:
    async def scenario() -> None:
        bus = LogBus()
        sub = bus.subscribe(Selection(frozenset({"model"})))
        waiter = asyncio.ensure_future(sub.get(10))
        await asyncio.sleep(0.01)
        bus.publish(model_input("hello"))
        event = await asyncio.wait_for(waiter, 1)
        assert event is not None and event["data"]["input"] == "hello" and event["timestamp"] > 0
        waiter = asyncio.ensure_future(sub.get(10))
        await asyncio.sleep(0.01)
        bus.unsubscribe(sub)
        assert await asyncio.wait_for(waiter, 1) is None

    asyncio.run(scenario())


def test_history_replays_only_what_the_subscriber_selects() -> None:
    bus = LogBus(history=5)
    bus.log("started", event="startup")
    for number in range(6):
        bus.publish(model_input(str(number)))
    assert len(bus.history) == 5  # bounded too
    late = bus.subscribe(Selection(frozenset({"model"})), history=2)
    assert [e["data"]["input"] for e in late.queue] == ["4", "5"]
    assert not bus.subscribe(Selection(frozenset({"server"})), history=10).queue  # startup fell out
    assert not bus.subscribe(Selection(frozenset({"model"}))).queue  # no history unless asked


def test_manager_events_in_lm_studio_shapes() -> None:
    bus = LogBus()
    sub = bus.subscribe(Selection(frozenset({"server", "model"})))
    bus.manager_event("prediction_input", {"identifier": "m", "path": "p/r/f.gguf", "prompt": "<s>hi"})
    outcome = Outcome("userStopped", 10, 5, time_to_first_token=0.1, generation_time=0.5, cached_tokens=3)
    bus.manager_event("prediction_output", {"identifier": "m", "text": "a b c", "outcome": outcome})
    bus.manager_event(
        "loaded",
        {
            "identifier": "m",
            "key": "p/r",
            "path": "p/r/f.gguf",
            "context_length": 512,
            "load_time": 1.5,
            "jit": True,
        },
    )
    bus.manager_event("unloaded", {"identifier": "m", "key": "p/r", "reason": "evicted"})
    bus.manager_event(
        "unloaded",
        {"identifier": "m", "key": "p/r", "reason": "worker exited", "message": "It was killed by SIGILL."},
    )
    bus.manager_event("load_failed", {"identifier": "m", "key": "p/r", "message": "bad file"})
    data = [event["data"] for event in sub.queue]
    assert data[0] == {
        "type": "llm.prediction.input",
        "input": "<s>hi",
        "modelPath": "p/r/f.gguf",
        "modelIdentifier": "m",
    }
    assert data[1]["type"] == "llm.prediction.output" and data[1]["output"] == "a b c"
    assert data[1]["stats"] == {
        "stopReason": "userStopped",
        "tokensPerSecond": 10.0,
        "timeToFirstTokenSec": 0.1,
        "totalTimeSec": 0.5,
        "promptTokensCount": 10,
        "predictedTokensCount": 5,
        "totalTokensCount": 15,
        "cachedPromptTokensCount": 3,
    }
    assert data[2]["content"] == "Loaded p/r as 'm' (JIT) in 1.50s, context 512"
    assert data[2]["details"]["event"] == "load"
    assert data[3]["content"] == "Auto-evicted JIT-loaded 'm' to make room" and data[3]["level"] == "info"
    assert data[4]["level"] == "warn" and data[4]["content"] == "Unloaded 'm': It was killed by SIGILL."
    assert data[5]["level"] == "error" and data[5]["content"] == "Failed to load p/r: bad file"


@pytest.mark.parametrize(("status", "level"), [(200, "info"), (404, "warn"), (500, "error")])
def test_request_level_follows_status(status: int, level: str) -> None:
    bus = LogBus()
    bus.request("GET", "/v1/models", status, 0.001)
    data = bus.history[-1]["data"]
    assert data["level"] == level and data["content"] == f"GET /v1/models {status} 1.00ms"


def test_events_queued_before_close_still_arrive() -> None:
    async def scenario() -> None:
        bus = LogBus()
        sub = bus.subscribe(Selection(frozenset({"server"})))
        bus.log("lm_jupyter is stopping", event="shutdown")
        bus.close()
        last = await sub.get(1)
        assert last is not None and last["data"]["content"] == "lm_jupyter is stopping"
        assert await sub.get(1) is None and sub.closed

    asyncio.run(scenario())
