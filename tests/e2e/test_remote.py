"""Remote upstreams end to end: a proxy lm_jupyter in front of real upstreams on loopback.

Upstreams: a second lm_jupyter (``tests/e2e/isolated_server.py``, the tiny models), llama-cpp-python's
own OpenAI server (``python -m llama_cpp.server``, with an API key the proxy reads from the
environment variable its entry names), and ``tests/remote_standin.py`` for the failure modes real
servers do not show on cue (a 500, a hang, a stream that stops until its process is killed).
The proxy has no models of its own. The vLLM test is ``tests/vllm`` (``make test-vllm``).

Tests run in file order: the last one kills the stand-in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from lm_jupyter.client.discovery import free_port
from tests.e2e.isolated_server import IsolatedServer, isolated_server
from tests.e2e.kernel_harness import execute, start_kernel, stop_kernel, value
from tests.remote_standin import STALLED_WORD

REPO = Path(__file__).resolve().parents[2]
LLAMA_KEY_ENV = "LMJ_TEST_LLAMA_KEY"
LLAMA_KEY = "llama-secret-for-tests"
UPSTREAM_TOKEN_ENV = "LMJ_TEST_UPSTREAM_TOKEN"
NO_EOS = {"2": -100, "4": -100}  # tiny models' EOS and EOT: generate until stopped
REASONING = "Compare the powers."
ANSWER = "Yes: 1024 > 1000."
THINK_GRAMMAR = {
    "grammar": "root ::= " + json.dumps(f"<think>{REASONING}</think>{ANSWER}"),
    "max_tokens": 200,
}


def wait_for(url: str, headers: dict[str, str] | None = None, deadline: float = 120) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            if httpx.get(url, headers=headers, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} did not come up within {deadline}s")


@pytest.fixture(scope="module")
def upstream(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedServer]:
    """A second lm_jupyter with the tiny models loaded up front: a just-in-time load there would
    count against the proxy's short timeout (kept short for the hanging stand-in). One slot each,
    so a request asked twice (relayed and direct) meets the same prefix cache: a prompt evaluated
    fresh and one served from the cache are computed in batches of other shapes, which round
    differently and can flip a greedy near-tie of the random tiny weights."""
    with isolated_server(tmp_path_factory.mktemp("upstream"), models_dir) as server:
        headers = {"Authorization": f"Bearer {server.info.token}"}
        for name in ("tiny-base", "tiny-tools", "tiny-chat", "tiny-think", "tiny-embed"):
            loaded = httpx.post(
                server.info.url + "api/v1/models/load",
                json={"model": f"test/{name}", "parallel": 1},
                headers=headers,
                timeout=120,
            )
            assert loaded.status_code == 200, loaded.text
        yield server


@pytest.fixture(scope="module")
def llama_server(models_dir: Path) -> Iterator[str]:
    port = free_port("127.0.0.1", 0)
    model = models_dir / "test" / "tiny-chat-GGUF" / "tiny-chat-F32.gguf"
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", "llama/tiny-chat",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "512", "--api_key", LLAMA_KEY],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/v1"
        wait_for(f"{url}/models", {"Authorization": f"Bearer {LLAMA_KEY}"})
        yield url
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def standin() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port("127.0.0.1", 0)
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "remote_standin.py"), str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def proxy(
    upstream: IsolatedServer,
    llama_server: str,
    standin: tuple[str, subprocess.Popen[str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[IsolatedServer]:
    """The server under test. The stand-ins come first, so they are tried before the real
    upstream that serves the same names; `lmj remote add` adds the rest, the setting one."""
    folder = tmp_path_factory.mktemp("proxy")
    (folder / "models").mkdir()
    base, _ = standin
    config = folder / "jupyter_server_config.json"  # the setting as a user's config file holds it
    config.write_text(
        json.dumps({"LmJupyterApp": {"remotes": [{"name": "sized", "url": f"{base}/sized/v1"}]}})
    )
    os.environ[LLAMA_KEY_ENV] = LLAMA_KEY  # the proxy process inherits these
    os.environ[UPSTREAM_TOKEN_ENV] = upstream.info.token
    try:
        with isolated_server(
            folder,
            folder / "models",
            [
                f"--config={config}",
                "--LmJupyterApp.remote_timeout=5",  # the hanging stand-in
                "--LmJupyterApp.remote_retry_seconds=600",  # a failed upstream stays skipped
                "--LmJupyterApp.remote_listing_ttl=0.5",
            ],
        ) as server:
            for name, url in (
                ("boom", f"{base}/boom"),
                ("hang", f"{base}/hang/v1/"),
                ("stall", f"{base}/stall"),
            ):
                server.lmj("remote", "add", name, url)
            lmj_url = upstream.info.url.rstrip("/") + "/v1"
            server.lmj("remote", "add", "lmj", lmj_url, "--api-key-env", UPSTREAM_TOKEN_ENV)
            server.lmj("remote", "add", "llama", llama_server, "--api-key-env", LLAMA_KEY_ENV)
            yield server
    finally:
        os.environ.pop(LLAMA_KEY_ENV, None)
        os.environ.pop(UPSTREAM_TOKEN_ENV, None)


@pytest.fixture(scope="module")
def http(proxy: IsolatedServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {proxy.info.token}"}
    with httpx.Client(base_url=proxy.info.url, headers=headers, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def client(proxy: IsolatedServer) -> OpenAI:
    return OpenAI(base_url=proxy.info.v1, api_key=proxy.info.token, max_retries=0, timeout=60)


def test_remote_models_are_listed_with_their_upstream(http: httpx.Client, proxy: IsolatedServer) -> None:
    ids = [m["id"] for m in http.get("v1/models").json()["data"]]
    for name in ("standin/sized", "test/tiny-chat", "test/tiny-embed", "llama/tiny-chat", "standin/boom"):
        assert name in ids
    assert len(ids) == len(set(ids))  # a name several upstreams serve is listed once
    v0 = {m["id"]: m for m in http.get("api/v0/models").json()["data"]}
    assert v0["standin/sized"] == {
        "id": "standin/sized", "object": "model", "type": "llm", "publisher": "sized", "arch": "remote",
        "compatibility_type": "remote", "quantization": "unknown", "state": "loaded",
        "max_context_length": 256, "upstream": "sized",
    }  # fmt: skip
    assert v0["llama/tiny-chat"]["upstream"] == "llama"  # its API key was sent: it lists
    assert v0["test/tiny-chat"]["upstream"] == "stall"  # first in order among those serving it
    assert http.get("api/v0/models/standin/sized").json()["max_context_length"] == 256
    v1 = {m["key"]: m for m in http.get("api/v1/models").json()["models"]}
    assert v1["llama/tiny-chat"]["format"] == "remote" and v1["llama/tiny-chat"]["loaded_instances"] == []
    table = proxy.lmj("ls").stdout
    assert any(line.split()[:3] == ["standin/sized", "Remote:", "sized"] for line in table.splitlines())
    listed = json.loads(proxy.lmj("ls", "--json").stdout)
    assert {"modelKey": "llama/tiny-chat", "upstream": "llama", "state": "loaded"}.items() <= next(
        m for m in listed if m["modelKey"] == "llama/tiny-chat"
    ).items()


def test_upstream_entries_hold_no_secret(proxy: IsolatedServer, http: httpx.Client) -> None:
    rows = {row["name"]: row for row in json.loads(proxy.lmj("remote", "ls", "--json").stdout)}
    assert list(rows) == ["sized", "boom", "hang", "stall", "lmj", "llama"]
    assert rows["llama"]["api_key_env"] == LLAMA_KEY_ENV and rows["llama"]["state"] == "up"
    assert rows["sized"]["source"] == "config" and rows["hang"]["url"].endswith("/hang/v1")
    saved = (proxy.tokens_file.parent / "remotes.json").read_text()
    assert LLAMA_KEY_ENV in saved and LLAMA_KEY not in saved
    assert "llama/tiny-chat" in proxy.lmj("remote", "ls").stdout
    # bad input: clear refusals, nothing saved
    refused = proxy.lmj("remote", "add", "x", "ftp://host/v1", check=False)
    assert refused.returncode == 1 and "http(s) URL" in refused.stderr
    refused = proxy.lmj(
        "remote", "add", "x", "http://h/v1", "--api-key-env", "sk-the-key-itself", check=False
    )
    assert refused.returncode == 1 and "never the key itself" in refused.stderr
    refused = proxy.lmj("remote", "add", "boom", "http://h/v1", check=False)
    assert refused.returncode == 1 and "already exists" in refused.stderr
    refused = proxy.lmj("remote", "rm", "sized", check=False)
    assert refused.returncode == 1 and "LmJupyterApp.remotes" in refused.stderr
    assert http.post("api/v1/remotes", content=b"[1]").status_code == 400
    assert http.delete("api/v1/remotes/nope").json()["error"]["code"] == "upstream_not_found"
    proxy.lmj("remote", "add", "spare", "http://127.0.0.1:9/v1", "--models", "a,b")
    assert "spare" in proxy.lmj("remote", "ls").stdout
    proxy.lmj("remote", "rm", "spare")
    assert "spare" not in (proxy.tokens_file.parent / "remotes.json").read_text()


def test_upstream_500_fails_over_then_names_the_upstream(
    http: httpx.Client, proxy: IsolatedServer, standin: tuple[str, subprocess.Popen[str]]
) -> None:
    # test/tiny-base: the "boom" stand-in comes first and answers 500; lm_jupyter serves it
    body = {"model": "test/tiny-base", "prompt": "a", "max_tokens": 2}
    assert http.post("v1/completions", json=body).status_code == 200
    calls = httpx.get(f"{standin[0]}/boom/calls").json()["calls"]
    assert calls == 1
    only = http.post(
        "v1/chat/completions", json={"model": "standin/boom", "messages": [{"role": "user", "content": "x"}]}
    )
    assert only.status_code == 502
    error = only.json()["error"]
    assert "'boom'" in error["message"] and "the stand-in always fails" in error["message"]
    boom = next(r for r in json.loads(proxy.lmj("remote", "ls", "--json").stdout) if r["name"] == "boom")
    assert boom["state"] == "down" and "answered 500" in boom["last_error"]
    assert http.post("v1/completions", json=body).status_code == 200
    # the failing one is skipped while it is down (standin/boom had no other upstream to try)
    assert httpx.get(f"{standin[0]}/boom/calls").json()["calls"] == calls + 1
    assert http.get("api/v0/models/test/tiny-base").json()["upstream"] == "lmj"


def test_hanging_upstream_times_out_then_is_skipped(
    http: httpx.Client, standin: tuple[str, subprocess.Popen[str]]
) -> None:
    only = http.post("v1/completions", json={"model": "standin/hang", "prompt": "x"})
    assert only.status_code == 504 and "'hang'" in only.json()["error"]["message"]
    # test/tiny-tools' first upstream is the hanging one, which is down now: skipped, not waited for
    calls = httpx.get(f"{standin[0]}/hang/calls").json()["calls"]
    served = http.post("v1/completions", json={"model": "test/tiny-tools", "prompt": "x", "max_tokens": 2})
    assert served.status_code == 200
    assert httpx.get(f"{standin[0]}/hang/calls").json()["calls"] == calls


def test_chat_through_lm_jupyter_upstream_normalises_reasoning(client: OpenAI, http: httpx.Client) -> None:
    body = {"model": "test/tiny-think", "messages": [{"role": "user", "content": "2^10 > 1000?"}]}
    reply = http.post("v1/chat/completions", json={**body, **THINK_GRAMMAR}).json()
    message = reply["choices"][0]["message"]
    assert (message["content"], message["reasoning_content"]) == (ANSWER, REASONING)
    assert reply["model"] == "test/tiny-think" and reply["usage"]["prompt_tokens"] > 0
    assert reply["usage"]["completion_tokens"] > 0
    # the client's choice of field, streamed chunk by chunk
    stream = client.chat.completions.create(
        **body, stream=True, stream_options={"include_usage": True},
        extra_body={**THINK_GRAMMAR, "reasoning_format": "reasoning"},
    )  # fmt: skip
    chunks = list(stream)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = "".join(getattr(d, "reasoning", None) or "" for d in deltas)
    assert reasoning == REASONING and "".join(d.content or "" for d in deltas) == ANSWER
    assert not any(getattr(d, "reasoning_content", None) for d in deltas)
    assert len([d for d in deltas if d.content]) > 1  # not buffered into one chunk
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    # LM Studio's twin fills stats and model_info
    v0 = http.post("api/v0/chat/completions", json={**body, **THINK_GRAMMAR}).json()
    assert v0["stats"]["stop_reason"] == "eosFound" and v0["stats"]["tokens_per_second"] >= 0
    assert v0["model_info"]["format"] == "remote"


def test_tool_calls_pass_through(client: OpenAI) -> None:
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Bern"}}\n</tool_call>'
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    reply = client.chat.completions.create(
        model="test/tiny-tools",
        messages=[{"role": "user", "content": "Weather in Bern?"}],
        tools=tools,
        extra_body={"grammar": "root ::= " + json.dumps(call), "max_tokens": 200},  # type: ignore[arg-type]
    )
    assert reply.choices[0].finish_reason == "tool_calls"
    calls = reply.choices[0].message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Bern"})
    ]


def test_completions_and_embeddings(http: httpx.Client, upstream: IsolatedServer) -> None:
    body = {"model": "test/tiny-base", "prompt": "a", "max_tokens": 5, "temperature": 0, "logit_bias": NO_EOS}
    reply = http.post("v1/completions", json=body).json()
    assert reply["choices"][0]["finish_reason"] == "length" and reply["usage"]["completion_tokens"] == 5
    assert reply["model"] == "test/tiny-base" and isinstance(reply["choices"][0]["text"], str)
    texts = ["one", "two words"]
    vectors = http.post("v1/embeddings", json={"model": "test/tiny-embed", "input": texts}).json()
    expected = httpx.post(
        upstream.info.url + "v1/embeddings",
        json={"model": "test/tiny-embed", "input": texts},
        headers={"Authorization": f"Bearer {upstream.info.token}"},
    ).json()
    for got, want in zip(vectors["data"], expected["data"], strict=True):  # the upstream's, in order
        assert got["index"] == want["index"]
        assert got["embedding"] == pytest.approx(want["embedding"], abs=1e-5)
    assert vectors["model"] == "test/tiny-embed" and vectors["usage"] == expected["usage"]


def test_logprobs_are_relayed_from_the_upstream(
    client: OpenAI, http: httpx.Client, upstream: IsolatedServer
) -> None:
    """The upstream's logprobs reach the client in the route's shape, equal to asking the
    upstream directly (greedy on the tiny F32 model), streamed and not; echo is still refused."""
    direct = OpenAI(base_url=upstream.info.v1, api_key=upstream.info.token, max_retries=0, timeout=60)
    ask = {"model": "test/tiny-tools", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
           "temperature": 0, "logprobs": True, "top_logprobs": 3, "logit_bias": NO_EOS}  # fmt: skip
    # Each pair is compared in the same prefix-cache state (see `upstream`): a first ask fills it.
    direct.chat.completions.create(**ask)
    want = direct.chat.completions.create(**ask).choices[0].logprobs
    got = client.chat.completions.create(**ask).choices[0].logprobs
    assert want is not None and got is not None and len(want.content or []) == 4
    assert [(e.token, e.bytes, [t.token for t in e.top_logprobs]) for e in got.content or []] == [
        (e.token, e.bytes, [t.token for t in e.top_logprobs]) for e in want.content or []
    ]
    for g, w in zip(got.content or [], want.content or [], strict=True):
        assert g.logprob == pytest.approx(w.logprob, abs=1e-4)
    streamed = [c for c in client.chat.completions.create(**ask, stream=True) if c.choices]
    entries = [e for c in streamed if c.choices[0].logprobs for e in c.choices[0].logprobs.content or []]
    assert [e.token for e in entries] == [e.token for e in want.content or []]

    text = {"model": "test/tiny-base", "prompt": "a", "max_tokens": 3, "temperature": 0,
            "logprobs": 2, "logit_bias": NO_EOS}  # fmt: skip
    # Legacy completions: the relayed entries in the legacy shape, consistent with each other
    # (a token-for-token comparison with asking the upstream again flipped now and then on
    # this 2-token prompt: a greedy near-tie of the random tiny weights, cause not pinned down).
    reply = http.post("v1/completions", json=text).json()["choices"][0]
    legacy = reply["logprobs"]
    assert len(legacy["tokens"]) == len(legacy["token_logprobs"]) == len(legacy["top_logprobs"]) == 3
    for token, logprob, top in zip(
        legacy["tokens"], legacy["token_logprobs"], legacy["top_logprobs"], strict=True
    ):
        # two alternatives, fewer keys where two tokens share a text (two partial bytes: "\ufffd")
        assert logprob <= 0 and 1 <= len(top) <= 2 and all(value <= 0 for value in top.values())
        assert logprob <= max(top.values()) + 1e-6  # greedy: nothing above the best alternatives
        if token in top and token != "\ufffd":  # a shared text keeps one of its tokens
            assert top[token] == pytest.approx(logprob, abs=1e-6)
    offsets = legacy["text_offset"]
    assert len(offsets) == 3 and offsets == sorted(offsets) and isinstance(reply["text"], str)

    echo = http.post("v1/completions", json={**text, "echo": True})
    assert echo.status_code == 400 and echo.json()["error"]["param"] == "echo"


def test_llm_data_functions_through_a_remote_upstream(proxy: IsolatedServer) -> None:
    """``llm.classify`` (grammar, logprobs of the label alternatives), ``llm.map`` and
    ``llm.embed`` on models the proxy serves from an upstream."""
    from lm_jupyter import llm

    llm.connect(proxy.info.url, proxy.info.token)
    labels = ["yes", "no"]
    rows = ["is it local?", "hello"]
    classified = llm.classify(rows, labels, model="test/tiny-tools", cache=False, progress=False)
    assert list(classified.columns) == ["label", *labels] and "error" not in classified.columns
    for _, row in classified.iterrows():
        assert row["label"] in labels and row["yes"] + row["no"] == pytest.approx(1.0)
    mapped = llm.map("Say {}", rows, model="test/tiny-tools", max_tokens=3, cache=False, progress=False)
    assert len(mapped) == 2 and all(isinstance(text, str) for text in mapped)
    vectors = llm.embed(rows, model="test/tiny-embed", cache=False, progress=False)
    assert vectors.shape[0] == 2 and vectors.shape[1] > 0


def test_llama_cpp_server_upstream(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="llama/tiny-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=8, stream=True
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    completion = client.completions.create(model="llama/tiny-chat", prompt="a b", max_tokens=4)
    assert completion.model == "llama/tiny-chat" and completion.usage is not None
    assert completion.usage.completion_tokens <= 4


def test_upstream_4xx_keeps_its_message(http: httpx.Client) -> None:
    body = {
        "model": "test/tiny-think",
        "messages": [{"role": "user", "content": "x"}],
        "logit_bias": {"99999": 1},
    }
    answer = http.post("v1/chat/completions", json=body)
    assert answer.status_code == 400
    assert "outside the vocabulary" in answer.json()["error"]["message"]  # the upstream's words
    assert answer.json()["error"]["param"] == "logit_bias"


def test_responses_state_stays_local(http: httpx.Client, upstream: IsolatedServer) -> None:
    first = http.post(
        "v1/responses", json={"model": "test/tiny-think", "input": "2^10 > 1000?", **THINK_GRAMMAR}
    ).json()
    assert first["status"] == "completed" and first["output"][-1]["content"][0]["text"] == ANSWER
    follow = http.post(
        "v1/responses",
        json={
            "model": "test/tiny-think",
            "input": "And 2^9?",
            "previous_response_id": first["id"],
            **THINK_GRAMMAR,
        },
    ).json()
    assert follow["status"] == "completed"
    items = http.get(f"v1/responses/{follow['id']}/input_items").json()["data"]
    assert [i["content"][0]["text"] for i in items] == ["And 2^9?"]
    # stored by the proxy, not the upstream
    headers = {"Authorization": f"Bearer {upstream.info.token}"}
    assert httpx.get(upstream.info.url + f"v1/responses/{first['id']}", headers=headers).status_code == 404


def test_metrics_and_log_stream_record_remote_requests(http: httpx.Client) -> None:
    with http.stream("GET", "api/v1/logs/stream", params={"source": "model", "history": 200}) as events:
        lines = events.iter_lines()
        http.post(
            "v1/chat/completions",
            json={
                "model": "test/tiny-think",
                "messages": [{"role": "user", "content": "?"}],
                **THINK_GRAMMAR,
            },
        )
        seen: set[str] = set()
        for line in lines:
            if line.startswith("data: "):
                data = json.loads(line[6:])["data"]
                if data.get("modelIdentifier") == "test/tiny-think":
                    seen.add(data["type"])
            if seen == {"llm.prediction.input", "llm.prediction.output"}:
                break
    metrics = http.get("metrics").text
    assert 'lm_jupyter_requests_total{finish_reason="stop",kind="chat",model="test/tiny-think"}' in metrics


def test_lms_remote_in_a_kernel(proxy: IsolatedServer) -> None:
    kernel = start_kernel(proxy.env)
    try:
        execute(kernel, "%load_ext lm_jupyter").assert_no_error()
        added = execute(kernel, "%lms remote add spare http://127.0.0.1:9/v1 --models x/y")
        added.assert_no_error()
        assert 'Added remote upstream "spare"' in added.stdout
        execute(kernel, "_rows = %lms remote ls --json").assert_no_error()
        assert ["spare", ["x/y"]] in value(kernel, "[[r['name'], r['models']] for r in _rows]")
        table = execute(kernel, "_table = %lms ls\nprint(_table)").stdout
        assert any(line.split()[:3] == ["x/y", "Remote:", "spare"] for line in table.splitlines())
        execute(kernel, "%lms remote rm spare").assert_no_error()
        refused = execute(kernel, "%lms remote add bad ftp://x")
        assert "http(s) URL" in refused.stderr
    finally:
        stop_kernel(kernel)


def test_client_disconnect_cancels_the_upstream_generation(
    http: httpx.Client, upstream: IsolatedServer
) -> None:
    headers = {"Authorization": f"Bearer {upstream.info.token}"}
    loaded = httpx.post(
        upstream.info.url + "api/v1/models/load",
        json={"model": "test/tiny-long", "context_length": 32768},
        headers=headers,
        timeout=120,
    )
    assert loaded.status_code == 200
    endless = {
        "model": "test/tiny-long",
        "prompt": "go",
        "max_tokens": -1,
        "logit_bias": NO_EOS,
        "stream": True,
    }

    def status() -> str:
        models = httpx.get(upstream.info.url + "api/v1/models", headers=headers).json()["models"]
        return next(m for m in models if m["key"] == "test/tiny-long")["loaded_instances"][0]["status"]

    with http.stream("POST", "v1/completions", json=endless) as response:
        assert response.status_code == 200
        lines = (json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {"))
        next(chunk for chunk in lines if chunk["choices"][0]["text"])
        assert status() == "generating"
    deadline = time.monotonic() + 60
    while status() != "idle":
        assert time.monotonic() < deadline, "the upstream kept generating after the client left"
        time.sleep(0.1)


def test_upstream_killed_mid_stream_gives_an_sse_error(
    http: httpx.Client, standin: tuple[str, subprocess.Popen[str]]
) -> None:
    _, proc = standin
    body = {"model": "test/tiny-chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with http.stream("POST", "v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        next(line for line in lines if STALLED_WORD in line)
        proc.kill()  # the upstream dies in the middle of the answer
        rest = [line for line in lines if line.startswith("data: ")]
    assert rest[-1] == "data: [DONE]"
    error = json.loads(rest[-2][6:])["error"]
    assert "'stall'" in error["message"] and error["code"] == "upstream_failed"
    # the next request for the same model goes to the upstream that still works
    reply = http.post("v1/chat/completions", json={**body, "stream": False, "max_tokens": 3})
    assert reply.status_code == 200 and reply.json()["choices"][0]["finish_reason"] in ("stop", "length")
