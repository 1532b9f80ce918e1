"""Worker processes: JIT loading once, crash isolation (kill -9), and cancellation on disconnect."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from lm_jupyter.client.discovery import ServerInfo

LONG = "test/tiny-long"
NO_EOS = {"2": -100, "4": -100}  # ban </s> and <|im_end|> so random weights keep generating


# A streamed chat that would run for 32k tokens unless something stops it.
ENDLESS_CHAT = {
    "model": LONG,
    "messages": [{"role": "user", "content": "go"}],
    "max_tokens": -1,
    "logit_bias": NO_EOS,
    "stream": True,
}


def load_long(http: httpx.Client) -> None:
    unload_all(http)
    http.post("api/v1/models/load", json={"model": LONG, "context_length": 32768}).raise_for_status()


def worker_pids(server: ServerInfo) -> list[int]:
    """Worker processes are children of the server running lm_jupyter.engine.worker."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == server.pid and b"lm_jupyter.engine.worker" in cmdline:
            pids.append(int(entry.name))
    return pids


def instances(http: httpx.Client, key: str) -> list[dict]:
    for model in http.get("api/v1/models").json()["models"]:
        if model["key"] == key:
            return model["loaded_instances"]
    raise AssertionError(f"{key} not listed")


def assert_goes_idle(http: httpx.Client, within: float = 2) -> None:
    """The LONG instance stops generating soon after its client left (32k tokens would take long)."""
    deadline = time.monotonic() + within
    while instances(http, LONG)[0]["status"] != "idle":
        assert time.monotonic() < deadline, "generation kept running after the client left"
        time.sleep(0.02)


def unload_all(http: httpx.Client) -> None:
    for model in http.get("api/v1/models").json()["models"]:
        for inst in model["loaded_instances"]:
            http.post("api/v1/models/unload", json={"instance_id": inst["id"]})


def test_concurrent_first_requests_share_one_jit_load(http: httpx.Client, server: ServerInfo) -> None:
    unload_all(http)
    before = set(worker_pids(server))
    body = {"model": "test/tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda _: http.post("v1/chat/completions", json=body), range(6)))
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    assert len(instances(http, "test/tiny-chat")) == 1
    assert len(set(worker_pids(server)) - before) == 1
    unload_all(http)
    assert worker_pids(server) == []  # unload = the worker exits and the OS gets its memory back


def _stream_lines(http: httpx.Client, body: dict, lines: list[str], started: threading.Event) -> None:
    with http.stream("POST", "v1/chat/completions", json=body) as response:
        lines.append(f"status {response.status_code}")
        for line in response.iter_lines():
            if line.startswith("data: "):
                lines.append(line[6:])
                started.set()


def test_kill_9_worker_mid_stream(http: httpx.Client, server: ServerInfo) -> None:
    load_long(http)
    (pid,) = worker_pids(server)
    body = ENDLESS_CHAT
    lines: list[str] = []
    started = threading.Event()
    reader = threading.Thread(target=_stream_lines, args=(http, body, lines, started))
    reader.start()
    assert started.wait(30)
    # A second, non-streaming request running beside it (batched) also gets an error.
    queued: list[httpx.Response] = []
    plain = threading.Thread(
        target=lambda: queued.append(
            http.post("v1/chat/completions", json={**body, "stream": False})
        )
    )
    plain.start()
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    reader.join(30)
    plain.join(30)
    assert lines[0] == "status 200"
    assert lines[-1] == "[DONE]"
    error = json.loads(lines[-2])["error"]
    assert error["type"] == "server_error" and error["code"] == "model_crashed"
    assert "killed by SIGKILL (signal 9)" in error["message"]
    assert queued[0].status_code == 500 and queued[0].json()["error"]["code"] == "model_crashed"
    # The server is fine, the model shows as not loaded, and the next request JIT-loads it again.
    assert instances(http, LONG) == []
    reply = http.post("v1/chat/completions", json={**body, "stream": False, "max_tokens": 3})
    assert reply.status_code == 200
    assert len(instances(http, LONG)) == 1
    unload_all(http)


def test_disconnect_stops_generation(http: httpx.Client, server: ServerInfo) -> None:
    load_long(http)
    body = ENDLESS_CHAT
    chunks = 0
    own = httpx.Client(base_url=server.url, headers=http.headers, timeout=60)
    with own, own.stream("POST", "v1/chat/completions", json=body) as response:
        for line in response.iter_lines():
            chunks += line.startswith("data: ")
            if chunks == 20:
                assert instances(http, LONG)[0]["status"] == "generating"
                break
    # Closing the connection cancels: the instance is idle long before 32k tokens could be made.
    assert_goes_idle(http)
    # And the worker is free at once for the next request.
    start = time.monotonic()
    reply = http.post("v1/completions", json={"model": LONG, "prompt": "a", "max_tokens": 2})
    assert reply.status_code == 200 and time.monotonic() - start < 2
    unload_all(http)


def test_non_streaming_disconnect_also_cancels(http: httpx.Client, server: ServerInfo) -> None:
    load_long(http)
    body = {"model": LONG, "prompt": "go", "max_tokens": -1, "logit_bias": NO_EOS}
    with contextlib.suppress(httpx.TimeoutException):
        httpx.post(server.url + "v1/completions", json=body, headers=http.headers, timeout=1.0)
    assert_goes_idle(http)
    unload_all(http)
