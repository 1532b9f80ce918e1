"""The ModelPanel's download box without a browser, against a server that downloads from the
stand-in Hugging Face Hub (``tests/hub_standin.py``) with the real ``huggingface_hub`` client.

The browser's clicks are sent as the custom messages the front end sends; what the browser
would draw is what the traits hold (search results, a repo's variants, download jobs with their
progress). The server's ``max_memory`` lies between what the Q8_0 and F16 variants need, so the
recommended variant is decided by the estimate, as in test_downloads.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import httpx
import pytest
from hub_standin import HubFile, HubRepo, StandinHub

from lm_jupyter.client.client import Client
from lm_jupyter.kernel.widgets import ModelPanel
from tests.e2e.isolated_server import IsolatedServer, hub_server
from tests.e2e.test_downloads import _variant, q8_fits_f16_does_not
from tests.e2e.test_widgets import frontend_sends, recording_comm, updates, wait_for

pytestmark = pytest.mark.timeout(180)
__all__ = ["recording_comm"]  # the autouse fixture that records what a browser would receive

T = gguf.LlamaFileType
CHAT = "test-org/tiny-chat-GGUF"
SLOW = "test-org/tiny-slow-GGUF"  # 2.4 MB at 64 kB per 0.2 s: ten seconds of progress


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinHub]:
    src = tmp_path_factory.mktemp("hub")
    hub = StandinHub().start()
    chat = src / "chat"
    _variant(chat, "tiny-chat-Q4_K_M.gguf", 64, T.MOSTLY_Q4_K_M, seed=40)
    _variant(chat, "tiny-chat-Q8_0.gguf", 128, T.MOSTLY_Q8_0, seed=41)
    _variant(chat, "tiny-chat-F16.gguf", 256, T.MOSTLY_F16, seed=42)
    hub.add_files(CHAT, chat, downloads=10)
    slow = _variant(src / "slow", "tiny-slow-Q8_0.gguf", 128, T.MOSTLY_Q8_0, seed=43)
    hub.add(HubRepo(SLOW, [HubFile(slow.name, slow.read_bytes())], throttle=0.2))
    hub.max_memory = q8_fits_f16_does_not(chat)  # type: ignore[attr-defined]
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture(scope="module")
def dl(hub: StandinHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedServer]:
    config = [f"--ModelManager.max_memory={hub.max_memory}"]  # type: ignore[attr-defined]
    with hub_server(tmp_path_factory.mktemp("widget-downloads"), hub.endpoint, config) as server:
        yield server


def models_dir(server: IsolatedServer) -> Path:
    return server.tokens_file.parent.parent.parent / "models"


def job_for(manager: ModelPanel, repo: str) -> dict[str, Any] | None:
    return next((job for job in manager.downloads if job["model"] == repo), None)


def test_search_variants_and_download_the_recommended_one(dl: IsolatedServer, recording_comm: list) -> None:
    manager = ModelPanel(client=Client(dl.info), refresh_seconds=0.3)
    try:
        assert manager.downloads == [] and manager.hub_results == []
        frontend_sends(manager, {"type": "search", "query": "tiny chat"})
        wait_for(lambda: bool(manager.hub_options))
        (result,) = manager.hub_results
        assert result["repo"] == CHAT and not result["exact_match"]
        assert result["quantizations"] == ["Q4_K_M", "Q8_0", "F16"]
        assert result["sizes"].endswith(" MiB") and " - " in result["sizes"]
        assert manager.hub_status == "" and manager.hub_error == ""
        # the best match's variants come with the search: the estimate picks Q8_0
        options = manager.hub_options
        assert options["repo"] == CHAT and options["format"] == "gguf"
        variants = {v["quantization"]: v for v in options["variants"]}
        assert [q for q, v in variants.items() if v["recommended"]] == ["Q8_0"]
        assert not variants["F16"]["fits"] and variants["F16"]["fit"] == "Likely too large for this machine"
        assert variants["Q8_0"]["fits"] and variants["Q8_0"]["fit"] == "Likely fit"
        assert not any(v["downloaded"] for v in variants.values())

        # Download without a variant: the server's recommendation; the model then appears in the list
        frontend_sends(manager, {"type": "download", "model": CHAT})
        wait_for(lambda: (job_for(manager, CHAT) or {}).get("status") == "completed")
        job = job_for(manager, CHAT)
        assert job is not None and job["quantization"] == "Q8_0" and job["model_key"] == "test-org/tiny-chat"
        assert job["ratio"] == 1.0 and job["percent"] == "100.00%" and job["error"] == ""
        wait_for(lambda: "test-org/tiny-chat" in {m["key"] for m in manager.models}, timeout=5)
        assert (models_dir(dl) / "test-org" / "tiny-chat-GGUF" / "tiny-chat-Q8_0.gguf").is_file()
        sent = updates(recording_comm, manager.comm.comm_id)
        assert any(s.get("downloads") and s["downloads"][-1]["status"] == "completed" for s in sent)

        # the variants shown are read again: the downloaded one says so
        wait_for(lambda: any(v["downloaded"] for v in manager.hub_options["variants"]), timeout=10)
        assert [v["quantization"] for v in manager.hub_options["variants"] if v["downloaded"]] == ["Q8_0"]
        manager.download(CHAT, "Q8_0").join(30)
        assert manager.hub_status == "Already downloaded: test-org/tiny-chat." and not manager.hub_error
    finally:
        manager.close()


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "search", "query": "  "}, "Missing required parameter: 'query'."),
        ({"type": "search", "query": "zebra"}, ""),
        ({"type": "download", "model": "nobody/nothing-GGUF"}, "nobody/nothing-GGUF was not found"),
        ({"type": "download", "model": CHAT, "quantization": "Q2_K"}, "has no Q2_K variant"),
        ({"type": "options", "repo": "tiny chat"}, "'tiny chat' is not a repository"),
    ],
)
def test_bad_input_is_one_line_in_the_box(dl: IsolatedServer, message: dict[str, Any], error: str) -> None:
    manager = ModelPanel(client=Client(dl.info), refresh_seconds=0)
    try:
        frontend_sends(manager, {"type": "download", "model": 5})  # malformed: ignored
        frontend_sends(manager, {"type": "pause"})
        assert manager.hub_status == "" and manager.hub_error == ""
        frontend_sends(manager, message)
        if error:
            wait_for(lambda: bool(manager.hub_error))
            assert error in manager.hub_error and "\n" not in manager.hub_error and manager.hub_status == ""
        else:  # a search without results says so
            wait_for(lambda: manager.hub_status.startswith("No models"))
            assert manager.hub_status == "No models found for 'zebra'." and manager.hub_results == []
    finally:
        manager.close()


def test_progress_of_a_job_started_elsewhere_pause_and_resume(dl: IsolatedServer, hub: StandinHub) -> None:
    # The default refresh (3 s): while a download runs, the poller looks twice a second.
    manager = ModelPanel(client=Client(dl.info))
    seen: list[tuple[str, float]] = []  # (the thread that set the trait, the bar's ratio)

    def record(change: dict[str, Any]) -> None:
        name = threading.current_thread().name
        seen.extend((name, job["ratio"]) for job in change["new"] if job["model"] == SLOW)

    manager.observe(record, "downloads")
    try:
        with httpx.Client(base_url=dl.info.url, headers={"Authorization": f"Bearer {dl.info.token}"}) as api:
            started = api.post("api/v1/models/download", json={"model": SLOW}).json()
        assert started["status"] == "downloading"
        # noticed at the next refresh (3 s); from then on the bar moves between polls by itself
        wait_for(lambda: len({ratio for _, ratio in seen if 0 < ratio < 1}) >= 2, timeout=20)
        job = job_for(manager, SLOW)
        assert job is not None and job["job_id"] == started["job_id"] and job["status"] == "downloading"
        assert job["speed"].endswith("/s") and len(job["eta"]) == 5 and job["bytes"].endswith("2.28 MiB")
        assert {name for name, _ in seen} <= {"lm_jupyter-models"}

        frontend_sends(manager, {"type": "pause", "id": job["job_id"]})
        wait_for(lambda: (job_for(manager, SLOW) or {}).get("status") == "paused")
        paused = job_for(manager, SLOW)
        assert paused is not None and 0 < paused["ratio"] < 1 and paused["speed"] == ""
        part = models_dir(dl) / "test-org" / "tiny-slow-GGUF" / "tiny-slow-Q8_0.gguf.part"
        assert part.stat().st_size > 0

        hub.repos[SLOW.lower()].throttle = 0.0
        frontend_sends(manager, {"type": "download", "model": SLOW, "quantization": paused["quantization"]})
        wait_for(lambda: (job_for(manager, SLOW) or {}).get("status") == "completed")
        done = job_for(manager, SLOW)
        assert done is not None and done["job_id"] != job["job_id"]  # one row: the resumed job
        assert [j["model"] for j in manager.downloads].count(SLOW) == 1
        wait_for(lambda: "test-org/tiny-slow" in {m["key"] for m in manager.models}, timeout=5)
        assert not part.exists()
    finally:
        manager.close()
        hub.repos[SLOW.lower()].throttle = 0.2


def test_jobs_route_lists_every_job(dl: IsolatedServer) -> None:
    client = Client(dl.info)
    jobs = client.downloads()
    slow = [j for j in jobs if j["model"] == SLOW]
    assert [j["status"] for j in slow] == ["paused", "completed"]  # oldest first, both kept
    assert {"job_id", "total_size_bytes", "downloaded_bytes", "started_at", "quantization"} <= slow[0].keys()
    assert jobs == sorted(jobs, key=lambda j: j["started_at"])
    client.close()
