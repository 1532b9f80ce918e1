"""lm_jupyter in front of a real vLLM (CPU build) serving a tiny random Qwen2 on loopback.

Not part of ``make test``: ``make test-vllm`` runs it. The first run builds vLLM's venv (about
3.5 GB, once per machine: ``scripts/vllm_venv.py``); vLLM then needs a minute or two to start.
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

REPO = Path(__file__).resolve().parents[2]
MODEL = "test/tiny-qwen2"
START_DEADLINE = 900  # seconds for vLLM to load and compile on a small, busy machine
pytestmark = pytest.mark.timeout(START_DEADLINE + 300)  # the fixture's start counts against the first test


@pytest.fixture(scope="module")
def vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    python = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "vllm_venv.py")], check=True, capture_output=True, text=True
    ).stdout.strip()
    folder = tmp_path_factory.mktemp("tiny-qwen2")
    subprocess.run([python, str(Path(__file__).parent / "make_tiny_qwen2.py"), str(folder)], check=True)
    port = free_port("127.0.0.1", 0)
    log = (folder / "vllm.log").open("wb")
    proc = subprocess.Popen(
        [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder),
         "--served-model-name", MODEL, "--max-model-len", "256", "--dtype", "float32",
         "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_DEADLINE
        while True:
            assert proc.poll() is None, f"vLLM exited: see {folder / 'vllm.log'}"
            assert time.monotonic() < deadline, f"vLLM did not start in {START_DEADLINE}s"
            try:
                if httpx.get(f"{url}/models", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def proxy(vllm: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedServer]:
    folder = tmp_path_factory.mktemp("proxy")
    (folder / "models").mkdir()
    with isolated_server(folder, folder / "models") as server:
        server.lmj("remote", "add", "vllm", vllm)
        yield server


def test_vllm_model_is_listed_with_its_context_length(proxy: IsolatedServer) -> None:
    headers = {"Authorization": f"Bearer {proxy.info.token}"}
    entry = httpx.get(proxy.info.url + f"api/v0/models/{MODEL}", headers=headers).json()
    assert entry["compatibility_type"] == "remote" and entry["upstream"] == "vllm"
    assert entry["state"] == "loaded" and entry["max_context_length"] == 256  # vLLM's max_model_len
    assert any(line.split()[:3] == [MODEL, "Remote:", "vllm"] for line in proxy.lmj("ls").stdout.splitlines())


def test_completion_and_streamed_chat_through_vllm(proxy: IsolatedServer) -> None:
    client = OpenAI(base_url=proxy.info.v1, api_key=proxy.info.token, max_retries=0, timeout=300)
    completion = client.completions.create(model=MODEL, prompt="Hello", max_tokens=8, temperature=0)
    assert completion.usage is not None and completion.usage.completion_tokens == 8  # vLLM's count
    assert completion.choices[0].finish_reason == "length"
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(texts) > 1  # passed on chunk by chunk
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12
    assert chunks[-2].choices[0].finish_reason == "length"


def test_vllm_refusal_keeps_its_message(proxy: IsolatedServer) -> None:
    headers = {"Authorization": f"Bearer {proxy.info.token}"}
    body = {"model": MODEL, "prompt": "Hello", "max_tokens": 1000}  # more than max_model_len
    answer = httpx.post(proxy.info.url + "v1/completions", json=body, headers=headers, timeout=300)
    assert answer.status_code == 400, answer.text
    assert "256" in answer.json()["error"]["message"]  # vLLM's own explanation
    stats = httpx.post(
        proxy.info.url + "api/v0/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4},
        headers=headers,
        timeout=300,
    ).json()
    assert stats["stats"]["stop_reason"] == "maxPredictedTokensReached", json.dumps(stats)
