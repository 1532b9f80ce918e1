"""MLX model folders end to end: listed, estimated, loaded in a worker running mlx-lm, and
served on the same routes as GGUF models, through a real server and the openai SDK.

The models are tiny random-weight qwen2 folders written by tests/tiny_mlx.py with mlx-lm's own
classes; MLX's CPU build runs them on Linux. A random model's text means nothing, so the tests
assert what the engine guarantees (token counts, stop reasons, stop strings, cached prefixes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.isolated_server import IsolatedServer, isolated_server
from tests.e2e.test_estimate_accuracy import report
from tests.e2e.test_lifecycle import worker_pids
from tests.e2e.test_tools import TOOLS
from tests.tiny_gguf import THINK_TEMPLATE, TOOLS_TEMPLATE
from tests.tiny_mlx import ascii_only, write_tiny_mlx_model

pytest.importorskip("mlx_lm")

MODEL = "test/tiny-mlx"
QUANT = "test/tiny-mlx-4bit"
WIDE = "test/wide-mlx"  # 512 wide, 8 layers: 73 MB of weights, so runtime overhead is small beside them
MESSAGES = [{"role": "user", "content": "Say hello to the world."}]


@pytest.fixture(scope="module")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mlx-models")
    write_tiny_mlx_model(root / "test" / "tiny-mlx", context_length=8192)
    write_tiny_mlx_model(root / "test" / "tiny-mlx-4bit", bits=4, seed=1)
    write_tiny_mlx_model(root / "test" / "wide-mlx", hidden_size=512, layers=8, seed=2)
    write_tiny_mlx_model(root / "test" / "tiny-mlx-tools", chat_template=TOOLS_TEMPLATE, seed=3)
    write_tiny_mlx_model(root / "test" / "tiny-mlx-think", chat_template=THINK_TEMPLATE, seed=4)
    return root


@pytest.fixture(scope="module")
def mlx_server(models_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedServer]:
    with isolated_server(tmp_path_factory.mktemp("mlx-server"), models_root) as server:
        yield server


@pytest.fixture(scope="module")
def ascii(models_root: Path) -> dict:
    """Printable text only (and no end of turn): a random model's answers become comparable."""
    return {"logit_bias": ascii_only(models_root / "test" / "tiny-mlx")}


