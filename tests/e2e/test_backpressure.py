"""Per-instance queue limit (503 + Retry-After) and prompt-prefix reuse reported as cached tokens."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator

import httpx
import pytest

from lm_jupyter.client.discovery import free_port, start_headless, stop_process
from tests.conftest import write_test_models
from tests.e2e.test_lifecycle import NO_EOS

ENDLESS = {"model": "test/tiny-long", "prompt": "go", "max_tokens": -1, "logit_bias": NO_EOS, "stream": True}


@pytest.fixture(scope="module")
def small_queue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    root = write_test_models(tmp_path_factory.mktemp("models"))
    os.environ["JUPYTER_RUNTIME_DIR"] = str(tmp_path_factory.mktemp("runtime"))
    try:
        info = start_headless(
            port=free_port("127.0.0.1", 0),
            models_dir=str(root),
            config=["--ModelManager.max_queued_requests=1"],
        )
    finally:
        os.environ.pop("JUPYTER_RUNTIME_DIR")
    with httpx.Client(base_url=info.url, headers={"Authorization": f"Bearer {info.token}"}, timeout=60) as c:
        loaded = c.post(
            "api/v1/models/load", json={"model": "test/tiny-long", "context_length": 32768, "parallel": 1}
        )
        assert loaded.status_code == 200, loaded.text
        yield c
    assert info.pid is not None
    stop_process(info.pid)


def test_queue_limit_answers_503_with_retry_after(small_queue: httpx.Client) -> None:
    running, done = threading.Event(), threading.Event()
    results: list[int] = []

    def stream() -> None:  # runs until the test is done, then hangs up (which cancels it)
        with small_queue.stream("POST", "v1/completions", json=ENDLESS) as response:
            results.append(response.status_code)
            for _ in response.iter_lines():
                running.set()
                if done.is_set():
                    break

    threads = [threading.Thread(target=stream) for _ in range(2)]  # one runs (parallel 1), one waits
    threads[0].start()
    assert running.wait(30)
    threads[1].start()
    assert _wait_for_queue(small_queue, 2)
    third = small_queue.post("v1/completions", json={**ENDLESS, "stream": False})
    done.set()
    assert third.status_code == 503 and third.headers["Retry-After"] == "1"
    assert third.json()["error"]["code"] == "queue_full" and third.json()["error"]["type"] == "server_error"
    for thread in threads:
        thread.join(60)
    assert results == [200, 200]
    assert _wait_for_queue(small_queue, 0)


def test_a_burst_is_taken_up_to_the_slots_and_the_queue(small_queue: httpx.Client) -> None:
    """Requests arriving together are counted as they are checked, before any of them has
    reached the worker: of six sent at once to one slot and a queue of one, two are taken."""
    assert _wait_for_queue(small_queue, 0)

    async def burst() -> tuple[list[int], int]:
        """The statuses that came back (the queued request has none until the slot frees) and
        how many are still waiting for theirs."""
        async with httpx.AsyncClient(
            base_url=small_queue.base_url, headers=small_queue.headers, timeout=60
        ) as client:
            sends = [
                asyncio.ensure_future(
                    client.send(client.build_request("POST", "v1/completions", json=ENDLESS), stream=True)
                )
                for _ in range(6)
            ]
            done: set[asyncio.Future[httpx.Response]] = set()
            pending = set(sends)
            while len(done) < 5 and pending:  # one running, four refused: the queued one waits
                finished, pending = await asyncio.wait(
                    pending, timeout=30, return_when=asyncio.FIRST_COMPLETED
                )
                if not finished:
                    break
                done |= finished
            for send in pending:  # hanging up cancels what was taken
                send.cancel()
            for send in done:
                await send.result().aclose()
            return sorted(send.result().status_code for send in done), len(pending)

    assert asyncio.run(burst()) == ([200, 503, 503, 503, 503], 1)
    assert _wait_for_queue(small_queue, 0)


def _wait_for_queue(client: httpx.Client, depth: int) -> bool:
    for _ in range(500):
        model = client.get("api/v1/models", params={"loaded": ""}).json()["models"][0]
        if model["loaded_instances"][0]["queued"] == depth:
            return True
        threading.Event().wait(0.02)
    return False


def test_loaded_filter_and_cached_prefix(small_queue: httpx.Client) -> None:
    listed = small_queue.get("api/v1/models", params={"loaded": ""}).json()["models"]
    assert [m["key"] for m in listed] == ["test/tiny-long"]  # only models with instances
    history = [
        {"role": "system", "content": "You are a helpful assistant. " * 20},
        {"role": "user", "content": "hi"},
    ]
    body = {"model": "test/tiny-long", "messages": history, "max_tokens": 2}
    first = small_queue.post("v1/chat/completions", json=body).json()["usage"]
    second = small_queue.post(
        "v1/chat/completions", json={**body, "messages": [*history, {"role": "user", "content": "more"}]}
    ).json()["usage"]
    # The second prompt starts with the first one: its KV cache is reused, not recomputed.
    # (all but the first turn's closing "<|im_start|>assistant\n", which the second replaces)
    assert second["prompt_tokens_details"]["cached_tokens"] >= first["prompt_tokens"] - 16
    assert second["prompt_tokens_details"]["cached_tokens"] < second["prompt_tokens"]


def test_prometheus_metrics_on_the_servers_own_route(small_queue: httpx.Client) -> None:
    small_queue.post("v1/completions", json={"model": "test/tiny-long", "prompt": "a", "max_tokens": 3})
    text = small_queue.get("metrics").text
    assert 'lm_jupyter_loaded_instances{key="test/tiny-long"} 1.0' in text
    assert 'lm_jupyter_queue_depth{model="test/tiny-long"} 0.0' in text
    assert (
        'lm_jupyter_requests_total{finish_reason="length",kind="completion",model="test/tiny-long"}' in text
    )
    assert "lm_jupyter_generated_tokens_total" in text and "lm_jupyter_cached_prompt_tokens_total" in text
    assert httpx.get(str(small_queue.base_url) + "metrics").status_code in (401, 403)  # authenticated
