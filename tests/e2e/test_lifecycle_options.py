"""Load options, TTL, auto-evict, variants and status, on a server of their own."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import gguf
import httpx
import pytest

from lm_jupyter.client.discovery import ServerInfo, free_port, start_headless, stop_process
from tests.conftest import GEMMA_KEY, link_gemma, write_test_models
from tests.tiny_gguf import write_tiny_model

NO_EOS = {"2": -100, "4": -100}


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    root = write_test_models(tmp_path_factory.mktemp("models"))
    link_gemma(root)
    variants = root / "test" / "tiny-var-GGUF"
    write_tiny_model(variants / "tiny-var-Q4_K_M.gguf", file_type=gguf.LlamaFileType.MOSTLY_Q4_K_M, seed=7)
    write_tiny_model(variants / "tiny-var-Q8_0.gguf", file_type=gguf.LlamaFileType.MOSTLY_Q8_0, seed=8)
    previous = os.environ.get("JUPYTER_RUNTIME_DIR")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(tmp_path_factory.mktemp("runtime"))
    try:
        server: ServerInfo = start_headless(port=free_port("127.0.0.1", 0), models_dir=str(root))
    finally:
        if previous is None:
            os.environ.pop("JUPYTER_RUNTIME_DIR")
        else:
            os.environ["JUPYTER_RUNTIME_DIR"] = previous
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=120
    ) as c:
        yield c
    assert server.pid is not None
    stop_process(server.pid)


def loaded(http: httpx.Client) -> dict[str, dict]:
    return {
        inst["id"]: {**inst, "model": model["key"]}
        for model in http.get("api/v1/models").json()["models"]
        for inst in model["loaded_instances"]
    }


def unload_all(http: httpx.Client) -> None:
    for identifier in loaded(http):
        http.post("api/v1/models/unload", json={"instance_id": identifier})


def wait_until(check, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return False


def chat(http: httpx.Client, model: str, **extra: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, **extra}
    return http.post("v1/chat/completions", json=body)


def test_explicit_load_options_and_status(own: httpx.Client) -> None:
    unload_all(own)
    reply = own.post(
        "api/v1/models/load",
        json={
            "model": "test/tiny-chat",
            "context_length": 1024,
            "identifier": "a",
            "parallel": 2,
            "flash_attention": True,
            "gpu": "max",
            "echo_load_config": True,
        },
    ).json()
    assert reply["instance_id"] == "a" and reply["status"] == "loaded"
    assert reply["device"] == "cpu" and "CPU" in reply["message"]  # no GPU here: says so
    assert reply["load_config"] == {  # what it really runs with: no layer could go to a GPU
        "context_length": 1024,
        "parallel": 2,
        "flash_attention": True,
        "gpu_offload": 0.0,
    }
    # No `gpu`: as much as fits on a GPU (engine/guardrail.py auto_offload); none here, silently.
    default = own.post("api/v1/models/load", json={"model": "test/tiny-chat", "identifier": "b"}).json()
    assert default["device"] == "cpu" and default["gpu_offload"] == 0.0 and "message" not in default
    state = loaded(own)
    assert state["b"]["device"] == "cpu" and state["b"]["config"]["gpu_offload"] == 0.0
    v0 = {m["id"]: m for m in own.get("api/v0/models").json()["data"]}
    assert v0["a"]["device"] == v0["b"]["device"] == "cpu"
    assert set(state) == {"a", "b"}
    a = state["a"]
    assert a["status"] == "idle" and a["queued"] == 0 and a["loaded_by"] == "explicit"
    assert a["ttl_seconds"] is None and a["memory_bytes"] > 10_000_000  # a real process: python + llama.cpp
    # Requests address an instance by its identifier.
    assert chat(own, "b").json()["model"] == "b"
    assert chat(own, "a").json()["model"] == "a"
    own.post("api/v1/models/unload", json={"instance_id": "a"}).raise_for_status()
    assert set(loaded(own)) == {"b"}
    unload_all(own)


def test_idle_ttl_unloads_but_never_mid_generation(own: httpx.Client) -> None:
    unload_all(own)
    own.post(
        "api/v1/models/load", json={"model": "test/tiny-long", "context_length": 32768, "ttl": 1}
    ).raise_for_status()
    assert loaded(own)["test/tiny-long"]["ttl_seconds"] == 1
    # Generate for well over the TTL; the instance must stay.
    body = {"model": "test/tiny-long", "prompt": "go", "max_tokens": -1, "logit_bias": NO_EOS, "stream": True}
    started = time.monotonic()
    with own.stream("POST", "v1/completions", json=body) as response:
        for _line in response.iter_lines():
            if time.monotonic() - started > 2.5:
                assert loaded(own)["test/tiny-long"]["status"] == "generating"
                break
    # Idle now: gone about one TTL later, counted from the end of the last request.
    assert "test/tiny-long" in loaded(own)
    assert wait_until(lambda: "test/tiny-long" not in loaded(own), timeout=4)


def test_jit_load_uses_request_ttl_and_auto_evicts(own: httpx.Client) -> None:
    unload_all(own)
    own.post("api/v1/models/load", json={"model": "test/tiny-base"}).raise_for_status()  # explicit: stays
    assert chat(own, "test/tiny-chat", ttl=120).status_code == 200
    first = loaded(own)["test/tiny-chat"]
    assert first["loaded_by"] == "jit" and first["ttl_seconds"] == 120
    # A ttl on a request for an already loaded model does not change it.
    assert chat(own, "test/tiny-chat", ttl=5).status_code == 200
    assert loaded(own)["test/tiny-chat"]["ttl_seconds"] == 120
    # JIT-loading another model evicts the earlier JIT instance (at most one by default)...
    assert chat(own, "test/tiny-tools").status_code == 200
    state = loaded(own)
    assert "test/tiny-chat" not in state and state["test/tiny-tools"]["ttl_seconds"] == 3600
    # ...but never an explicitly loaded one.
    assert state["test/tiny-base"]["loaded_by"] == "explicit"
    unload_all(own)


def test_eviction_waits_for_a_generating_instance(own: httpx.Client) -> None:
    unload_all(own)
    body = {
        "model": "test/tiny-long",
        "prompt": "go",
        "max_tokens": 3000,
        "logit_bias": NO_EOS,
        "stream": True,
    }
    events: list[str] = []
    first_token = threading.Event()

    def stream() -> None:
        with own.stream("POST", "v1/completions", json=body) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(line[6:])
                    first_token.set()

    reader = threading.Thread(target=stream)
    reader.start()
    assert first_token.wait(30)
    reply = chat(own, "test/tiny-chat")  # JIT: must evict tiny-long, but only after it finishes
    reader.join(60)
    assert reply.status_code == 200
    assert events[-1] == "[DONE]" and '"finish_reason":"length"' in events[-2]  # not cut off
    assert set(loaded(own)) == {"test/tiny-chat"}
    unload_all(own)


def test_loading_status_is_visible(own: httpx.Client) -> None:
    unload_all(own)
    seen: set[str] = set()
    done = threading.Event()

    def load() -> None:
        own.post("api/v1/models/load", json={"model": GEMMA_KEY, "context_length": 8192})
        done.set()

    thread = threading.Thread(target=load)
    thread.start()
    while not done.is_set():
        seen |= {inst["status"] for inst in loaded(own).values()}
        time.sleep(0.01)
    thread.join()
    assert "loading" in seen
    assert loaded(own)[GEMMA_KEY]["status"] == "idle"
    unload_all(own)


def test_variants_pick_best_quantization_or_the_named_one(own: httpx.Client) -> None:
    unload_all(own)
    model = next(m for m in own.get("api/v1/models").json()["models"] if m["key"] == "test/tiny-var")
    assert sorted(model["variants"]) == ["test/tiny-var@q4_k_m", "test/tiny-var@q8_0"]
    assert model["selected_variant"] == "test/tiny-var@q8_0"  # the best quantization (both fit)
    ids = {m["id"] for m in own.get("v1/models").json()["data"]}
    assert {"test/tiny-var", "test/tiny-var@q4_k_m", "test/tiny-var@q8_0"} <= ids
    assert chat(own, "test/tiny-var@q4_k_m").json()["model"] == "test/tiny-var@q4_k_m"
    # The model key is served by whichever of its variants is loaded...
    assert chat(own, "test/tiny-var").json()["model"] == "test/tiny-var@q4_k_m"
    unload_all(own)
    # ...and JIT-loads the default variant when none is.
    assert chat(own, "test/tiny-var").json()["model"] == "test/tiny-var"
    assert loaded(own)["test/tiny-var"]["variant"] == "test/tiny-var@q8_0"
    unload_all(own)


def test_unloading_ends_the_worker_process(own: httpx.Client) -> None:
    unload_all(own)
    own.post("api/v1/models/load", json={"model": "test/tiny-chat"}).raise_for_status()
    pid = _worker_pid(own)
    assert Path(f"/proc/{pid}").exists()
    own.post("api/v1/models/unload", json={"instance_id": "test/tiny-chat"}).raise_for_status()
    assert wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=5)


def _worker_pid(http: httpx.Client) -> int:
    """The newest worker: a child process running lm_jupyter.engine.worker."""
    pids = [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and b"lm_jupyter.engine.worker" in _cmdline(entry)
    ]
    return max(pids)


def _cmdline(entry: Path) -> bytes:
    try:
        return (entry / "cmdline").read_bytes()
    except OSError:
        return b""