@pytest.fixture(scope="module")
def http(mlx_server: IsolatedServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {mlx_server.info.token}"}
    with httpx.Client(base_url=mlx_server.info.url, headers=headers, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def client(mlx_server: IsolatedServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{mlx_server.info.url}v1", api_key=mlx_server.info.token, max_retries=0)


def instances(http: httpx.Client) -> dict[str, dict]:
    return {
        inst["id"]: inst
        for model in http.get("api/v1/models").json()["models"]
        for inst in model["loaded_instances"]
    }


def wait_until(check, timeout: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_mlx_folders_are_listed_with_their_config(http: httpx.Client) -> None:
    v0 = {m["id"]: m for m in http.get("api/v0/models").json()["data"]}
    plain, quant = v0[MODEL], v0[QUANT]
    assert plain["compatibility_type"] == quant["compatibility_type"] == "mlx"
    assert plain["arch"] == "qwen2" and plain["type"] == "llm"
    assert plain["max_context_length"] == 8192 and quant["max_context_length"] == 4096
    assert plain["quantization"] == "F32" and quant["quantization"] == "4bit"
    v1 = {m["key"]: m for m in http.get("api/v1/models").json()["models"]}
    assert v1[QUANT]["format"] == "mlx" and v1[QUANT]["path"] == "test/tiny-mlx-4bit"
    assert v1[QUANT]["quantization"] == {"name": "4bit", "bits_per_weight": 4}
    assert v1[MODEL]["architecture"] == "qwen2" and v1[MODEL]["params_string"]


def test_tools_and_reasoning_come_from_the_folders_template(
    http: httpx.Client, client: openai.OpenAI
) -> None:
    """The server renders an MLX model's own chat template as it does a GGUF's: capabilities
    come from it, and tools are rendered into the prompt."""
    v1 = {m["key"]: m for m in http.get("api/v1/models").json()["models"]}
    assert v1["test/tiny-mlx-tools"]["capabilities"]["trained_for_tool_use"] is True
    assert v1[MODEL]["capabilities"]["trained_for_tool_use"] is False
    assert "reasoning" in v1["test/tiny-mlx-think"]["capabilities"]
    plain = client.chat.completions.create(model="test/tiny-mlx-tools", messages=MESSAGES, max_tokens=2)
    tools = client.chat.completions.create(
        model="test/tiny-mlx-tools", messages=MESSAGES, max_tokens=2, tools=TOOLS
    )
    assert tools.usage.prompt_tokens > plain.usage.prompt_tokens + 20  # the tool list is in the prompt
    with pytest.raises(openai.BadRequestError) as forced:
        client.chat.completions.create(
            model="test/tiny-mlx-tools",
            messages=MESSAGES,
            max_tokens=2,
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
    assert "tool_choice" in str(forced.value)
    for identifier in instances(http):
        http.post("api/v1/models/unload", json={"instance_id": identifier})


def test_load_keeps_the_context_asked_for_and_the_estimate_holds(http: httpx.Client) -> None:
    estimate = http.post("api/v1/models/estimate", json={"model": QUANT, "context_length": 1024})
    assert estimate.status_code == 200, estimate.text
    loaded = http.post(
        "api/v1/models/load",
        json={"model": QUANT, "context_length": 1024, "identifier": "q", "echo_load_config": True},
    )
    assert loaded.status_code == 200, loaded.text
    body = loaded.json()
    assert body["load_config"]["context_length"] == 1024  # not the model's 4096 (LM Studio BT#2318)
    assert instances(http)["q"]["config"]["context_length"] == 1024
    memory = body["memory"]
    assert memory["model_size"] > 0 and memory["buffers"]["mlx active"] > 0
    assert memory["estimate"]["memory"]["modelBytes"] == estimate.json()["memory"]["modelBytes"]
    http.post("api/v1/models/unload", json={"instance_id": "q"})


def test_estimate_is_within_15_percent_of_what_the_worker_holds(
    http: httpx.Client, mlx_server: IsolatedServer
) -> None:
    """As tests/e2e/test_estimate_accuracy.py does for GGUF: load, fill the context, and compare
    the worker's resident memory since just before the model with the estimate. The estimate is
    the peak (a full prefill chunk's scores), which MLX holds only while the chunk runs: mlx-lm
    empties MLX's buffer cache after a prefill, so the peak is read from the worker's high-water
    mark, and what stays resident afterwards is below the estimate."""
    others = set(worker_pids(mlx_server.info))
    loaded = http.post(
        "api/v1/models/load", json={"model": WIDE, "context_length": 512, "identifier": "wide"}
    )
    assert loaded.status_code == 200, loaded.text
    memory = loaded.json()["memory"]
    try:
        filled = http.post(
            "v1/completions", json={"model": "wide", "prompt": "hello world " * 253, "max_tokens": 1}
        )
        assert filled.status_code == 200, filled.text
        assert filled.json()["usage"]["prompt_tokens"] > 500
        (pid,) = set(worker_pids(mlx_server.info)) - others
        peak = high_water_bytes(pid) - memory["rss_before"]
        steady = instances(http)["wide"]["memory_bytes"] - memory["rss_before"]
        estimate = memory["estimate"]["memory"]["totalBytes"]
        assert abs(report("MLX wide 512 filled, peak", estimate, peak)) <= 0.15
        report("MLX wide 512 filled, after", estimate, steady)
        assert steady < estimate
    finally:
        http.post("api/v1/models/unload", json={"instance_id": "wide"})


def high_water_bytes(pid: int) -> int:
    """The most memory the process has held resident at once (Linux's VmHWM)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024


def test_chat_streamed_and_not(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=8, temperature=0)
    choice = reply.choices[0]
    assert reply.usage.completion_tokens == 8 and choice.finish_reason == "length"
    assert reply.usage.prompt_tokens > 5
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == choice.message.content  # greedy: the same tokens either way
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "length"
    ]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8


def test_completions_stop_strings_and_seed(client: openai.OpenAI, ascii: dict) -> None:
    first = client.completions.create(
        model=MODEL, prompt="hello world", max_tokens=12, temperature=0, extra_body=ascii
    )
    text = first.choices[0].text
    assert first.usage.completion_tokens == 12 and text.isascii()
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    cut = client.completions.create(
        model=MODEL, prompt="hello world", max_tokens=12, temperature=0, stop=[stop], extra_body=ascii
    )
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].text == text[: text.index(stop)]
    sampled = [
        client.completions.create(
            model=MODEL,
            prompt="hello",
            max_tokens=10,
            temperature=1.5,
            top_p=0.9,
            seed=7,
            extra_body={"top_k": 50, "min_p": 0.01, "repeat_penalty": 1.3, **ascii},
        )
        .choices[0]
        .text
        for _ in range(2)
    ]
    assert sampled[0] == sampled[1]  # the seed is the request's own


def test_prefix_of_the_last_turn_is_reused(client: openai.OpenAI) -> None:
    history = [{"role": "user", "content": "hello world " * 30}]
    first = client.chat.completions.create(model=MODEL, messages=history, max_tokens=4, temperature=0)
    history += [{"role": "assistant", "content": first.choices[0].message.content}, *MESSAGES]
    second = client.chat.completions.create(model=MODEL, messages=history, max_tokens=4, temperature=0)
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached >= first.usage.prompt_tokens - 1  # the whole first prompt, at least
    assert cached < second.usage.prompt_tokens


def test_two_requests_run_together(client: openai.OpenAI, http: httpx.Client) -> None:
    results: dict[int, object] = {}

    def ask(index: int) -> None:
        results[index] = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"request {index}"}],
            max_tokens=40,
            temperature=0,
        )

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(results) == [0, 1]
    assert all(r.usage.completion_tokens == 40 for r in results.values())  # type: ignore[attr-defined]


def test_closing_the_stream_stops_the_generation(client: openai.OpenAI, http: httpx.Client) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=4000, temperature=0, stream=True
    )
    for index, _ in enumerate(stream):
        if index == 3:
            break
    stream.close()
    assert wait_until(lambda: all(inst["status"] == "idle" for inst in instances(http).values()))


def test_bad_inputs_get_a_clear_400(client: openai.OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.BadRequestError) as schema:
        client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            max_tokens=4,
            response_format={
                "type": "json_schema",
                "json_schema": {
                    "name": "x",
                    "schema": {"type": "object", "properties": {"a": {"type": "integer"}}},
                },
            },
        )
    assert "MLX backend cannot honour 'response_format'" in str(schema.value)
    with pytest.raises(openai.BadRequestError) as logprobs:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4, logprobs=True)
    assert "logprobs" in str(logprobs.value)
    embeddings = http.post("v1/embeddings", json={"model": MODEL, "input": "hello"})
    assert embeddings.status_code == 400, embeddings.text
    too_long = http.post(
        "api/v1/models/load", json={"model": QUANT, "context_length": 100000, "identifier": "too-long"}
    )
    assert too_long.status_code == 400 and "context_length" in too_long.text
    # The worker is still healthy.
    assert client.completions.create(model=MODEL, prompt="hello", max_tokens=2).usage.completion_tokens == 2
