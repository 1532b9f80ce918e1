"""A worker killed by a signal is named in the error, `lmj ps`, the model listing and the server
log; a model that keeps dying right after it loads is failed instead of reloaded forever."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import write_test_models
from tests.e2e.isolated_server import IsolatedServer, isolated_server
from tests.e2e.test_lifecycle import ENDLESS_CHAT, LONG, worker_pids

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedServer]:
    folder = tmp_path_factory.mktemp("deaths")
    models = write_test_models(folder / "models")
    with isolated_server(folder, models) as server:
        yield server


@pytest.fixture(scope="module")
def http(own: IsolatedServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {own.info.token}"}
    with httpx.Client(base_url=own.info.url, headers=headers, timeout=120) as client:
        yield client


def _kill_mid_stream(http: httpx.Client, own: IsolatedServer, signum: int) -> dict:
    """Start an endless stream (JIT-loading LONG), kill its worker once text flows, and return
    the SSE error event the client got."""
    before = set(worker_pids(own.info))
    lines: list[str] = []
    flowing = threading.Event()

    def read() -> None:
        with http.stream("POST", "v1/chat/completions", json=ENDLESS_CHAT) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    lines.append(line[6:])
                    flowing.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert flowing.wait(60)
    (pid,) = set(worker_pids(own.info)) - before
    os.kill(pid, signum)
    reader.join(60)
    assert lines[-1] == "[DONE]"
    return json.loads(lines[-2])["error"]


def _server_log(http: httpx.Client, needle: str) -> str:
    """The first server log line containing ``needle`` (replayed from history)."""
    deadline = time.monotonic() + 30
    with http.stream("GET", "api/v1/logs/stream", params={"source": "server", "history": "500"}) as response:
        for line in response.iter_lines():
            assert time.monotonic() < deadline, f"no server log line with {needle!r}"
            if line.startswith("data: ") and needle in line:
                return json.loads(line[6:])["data"]["content"]
    raise AssertionError("the log stream ended")


@pytest.mark.parametrize(
    ("signum", "words"),
    [
        (signal.SIGILL, "instructions this CPU cannot run"),
        (signal.SIGSEGV, "native code"),
        (signal.SIGKILL, "ran out of memory"),
    ],
)
def test_a_signal_death_is_named_everywhere(
    http: httpx.Client, own: IsolatedServer, signum: int, words: str
) -> None:
    name = signal.Signals(signum).name
    error = _kill_mid_stream(http, own, signum)
    assert error["code"] == "model_crashed" and error["type"] == "server_error"
    assert f"killed by {name} (signal {int(signum)})" in error["message"] and words in error["message"]
    if signum == signal.SIGKILL:
        assert "GiB" in error["message"]  # the load's estimate, for scale
    # The model listings and `lmj ps` say why it is no longer loaded.
    listed = next(m for m in http.get("api/v1/models").json()["models"] if m["key"] == LONG)
    assert listed["loaded_instances"] == [] and name in listed["last_error"]
    v0 = http.get(f"api/v0/models/{LONG}").json()
    assert v0["state"] == "not-loaded" and name in v0["last_error"]
    ps = own.lmj("ps").stdout
    assert "CRASHED" in ps and LONG in ps and name in ps and words in ps
    assert json.loads(own.lmj("ps", "--json").stdout) == []  # `lms ps --json`: loaded instances only
    # And the server log, as `lmj log stream --source server` shows it.
    assert words in _server_log(http, f"killed by {name}")
    # An explicit load starts afresh; while loaded, the old death is no longer shown.
    http.post("api/v1/models/load", json={"model": LONG}).raise_for_status()
    assert "last_error" not in http.get(f"api/v0/models/{LONG}").json()
    http.post("api/v1/models/unload", json={"instance_id": LONG}).raise_for_status()
    assert "last_error" not in http.get(f"api/v0/models/{LONG}").json()


def test_a_crash_loop_fails_the_model_until_an_explicit_load(http: httpx.Client, own: IsolatedServer) -> None:
    """Three deaths within seconds of a just-in-time load: the fourth request is refused with the
    reason instead of loading again; `lmj load` tries again and says why if it fails."""
    for _ in range(3):
        assert _kill_mid_stream(http, own, signal.SIGILL)["code"] == "model_crashed"
    before = set(worker_pids(own.info))
    reply = http.post("v1/chat/completions", json={**ENDLESS_CHAT, "stream": False})
    assert reply.status_code == 503, reply.text
    error = reply.json()["error"]
    assert error["code"] == "model_failed" and error["param"] == "model"
    assert (
        "3 times in a row" in error["message"]
        and "SIGILL" in error["message"]
        and "lmj load" in error["message"]
    )
    assert set(worker_pids(own.info)) == before  # nothing was started
    loaded = own.lmj("load", LONG, "--context-length", "32768")
    assert loaded.returncode == 0, loaded.stderr
    reply = http.post("v1/chat/completions", json={**ENDLESS_CHAT, "stream": False, "max_tokens": 2})
    assert reply.status_code == 200, reply.text
    http.post("api/v1/models/unload", json={"instance_id": LONG}).raise_for_status()
