"""``lmj load --estimate-only``, ``%lms load --estimate-only`` and the load guardrail, against a
real server whose models may use at most 40 MiB (``ModelManager.max_memory``).

The cap makes the guardrail refuse the tiny model at 4,096 tokens without flash attention
(66 MiB estimated, most of it attention buffers that only a long prompt touches), while
forcing that load stays cheap: nothing here allocates more than a few MiB for real. With
flash attention (the default) 4,096 tokens fit (15 MiB) and the server's default context,
32,768 tokens here, does not (58 MiB): what a load that sets nothing, or a just-in-time load,
gets refused at.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator

import httpx
import pytest

from lm_jupyter.client.client import Client
from lm_jupyter.client.discovery import ServerInfo, free_port, start_headless, stop_process
from lm_jupyter.client.tables import format_size
from lm_jupyter.kernel.magics import LmMagics
from tests.e2e.test_cli import lmj
from tests.tiny_gguf import write_tiny_model

MODEL = "me/tiny"


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerInfo, dict[str, str]]]:
    root = tmp_path_factory.mktemp("estimate")
    write_tiny_model(root / "models" / "me" / "tiny-GGUF" / "tiny-F32.gguf", context_length=32768)
    runtime = root / "runtime"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
        info = start_headless(
            port=free_port("127.0.0.1", 0),
            models_dir=str(root / "models"),
            config=["--ModelManager.max_memory=40MiB", "--ModelManager.default_context_length=32768"],
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LM_JUPYTER_", "JPY_"))}
    env.update(LM_JUPYTER_URL=info.url, LM_JUPYTER_TOKEN=info.token, JUPYTER_RUNTIME_DIR=str(runtime))
    try:
        yield info, env
    finally:
        assert info.pid is not None
        stop_process(info.pid)


def test_estimate_only_prints_lm_studios_format(capped: tuple[ServerInfo, dict[str, str]]) -> None:
    _, env = capped
    fits = lmj(env, "load", MODEL, "--estimate-only", "-c", "4096", "--flash-attention")
    lines = fits.stdout.splitlines()
    assert lines[0] == f"Model: {MODEL}"
    assert lines[1] == "Context Length: 4,096"
    # format_size, the one unit of every size and memory figure (client/tables.py)
    assert re.fullmatch(r"Estimated GPU Memory:   (0 B|\d+\.\d\d [KMG]iB)", lines[2])
    assert re.fullmatch(r"Estimated Total Memory: 1\d\.\d\d MiB", lines[3])  # ~15 MiB
    same = lmj(env, "load", MODEL, "--estimate-only", "-c", "4096", "--flash-attention", "--json")
    assert lines[3].split(": ", 1)[1].strip() == format_size(json.loads(same.stdout)["memory"]["totalBytes"])
    assert lines[4:] == ["", "Estimate: This model may be loaded based on your resource guardrails settings."]

    refused = lmj(env, "load", MODEL, "--estimate-only", "--gpu", "0.5")
    lines = refused.stdout.splitlines()
    assert lines[0] == f"Model: {MODEL}" and lines[1] == "GPU Offload: 50%"  # no context line
    assert lines[-1] == "Estimate: This model will fail to load based on your resource guardrails settings."
    assert "Confidence" not in refused.stdout  # a llama is modelled with high confidence
    assert refused.returncode == 0 and not refused.stderr.strip()

    data = json.loads(lmj(env, "load", MODEL, "--estimate-only", "-c", "32768", "--json").stdout)
    assert data["model"] == MODEL and data["context_length"] == 32768 and data["passesGuardrails"] is False
    memory = data["memory"]
    assert set(memory) == {
        "confidence",
        "modelVramBytes",
        "contextVramBytes",
        "totalVramBytes",
        "modelBytes",
        "contextBytes",
        "totalBytes",
    }
    assert memory["totalBytes"] == memory["modelBytes"] + memory["contextBytes"]
    assert data["available"]["ram_bytes"] <= 40 << 20
    assert data["breakdown"]["kv_cpu"] == 16 << 20  # 2 layers x 32,768 cells x 256 B


def test_guardrail_refuses_and_force_loads(capped: tuple[ServerInfo, dict[str, str]]) -> None:
    info, env = capped
    http = httpx.Client(base_url=info.url, headers={"Authorization": f"Bearer {info.token}"}, timeout=60)
    # A just-in-time load goes through the guardrail too.
    jit = http.post("v1/completions", json={"model": MODEL, "prompt": "x", "max_tokens": 1})
    assert jit.status_code == 400, jit.text
    error = jit.json()["error"]
    assert error["code"] == "insufficient_system_resources" and error["type"] == "invalid_request_error"

    refused = lmj(env, "load", MODEL, "-c", "4096", "--no-flash-attention", check=False)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    message = refused.stderr
    assert message.startswith("Error: Model loading was stopped due to insufficient system resources")
    assert "4,096-token context" in message and "GiB of RAM" in message
    assert f"lmj load {MODEL} --force" in message and "--context-length" in message

    forced = lmj(env, "load", MODEL, "-c", "4096", "--force")
    assert f'use the identifier "{MODEL}"' in forced.stderr
    try:
        loaded = {m["key"]: m for m in http.get("api/v1/models").json()["models"]}[MODEL]
        assert loaded["loaded_instances"][0]["config"]["context_length"] == 4096
    finally:
        lmj(env, "unload", MODEL)


def test_magics_estimate_only(
    capped: tuple[ServerInfo, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    info, _ = capped
    magics = LmMagics(shell=None)
    magics._client = Client(ServerInfo(info.url, info.token, None, "connect"))
    assert magics.lms(f"load {MODEL} --estimate-only --context-length 2048 --flash-attention") is None
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [f"Model: {MODEL}", "Context Length: 2,048"]
    assert out[-1] == "Estimate: This model may be loaded based on your resource guardrails settings."
    data = magics.lms(f"load {MODEL} --estimate-only --json")
    assert isinstance(data, dict) and data["passesGuardrails"] is False
    magics.lms(f"load {MODEL}")  # refused: one line on stderr, no traceback
    assert "insufficient system resources" in capsys.readouterr().err


def test_force_is_a_load_field() -> None:
    """Only the request's ``force`` skips the guardrail; the estimate route ignores it."""
    from lm_jupyter.api.requests import LoadRequest, parse_request

    assert parse_request(LoadRequest, b'{"model": "a/b", "force": true}').force is True
    assert parse_request(LoadRequest, b'{"model": "a/b"}').force is False
