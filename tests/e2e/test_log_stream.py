"""``lmj log stream`` against a real server: a known sequence of requests, captured by several
``lmj log stream --json`` processes at once, each seeing exactly the events its options name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.isolated_server import IsolatedServer, isolated_server
from tests.e2e.terminal import LogCapture, wait_until
from tests.e2e.test_cli import lmj

FAKE_API_TOKEN = "sk-lmj-" + "Zx9" * 14 + "Q"


@pytest.fixture(scope="module")
def own(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedServer]:
    with isolated_server(tmp_path_factory.mktemp("logs"), models_dir) as server:
        yield server


def kinds(data: list[dict]) -> list[str]:
    return [d["type"].rsplit(".", 1)[-1] if d["type"] != "server.log" else "server" for d in data]


def test_sources_and_filters_select_exactly_what_they_name(own: IsolatedServer) -> None:
    token = own.info.token
    everything = LogCapture(own.env, "--json", "--stats", "--source", "server", "--source", "model")
    model = LogCapture(own.env, "--json")  # lms's default: model source, input and output
    inputs = LogCapture(own.env, "--json", "--filter", "input")
    outputs = LogCapture(own.env, "--json", "-s", "model", "--filter", "output", "--stats")
    server = LogCapture(own.env, "--json", "--source", "server")
    captures = [everything, model, inputs, outputs, server]

    bearer = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=own.info.url, timeout=120) as http:
        assert http.get("v1/models", headers=bearer).status_code == 200
        load = {"model": "test/tiny-chat", "identifier": "logged", "context_length": 512}
        assert http.post("api/v1/models/load", headers=bearer, json=load).status_code == 200
        secret = f"Is {FAKE_API_TOKEN} or {token} a secret?"
        chat = {"model": "logged", "messages": [{"role": "user", "content": secret}], "max_tokens": 4}
        # The Jupyter token in the query string, as a browser link carries it.
        assert http.post(f"v1/chat/completions?token={token}", json=chat).status_code == 200
        completion = {"model": "logged", "prompt": "plain prompt", "max_tokens": 3}
        assert http.post("v1/completions", headers=bearer, json=completion).status_code == 200
        assert (
            http.post("api/v1/models/unload", headers=bearer, json={"instance_id": "nobody"}).status_code
            == 404
        )
        assert (
            http.post("api/v1/models/unload", headers=bearer, json={"instance_id": "logged"}).status_code
            == 200
        )

    wait_until(
        lambda: any("POST /api/v1/models/unload 200" in line for line in server.lines),
        what="the last request",
    )
    # Each stream is its own connection; the one that saw the last request says nothing of the others.
    expected = {everything: 12, model: 4, inputs: 2, outputs: 2}
    wait_until(
        lambda: all(len(capture.lines) >= count for capture, count in expected.items()),
        what="every stream's events",
    )

    seen = everything.data()
    assert kinds(seen) == [
        "server", "server", "server",  # GET /v1/models, the load, POST .../load
        "input", "output", "server",  # the chat completion
        "input", "output", "server",  # the completion
        "server", "server", "server",  # unload of an unknown instance (404), the unload, POST .../unload
    ]  # fmt: skip
    contents = [d["content"] for d in seen if d["type"] == "server.log"]
    assert contents[0].startswith("GET /v1/models 200 ")
    assert contents[1].startswith("Loaded test/tiny-chat as 'logged' in ") and contents[1].endswith(
        "context 512"
    )
    assert contents[2].startswith("POST /api/v1/models/load 200 ")
    assert contents[3].startswith("POST /v1/chat/completions?token=[redacted] 200 ")
    assert contents[4].startswith("POST /v1/completions 200 ")
    assert contents[5].startswith("POST /api/v1/models/unload 404 ")
    assert contents[6] == "Unloaded 'logged'" and contents[7].startswith("POST /api/v1/models/unload 200 ")
    levels = [d["level"] for d in seen if d["type"] == "server.log"]
    assert levels == ["info"] * 5 + ["warn", "info", "info"]
    request = next(d for d in seen if d["type"] == "server.log")["details"]
    assert request["event"] == "request" and request["method"] == "GET" and request["status"] == 200
    assert request["path"] == "/v1/models" and request["durationMs"] > 0

    chat_input, chat_output, completion_input, completion_output = [
        d for d in seen if d["type"] != "server.log"
    ]
    assert chat_input["modelIdentifier"] == "logged"
    assert chat_input["modelPath"] == "test/tiny-chat-GGUF/tiny-chat-F32.gguf"
    # The formatted prompt, as the model sees it (ChatML), secrets masked.
    assert "<|im_start|>user\nIs sk-lmj-[redacted] or [redacted] a secret?<|im_end|>" in chat_input["input"]
    assert completion_input["input"] == "plain prompt"
    for output, limit in ((chat_output, 4), (completion_output, 3)):
        stats = output["stats"]
        assert stats["stopReason"] in ("maxPredictedTokensReached", "eosFound")
        assert 0 < stats["predictedTokensCount"] <= limit and stats["promptTokensCount"] > 0
        assert stats["totalTokensCount"] == stats["predictedTokensCount"] + stats["promptTokensCount"]
        assert stats["timeToFirstTokenSec"] > 0 and stats["totalTimeSec"] >= stats["timeToFirstTokenSec"]
        assert isinstance(output["output"], str) and output["modelIdentifier"] == "logged"

    model_only = [d for d in seen if d["type"] != "server.log"]
    # Without --stats the JSON has no stats; otherwise each capture has exactly its share.
    assert model.data() == [{k: v for k, v in d.items() if k != "stats"} for d in model_only]
    assert inputs.data() == [chat_input, completion_input]
    assert outputs.data() == [chat_output, completion_output]
    assert server.data() == [d for d in seen if d["type"] == "server.log"]
    for capture in captures:
        text = "".join(capture.lines)
        assert token not in text and FAKE_API_TOKEN not in text and "Zx9Zx9" not in text

    # Ctrl+C ends a stream (exit 130, as for any interrupted lmj), and the server notices the
    # disconnect: the stream's own request finishes and shows in the log that is still open.
    for capture in (everything, model, inputs, outputs):
        assert capture.stop() == 130
    wait_until(
        lambda: sum("GET /api/v1/logs/stream" in line for line in server.lines) == 4,
        what="the closed streams' requests to finish",
    )
    assert server.stop() == 130


def test_history_shows_the_startup(own: IsolatedServer) -> None:
    capture = LogCapture(own.env, "--json", "--source", "server", "--history", "200")
    try:
        first = wait_until(lambda: capture.data(), what="the history")[0]
    finally:
        capture.stop()
    port = int(own.info.url.rsplit(":", 1)[1].strip("/"))
    assert first["details"]["event"] == "startup" and first["details"]["port"] == port
    assert first["content"].startswith("lm_jupyter ") and f"started on port {port}" in first["content"]


def test_text_output_and_bad_options(own: IsolatedServer) -> None:
    capture = LogCapture(own.env, "--stats")  # text, as a person reads it (no colour into a pipe)
    try:
        with httpx.Client(base_url=own.info.url, timeout=120) as http:
            body = {"model": "test/tiny-chat", "prompt": "text please", "max_tokens": 2}
            assert http.post("v1/completions", json=body, params={"token": own.info.token}).status_code == 200
        text = wait_until(
            lambda: "stopReason" in "".join(capture.lines) and "".join(capture.lines), what="output"
        )
    finally:
        capture.stop()
    assert "type: llm.prediction.input\nmodelIdentifier: test/tiny-chat\n" in text
    assert "modelPath: test/tiny-chat-GGUF/tiny-chat-F32.gguf\ninput:\ntext please\n" in text
    assert "type: llm.prediction.output\n" in text and "\noutput:\n" in text and "stopReason: " in text
    assert text.startswith("timestamp: ") and "\x1b[" not in text

    for args, message in (
        (("--stats", "--source", "server"), "--stats can only be used with --source model"),
        (("--filter", "everything"), "Invalid --filter 'everything'"),
        (("--source", "runtime"), "Invalid --source 'runtime'"),
    ):
        result = own.lmj("log", "stream", *args, check=False)
        assert result.returncode == 1 and result.stderr.startswith(f"Error: {message}"), result.stderr
        assert result.stderr.count("\n") == 1 and not result.stdout


def test_the_route_checks_its_query(own: IsolatedServer) -> None:
    headers = {"Authorization": f"Bearer {own.info.token}"}
    for query, param in (
        ("source=server,runtime", "source"),
        ("filter=input,", "filter"),
        ("history=x", "history"),
    ):
        response = httpx.get(own.info.url + "api/v1/logs/stream?" + query, headers=headers)
        assert response.status_code == 400, query
        error = response.json()["error"]
        assert error["param"] == param and error["type"] == "invalid_request_error"


def test_api_tokens_may_not_stream_and_never_show(own: IsolatedServer) -> None:
    """The log carries every client's prompts: an API token sees only its own data, so the
    stream is the Jupyter identity's alone; and the token never appears in it."""
    token = own.lmj("token", "create", "log-reader").stdout.strip()
    denied = lmj({**own.env, "LM_JUPYTER_TOKEN": token}, "log", "stream", check=False)
    assert denied.returncode == 1 and "cannot read the server's log stream" in denied.stderr
    capture = LogCapture(own.env, "--json", "--source", "server")  # the Jupyter identity
    try:
        with httpx.Client(base_url=own.info.url, timeout=60) as http:
            assert http.get("v1/models", headers={"Authorization": f"Bearer {token}"}).status_code == 200
            assert http.get(f"v1/models?api_key={token}").status_code == 401  # not how tokens travel
        lines = wait_until(lambda: len(capture.lines) >= 2 and capture.lines, what="two requests")
    finally:
        capture.stop()
    assert token not in "".join(lines) and "sk-lmj-[redacted]" not in "".join(lines)
    assert "GET /v1/models?api_key=[redacted] 401 " in "".join(lines)
    refused = httpx.get(own.info.url + "api/v1/logs/stream", headers={"Authorization": "Bearer sk-lmj-nope"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"


def test_the_stream_ends_cleanly_when_the_server_stops(models_dir: Path, tmp_path: Path) -> None:
    with isolated_server(tmp_path, models_dir) as server:
        capture = LogCapture(server.env, "--json", "--source", "server")
    # The server has stopped: its last words arrived, then the end of the stream.
    assert capture.proc.wait(15) == 1
    wait_until(lambda: any("closed the log stream" in line for line in capture.stderr), what="the end")
    assert capture.data()[-1]["details"] == {"event": "shutdown"}
    assert "".join(capture.stderr).endswith("The server closed the log stream.\n")


def test_jit_loads_evictions_and_ttl_unloads_are_logged(own: IsolatedServer) -> None:
    with httpx.Client(base_url=own.info.url, timeout=120, params={"token": own.info.token}) as http:
        for model in http.get("api/v1/models").json()["models"]:  # what earlier tests loaded
            for instance in model["loaded_instances"]:
                http.post("api/v1/models/unload", json={"instance_id": instance["id"]})
        capture = LogCapture(own.env, "--json", "--source", "server")
        try:
            for model, ttl in (("test/tiny-chat", 600), ("test/tiny-tools", 1)):  # one JIT instance at a time
                body = {
                    "model": model,
                    "messages": [{"role": "user", "content": "hi"}],
                    "max_tokens": 2,
                    "ttl": ttl,
                }
                assert http.post("v1/chat/completions", json=body).status_code == 200

            def lifecycle() -> list[str]:
                return [
                    d["content"] for d in capture.data() if d["details"].get("event") in ("load", "unload")
                ]

            events = wait_until(lambda: len(lifecycle()) == 4 and lifecycle(), what="the TTL unload")
        finally:
            capture.stop()
    assert events[0].startswith("Loaded test/tiny-chat as 'test/tiny-chat' (JIT) in ")
    assert events[1] == "Auto-evicted JIT-loaded 'test/tiny-chat' to make room"
    assert events[2].startswith("Loaded test/tiny-tools as 'test/tiny-tools' (JIT) in ")
    assert events[3] == "Unloaded 'test/tiny-tools': idle for its TTL"
    reasons = [d["details"].get("reason") for d in capture.data() if d["details"].get("event") == "unload"]
    assert reasons == ["evicted", "ttl"]
