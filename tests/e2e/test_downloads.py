"""``lmj get``, ``%lms get`` and the download REST routes against a stand-in Hugging Face Hub.

A real headless server (its ``HF_ENDPOINT`` pointing at ``tests/hub_standin.py``) searches and
downloads with the real ``huggingface_hub`` client; ``lmj`` runs as a real process. The
server's ``max_memory`` is set between what two variants of one repo need (by the same
estimator), so "the variant that fits" is decided by the estimate, not by a fixed answer.
This assumes no GPU that llama.cpp can use (CI machines); on a GPU machine the largest
variant may fit on the GPU instead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import httpx
import pytest
from hub_standin import HubFile, HubRepo, StandinHub
from tiny_gguf import TOOLS_TEMPLATE, write_tiny_model, write_tiny_projector
from tiny_mlx import write_tiny_mlx_model

from lm_jupyter.engine.gguf_meta import read_metadata
from lm_jupyter.engine.guardrail import MemoryGuard
from lm_jupyter.engine.instance import LoadOptions
from lm_jupyter.hub.download import RETRIES
from tests.e2e.isolated_server import IsolatedServer, hub_server

pytestmark = pytest.mark.timeout(180)

T = gguf.LlamaFileType
TOKEN = "hf_standin_token"


def _variant(folder: Path, name: str, n_embd: int, file_type: gguf.LlamaFileType, seed: int = 0) -> Path:
    return write_tiny_model(folder / name, n_embd=n_embd, file_type=file_type, seed=seed)


def _ram_needed(path: Path) -> int:
    guard = MemoryGuard("relaxed")
    est, _ = guard.estimate_header(
        read_metadata(path),
        path.stat().st_size,
        embedding=False,
        projector=0,
        context_length=4096,
        gpu=0.0,
        flash_attention=LoadOptions().flash_attention,  # the fit judges a default load
        memory=guard.memory(),
    )
    return est.ram_bytes


def q8_fits_f16_does_not(chat: Path) -> int:
    """A ``max_memory`` cap halfway between what tiny-chat's Q8_0 and F16 need: the server's
    estimate, not a fixed answer, must then pick Q8_0."""
    q8, f16 = (_ram_needed(chat / f"tiny-chat-{quant}.gguf") for quant in ("Q8_0", "F16"))
    return (q8 + f16) // 2


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinHub]:
    src = tmp_path_factory.mktemp("hub")
    hub = StandinHub().start()
    chat = src / "chat"
    _variant(chat, "tiny-chat-Q4_K_M.gguf", 64, T.MOSTLY_Q4_K_M)
    _variant(chat, "tiny-chat-Q8_0.gguf", 128, T.MOSTLY_Q8_0)
    _variant(chat, "tiny-chat-F16.gguf", 512, T.MOSTLY_F16)
    hub.add_files("test-org/tiny-chat-GGUF", chat, downloads=100)
    other = src / "other"
    _variant(other, "tiny-chat-Q4_K_M.gguf", 64, T.MOSTLY_Q4_K_M, seed=5)
    hub.add_files("other-org/tiny-chat-GGUF", other, downloads=5)
    vision = src / "vision"
    _variant(vision, "tiny-vision-Q8_0.gguf", 64, T.MOSTLY_Q8_0, seed=2)
    write_tiny_projector(vision / "mmproj-tiny-vision-F16.gguf")
    hub.add_files("test-org/tiny-vision-GGUF", vision, downloads=3)
    # Different seeds: the stand-in's CDN finds files by content, so no two may be equal.
    for seed, (name, n_embd) in enumerate(
        (("resume", 128), ("rest", 64), ("magic", 64), ("full", 64), ("again", 128))
    ):
        folder = src / name
        _variant(folder, f"tiny-{name}-Q8_0.gguf", n_embd, T.MOSTLY_Q8_0, seed=10 + seed)
        hub.add_files(f"test-org/tiny-{name}-GGUF", folder)
    split = src / "split"
    write_tiny_model(split / "tiny-split-Q8_0.gguf", file_type=T.MOSTLY_Q8_0, split_max_tensors=8, seed=4)
    hub.add_files("test-org/tiny-split-GGUF", split)
    for seed, name in enumerate(("slow", "slowmagic", "slowcli")):
        slow = _variant(src / name, f"tiny-{name}-Q8_0.gguf", 128, T.MOSTLY_Q8_0, seed=20 + seed)
        hub.add(HubRepo(f"test-org/tiny-{name}-GGUF", [HubFile(slow.name, slow.read_bytes())], throttle=0.05))
    corrupt = _variant(src / "corrupt", "tiny-corrupt-Q8_0.gguf", 64, T.MOSTLY_Q8_0, seed=30)
    hub.add(HubRepo("test-org/tiny-corrupt-GGUF", [HubFile(corrupt.name, corrupt.read_bytes(), "ab" * 32)]))
    for seed, (name, status) in enumerate((("locked", 401), ("denied", 403))):
        gated = _variant(src / name, f"{name}-Q8_0.gguf", 64, T.MOSTLY_Q8_0, seed=31 + seed)
        hub.add(
            HubRepo(
                f"gated-org/{name}-GGUF",
                [HubFile(gated.name, gated.read_bytes())],
                gated="manual",
                refuse_status=status,
            )
        )
    granted = _variant(src / "granted", "granted-Q8_0.gguf", 64, T.MOSTLY_Q8_0, seed=33)
    hub.add(
        HubRepo(
            "gated-org/granted-GGUF",
            [HubFile(granted.name, granted.read_bytes())],
            gated="manual",
            token=TOKEN,
        )
    )
    mlx = write_tiny_mlx_model(src / "mlx", bits=4, seed=40)
    (mlx / "README.md").write_text("# tiny chat, 4-bit MLX")  # left out of the download
    hub.add_files("mlx-community/tiny-chat-4bit", mlx, tags=["mlx", "safetensors"], library_name="mlx")
    # No file may equal one of tiny-chat-4bit's: another vocabulary and template.
    magic = write_tiny_mlx_model(
        src / "mlx-magic", bits=4, vocab_size=384, chat_template=TOOLS_TEMPLATE, seed=41
    )
    hub.add_files("mlx-community/tiny-magic-4bit", magic, tags=["mlx", "safetensors"], library_name="mlx")
    hub.max_memory = q8_fits_f16_does_not(chat)  # type: ignore[attr-defined]
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture(scope="module")
def dl(hub: StandinHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedServer]:
    folder = tmp_path_factory.mktemp("downloads")
    max_memory = hub.max_memory  # type: ignore[attr-defined]
    # TOKEN, the server's Hugging Face token, opens gated-org/granted-GGUF
    with hub_server(folder, hub.endpoint, [f"--ModelManager.max_memory={max_memory}"], TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def api(dl: IsolatedServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=dl.info.url, headers={"Authorization": f"Bearer {dl.info.token}"}, timeout=60
    ) as client:
        yield client


def lmj(server: IsolatedServer, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lm_jupyter.cli.main", *args],
        env=server.env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def models_dir(server: IsolatedServer) -> Path:
    return server.tokens_file.parent.parent.parent / "models"


def listed(server: IsolatedServer) -> list[str]:
    result = lmj(server, "ls", "--json")
    assert result.returncode == 0, result.stderr
    return [m["modelKey"] for m in json.loads(result.stdout)]


def hub_gets(hub: StandinHub, file: str) -> list[str | None]:
    """The Range headers of the downloads of ``file`` (resolve GETs, not header reads)."""
    return [
        rng
        for method, path, rng in hub.requests
        if method == "GET" and path.endswith("/" + file) and (rng is None or rng.endswith("-"))
    ]


def chat_once(api: httpx.Client, model: str) -> None:
    """Load ``model`` just in time, get a few tokens from it, and unload it."""
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    reply = api.post("v1/chat/completions", json=body)
    assert reply.status_code == 200, reply.text
    assert reply.json()["usage"]["completion_tokens"] >= 1
    api.post("api/v1/models/unload", json={"instance_id": model})


def wait_job(api: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = api.get(f"api/v1/models/download/status/{job_id}").json()
        if status["status"] != "downloading" or time.monotonic() > deadline:
            return dict(status)
        time.sleep(0.1)


# -- search and options --------------------------------------------------------------------


def test_search_and_options_rank_variants_by_the_estimate(api: httpx.Client) -> None:
    found = api.get("api/v1/models/search", params={"query": "tiny chat"}).json()
    assert [r["repo"] for r in found["results"]] == ["test-org/tiny-chat-GGUF", "other-org/tiny-chat-GGUF"]
    first = found["results"][0]
    assert not first["exact_match"] and first["format"] == "gguf"
    assert [v["quantization"] for v in first["variants"]] == ["Q4_K_M", "Q8_0", "F16"]  # smallest first
    assert all(v["size_bytes"] > 0 for v in first["variants"])

    options = api.get("api/v1/models/download/options", params={"model": "test-org/tiny-chat-GGUF"}).json()
    fits = {v["quantization"]: v["fit"] for v in options["variants"]}
    assert fits == {"F16": "willNotFit", "Q8_0": "fitWithoutGPU", "Q4_K_M": "fitWithoutGPU"}
    assert options["recommended"] == "tiny-chat-Q8_0.gguf" and options["selected"] is None

    exact = api.get(
        "api/v1/models/search", params={"query": "https://huggingface.co/test-org/tiny-chat-GGUF"}
    )
    assert [r["repo"] for r in exact.json()["results"]] == ["test-org/tiny-chat-GGUF"]
    assert exact.json()["results"][0]["exact_match"]


@pytest.mark.parametrize(
    ("params", "status", "param"),
    [
        ({}, 400, "query"),
        ({"query": "a@b@c"}, 400, "query"),
        ({"query": "http://huggingface.co/a/b"}, 400, "query"),
        ({"query": "tiny", "format": "onnx"}, 400, "format"),
        ({"query": "tiny", "limit": "0"}, 400, "limit"),
        ({"query": "nobody/nothing-GGUF"}, 404, None),
    ],
)
def test_search_refuses_bad_input(
    api: httpx.Client, params: dict[str, str], status: int, param: str | None
) -> None:
    response = api.get("api/v1/models/search", params=params)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["message"]


# -- lmj get -------------------------------------------------------------------------------


def test_get_keyword_picks_the_variant_that_fits(
    dl: IsolatedServer, api: httpx.Client, hub: StandinHub
) -> None:
    result = lmj(dl, "get", "tiny", "chat", "-y")
    assert result.returncode == 0, result.stderr
    err = result.stderr
    assert "Searching for models with the term tiny chat" in err
    assert "Multiple models found. Automatically selecting the first one due to --yes." in err
    assert "Based on your hardware, choosing the recommended option: tiny-chat-Q8_0.gguf [Q8_0]" in err
    assert "100.00%" in err and "Download completed. You can load the model with:" in err
    assert result.stdout == ""
    target = models_dir(dl) / "test-org" / "tiny-chat-GGUF" / "tiny-chat-Q8_0.gguf"
    source = next(f for f in hub.repos["test-org/tiny-chat-gguf"].files if f.path == target.name)
    assert target.read_bytes() == source.data
    assert "test-org/tiny-chat" in listed(dl)
    assert "lmj load test-org/tiny-chat" in err
    # The download is a working model: chat with it.
    reply = api.post(
        "v1/chat/completions",
        json={
            "model": "test-org/tiny-chat",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 3,
        },
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["usage"]["completion_tokens"] >= 1
    api.post("api/v1/models/unload", json={"instance_id": "test-org/tiny-chat"})


def test_get_at_quant_json_and_already_downloaded(dl: IsolatedServer) -> None:
    result = lmj(dl, "get", "test-org/tiny-chat-GGUF@q4_k_m", "-y", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["status"] == "completed" and status["quantization"] == "Q4_K_M"
    assert status["downloaded_bytes"] == status["total_size_bytes"] > 0
    assert status["model_key"] == "test-org/tiny-chat@q4_k_m"  # registered next to the other variant
    assert {"job_id", "started_at", "completed_at"} <= status.keys()
    again = lmj(dl, "get", "test-org/tiny-chat-GGUF", "--quant", "Q4_K_M", "-y", "--json")
    assert again.returncode == 0, again.stderr
    assert "You already have this model" in again.stderr
    assert json.loads(again.stdout)["status"] == "already_downloaded"
    both = lmj(dl, "get", "test-org/tiny-chat-GGUF@q8_0", "--quant", "Q4_K_M", "-y")
    assert both.returncode == 1
    assert both.stderr.strip() == (
        "Error: 'test-org/tiny-chat-GGUF@q8_0' asks for q8_0 but --quant says Q4_K_M: give one."
    )
    missing = lmj(dl, "get", "test-org/tiny-chat-GGUF@iq2_xxs", "-y")
    assert missing.returncode == 1
    assert "You have specified a quantization that does not exist" in missing.stderr
    assert "- tiny-chat-Q8_0.gguf [Q8_0]" in missing.stderr


def test_get_url_brings_the_projector(dl: IsolatedServer) -> None:
    result = lmj(
        dl, "get", "https://huggingface.co/test-org/tiny-vision-GGUF/blob/main/tiny-vision-Q8_0.gguf", "-y"
    )
    assert result.returncode == 0, result.stderr
    folder = models_dir(dl) / "test-org" / "tiny-vision-GGUF"
    assert sorted(p.name for p in folder.iterdir()) == [
        "mmproj-tiny-vision-F16.gguf",
        "tiny-vision-Q8_0.gguf",
    ]
    assert "test-org/tiny-vision" in listed(dl)  # one model: the projector is not a model of its own


def test_get_split_model(dl: IsolatedServer, api: httpx.Client) -> None:
    result = lmj(dl, "get", "test-org/tiny-split-GGUF", "-y")
    assert result.returncode == 0, result.stderr
    assert "tiny-split-Q8_0-00001-of-00003.gguf [Q8_0]" in result.stderr
    folder = models_dir(dl) / "test-org" / "tiny-split-GGUF"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"tiny-split-Q8_0-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert "test-org/tiny-split" in listed(dl)  # one model, not three
    chat_once(api, "test-org/tiny-split")  # llama.cpp loads the shards from the first


def test_get_asks_before_downloading(dl: IsolatedServer) -> None:
    declined = lmj(dl, "get", "test-org/tiny-again-GGUF", stdin="n\n")
    assert declined.returncode == 1 and "Download canceled." in declined.stderr
    assert "Download tiny-again-Q8_0.gguf [Q8_0]" in declined.stderr
    assert not (models_dir(dl) / "test-org" / "tiny-again-GGUF").exists()
    chosen = lmj(dl, "get", "tiny", "chat", "--select", stdin="2\n\ny\n")  # repo 2, its default option, yes
    assert chosen.returncode == 0, chosen.stderr
    assert "No exact match found. Please choose a model from the list below." in chosen.stderr
    assert "other-org/tiny-chat-GGUF" in chosen.stderr
    assert (models_dir(dl) / "other-org" / "tiny-chat-GGUF" / "tiny-chat-Q4_K_M.gguf").is_file()


def test_resume_after_a_cut_and_after_a_failed_job(dl: IsolatedServer, hub: StandinHub) -> None:
    file = "tiny-resume-Q8_0.gguf"
    size = len(next(f for f in hub.repos["test-org/tiny-resume-gguf"].files if f.path == file).data)
    # The first try breaks off after 300 kB, the next ones at once: the job fails, nothing is listed.
    hub.cut_after[file] = [300_000] + [0] * RETRIES
    failed = lmj(dl, "get", "test-org/tiny-resume-GGUF", "-y")
    assert failed.returncode == 1
    assert "broke off" in failed.stderr and "Run the download again" in failed.stderr
    assert "test-org/tiny-resume" not in listed(dl)
    folder = models_dir(dl) / "test-org" / "tiny-resume-GGUF"
    assert [p.name for p in folder.iterdir()] == [file + ".part"]
    assert (folder / (file + ".part")).stat().st_size == 300_000
    assert hub_gets(hub, file) == [None] + ["bytes=300000-"] * RETRIES
    # The next download continues from the .part, and one more cut is resumed within the job.
    hub.requests.clear()
    hub.cut_after[file] = [100_000]
    resumed = lmj(dl, "get", "test-org/tiny-resume-GGUF", "-y", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert hub_gets(hub, file) == ["bytes=300000-", "bytes=400000-"]
    assert (folder / file).stat().st_size == size and not (folder / (file + ".part")).exists()
    assert "test-org/tiny-resume" in listed(dl)


def test_ctrl_c_asks_and_pauses(dl: IsolatedServer, api: httpx.Client, hub: StandinHub) -> None:
    file = "tiny-slowcli-Q8_0.gguf"
    folder = models_dir(dl) / "test-org" / "tiny-slowcli-GGUF"
    hub.hold[file] = held = threading.Event()  # the download cannot finish before Ctrl+C
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lm_jupyter.cli.main", "get", "test-org/tiny-slowcli-GGUF", "-y"],
            env=dl.env,
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        lines = []
        while not any(line.startswith("Downloading ") for line in lines):
            lines.append(proc.stderr.readline())
            assert lines[-1], lines
        part = folder / (file + ".part")
        deadline = time.monotonic() + 60
        while not (part.exists() and part.stat().st_size > 0):  # bytes are arriving
            assert time.monotonic() < deadline, "the download never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate("n\n", timeout=60)
    finally:
        held.set()
        hub.hold.pop(file, None)
    assert proc.returncode == 130, err
    assert "Continue to download in the background? [Y/n]" in err
    assert "Download canceled; run the same `lmj get` to resume it." in err
    assert [p.name for p in folder.iterdir()] == ["tiny-slowcli-Q8_0.gguf.part"]


def test_busy_hub_is_retried(dl: IsolatedServer, hub: StandinHub) -> None:
    file = "tiny-again-Q8_0.gguf"
    hub.requests.clear()
    hub.fail_with[file] = [503, 429]
    result = lmj(dl, "get", "test-org/tiny-again-GGUF", "-y")
    assert result.returncode == 0, result.stderr
    assert hub_gets(hub, file) == [None, None, None]
    assert "test-org/tiny-again" in listed(dl)


def test_checksum_mismatch_is_rejected(dl: IsolatedServer) -> None:
    result = lmj(dl, "get", "test-org/tiny-corrupt-GGUF", "-y")
    assert result.returncode == 1
    assert "failed verification" in result.stderr and "discarded" in result.stderr
    assert "test-org/tiny-corrupt" not in listed(dl)
    assert not (models_dir(dl) / "test-org" / "tiny-corrupt-GGUF").exists()


@pytest.mark.parametrize("repo", ["gated-org/locked-GGUF", "gated-org/denied-GGUF"])
def test_gated_repo_is_one_clear_line(dl: IsolatedServer, repo: str) -> None:
    result = lmj(dl, "get", repo, "-y")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"Error: {repo} is gated: accept its terms")
    assert "Traceback" not in result.stderr
    assert not (models_dir(dl) / "gated-org").exists()


def test_gated_repo_with_access_downloads(dl: IsolatedServer) -> None:
    result = lmj(dl, "get", "gated-org/granted-GGUF", "-y")
    assert result.returncode == 0, result.stderr
    assert (models_dir(dl) / "gated-org" / "granted-GGUF" / "granted-Q8_0.gguf").is_file()


def test_missing_repo_and_no_results(dl: IsolatedServer) -> None:
    missing = lmj(dl, "get", "nobody/nothing-GGUF", "-y")
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "Error: nobody/nothing-GGUF was not found on the Hugging Face Hub (if it is private, give the "
        "server a token with access: HF_TOKEN)."
    )
    none = lmj(dl, "get", "zebra", "-y")
    assert none.returncode == 1 and "No models found with the specified search criteria." in none.stderr


def test_get_mlx_downloads_a_whole_mlx_repo_that_then_loads(dl: IsolatedServer) -> None:
    result = lmj(dl, "get", "tiny", "chat", "--mlx", "-y")
    assert result.returncode == 0, result.stderr
    folder = models_dir(dl) / "mlx-community" / "tiny-chat-4bit"
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert not (folder / "README.md").exists()
    listed = json.loads(lmj(dl, "ls", "--json").stdout)
    model = next(m for m in listed if m["modelKey"] == "mlx-community/tiny-chat-4bit")
    assert model["format"] == "mlx" and model["quantization"]["name"] == "4bit"
    loaded = lmj(dl, "load", "mlx-community/tiny-chat-4bit", "--context-length", "512", "-y")
    assert loaded.returncode == 0, loaded.stderr
    ps = json.loads(lmj(dl, "ps", "--json").stdout)
    assert [row["contextLength"] for row in ps if row["modelKey"] == "mlx-community/tiny-chat-4bit"] == [512]
    lmj(dl, "unload", "--all")


def test_lms_get_mlx_in_a_kernel(dl: IsolatedServer) -> None:
    from tests.e2e.kernel_harness import execute, start_kernel, stop_kernel

    kernel = start_kernel({**os.environ, **dl.env})
    try:
        execute(kernel, "%load_ext lm_jupyter").assert_no_error()
        run = execute(kernel, "%lms get tiny magic --mlx", timeout=60)
        run.assert_no_error()
        assert "Download completed. Load it with: %lms load mlx-community/tiny-magic-4bit" in run.stdout
        loaded = execute(kernel, "%lms load mlx-community/tiny-magic-4bit --context-length 256", timeout=60)
        loaded.assert_no_error()
        ps = execute(kernel, "%lms ps --json")
        assert "'contextLength': 256" in ps.result["text/plain"]
        execute(kernel, "%lms unload --all").assert_no_error()
    finally:
        stop_kernel(kernel)


def test_full_disk(dl: IsolatedServer) -> None:
    folder = models_dir(dl) / "test-org" / "tiny-full-GGUF"
    folder.mkdir(parents=True)
    (folder / "tiny-full-Q8_0.gguf.part").symlink_to("/dev/full")  # every write: ENOSPC
    result = lmj(dl, "get", "test-org/tiny-full-GGUF", "-y")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"Error: Not enough disk space in {folder}")
    assert "test-org/tiny-full" not in listed(dl)
    assert not folder.exists()


def test_no_network(dl: IsolatedServer, hub: StandinHub) -> None:
    port = hub.port
    hub.stop()
    try:
        result = lmj(dl, "get", "test-org/tiny-rest-GGUF", "-y")
    finally:
        hub.start(port)
    assert result.returncode == 1
    line = result.stderr.strip()
    assert (
        line.startswith(f"Error: Cannot reach the Hugging Face Hub at {hub.endpoint}: ") and "\n" not in line
    )
    assert line.endswith("Check the network (or HF_ENDPOINT).")


def test_get_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lm_jupyter.cli.main", "get", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for flag in ("--quant", "--gguf", "--mlx", "--yes", "--select", "--json", "--limit"):
        assert flag in result.stdout


# -- REST ----------------------------------------------------------------------------------


def test_rest_download_job_and_status(api: httpx.Client, dl: IsolatedServer) -> None:
    started = api.post(
        "api/v1/models/download", json={"model": "test-org/tiny-rest-GGUF", "quantization": "Q8_0"}
    )
    assert started.status_code == 200, started.text
    job = started.json()
    assert job["status"] == "downloading" and job["job_id"].startswith("job_")
    assert job["total_size_bytes"] > 0 and job["started_at"].endswith("Z")
    done = wait_job(api, job["job_id"])
    assert done["status"] == "completed", done
    assert done["downloaded_bytes"] == done["total_size_bytes"] == job["total_size_bytes"]
    assert done["completed_at"] >= done["started_at"] and done["model_key"] == "test-org/tiny-rest"
    again = api.post(
        "api/v1/models/download", json={"model": "https://huggingface.co/test-org/tiny-rest-GGUF"}
    )
    assert again.json()["status"] == "already_downloaded" and "job_id" not in again.json()
    assert "test-org/tiny-rest" in listed(dl)

    unknown = api.get("api/v1/models/download/status/job_nothing")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "job_not_found"
    for body, param in (({}, "model"), ({"model": 3}, "model"), ({"model": "tiny chat"}, "model")):
        bad = api.post("api/v1/models/download", json=body)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == param, bad.text
    wrong = api.post(
        "api/v1/models/download", json={"model": "test-org/tiny-rest-GGUF", "quantization": "Q2_K"}
    )
    assert wrong.status_code == 404 and wrong.json()["error"]["code"] == "quantization_not_found"


def test_rest_pause_and_resume(api: httpx.Client, dl: IsolatedServer, hub: StandinHub) -> None:
    file = "tiny-slow-Q8_0.gguf"
    job = api.post("api/v1/models/download", json={"model": "test-org/tiny-slow-GGUF"}).json()
    deadline = time.monotonic() + 30
    while api.get(f"api/v1/models/download/status/{job['job_id']}").json()["downloaded_bytes"] < 200_000:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    paused = api.delete(f"api/v1/models/download/{job['job_id']}").json()
    assert paused["status"] == "paused" and 0 < paused["downloaded_bytes"] < paused["total_size_bytes"]
    assert api.get(f"api/v1/models/download/status/{job['job_id']}").json()["status"] == "paused"
    part = models_dir(dl) / "test-org" / "tiny-slow-GGUF" / (file + ".part")
    held = part.stat().st_size
    assert held > 0 and "test-org/tiny-slow" not in listed(dl)
    hub.requests.clear()
    again = api.post("api/v1/models/download", json={"model": "test-org/tiny-slow-GGUF"}).json()
    assert again["job_id"] != job["job_id"]
    done = wait_job(api, again["job_id"])
    assert done["status"] == "completed" and hub_gets(hub, file) == [f"bytes={held}-"]
    assert "test-org/tiny-slow" in listed(dl)
    unknown = api.delete("api/v1/models/download/job_nothing")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "job_not_found"


def test_rest_failed_job_reports_the_error(api: httpx.Client) -> None:
    job = api.post("api/v1/models/download", json={"model": "gated-org/denied-GGUF"}).json()
    done = wait_job(api, job["job_id"])
    assert done["status"] == "failed" and done["error"]["code"] == "gated_repo"


# -- %lms get ------------------------------------------------------------------------------


def test_lms_get_in_a_kernel(dl: IsolatedServer, hub: StandinHub) -> None:
    from tests.e2e.kernel_harness import execute, start_kernel, stop_kernel

    kernel = start_kernel({**os.environ, **dl.env})
    hub.hold["tiny-slowmagic-Q8_0.gguf"] = held = threading.Event()  # running until interrupted
    try:
        execute(kernel, "%load_ext lm_jupyter").assert_no_error()
        run = execute(kernel, "%lms get test-org/tiny-magic-GGUF", timeout=60)
        run.assert_no_error()
        assert "Downloading tiny-magic-Q8_0.gguf [Q8_0]" in run.stdout
        assert "Download completed. Load it with: %lms load test-org/tiny-magic" in run.stdout
        shown = run.of("display_data") + run.of("update_display_data")
        assert shown and "100.00%" in shown[-1]["data"]["text/plain"]
        again = execute(kernel, "%lms get test-org/tiny-magic-GGUF --json")
        assert "You already have this model" in again.stdout
        assert "'already_downloaded'" in again.result["text/plain"]
        bad = execute(kernel, "%lms get gated-org/locked-GGUF")
        assert (
            bad.stderr.strip().startswith("%lms get: gated-org/locked-GGUF is gated")
            or "is gated" in bad.stderr
        )
        assert "Traceback" not in bad.stderr

        slow_part = models_dir(dl) / "test-org" / "tiny-slowmagic-GGUF" / "tiny-slowmagic-Q8_0.gguf.part"

        def interrupt(message: dict[str, Any]) -> None:
            if message["msg_type"] == "display_data":  # the progress line: the download runs
                deadline = time.monotonic() + 60
                while not (slow_part.exists() and slow_part.stat().st_size > 0):  # bytes arrived
                    assert time.monotonic() < deadline, "the download never started"
                    time.sleep(0.05)
                kernel.km.interrupt_kernel()

        stopped = execute(kernel, "%lms get test-org/tiny-slowmagic-GGUF", timeout=60, on_message=interrupt)
        assert "Download paused; run the same %lms get to resume it." in stopped.stdout
        folder = models_dir(dl) / "test-org" / "tiny-slowmagic-GGUF"
        assert [p.name for p in folder.iterdir()] == ["tiny-slowmagic-Q8_0.gguf.part"]
        none = execute(kernel, "%lms get zebra")
        assert none.stderr.strip() == "Error: No models found for 'zebra'."
        wrong = execute(kernel, "%lms get test-org/tiny-magic-GGUF@q2_k")
        assert wrong.stderr.strip() == "Error: test-org/tiny-magic-GGUF has no q2_k variant; it has Q8_0."
    finally:
        held.set()
        hub.hold.pop("tiny-slowmagic-Q8_0.gguf", None)
        stop_kernel(kernel)
