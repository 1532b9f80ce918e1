"""``lmj`` as a user runs it: a real process, a real headless server, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lm_jupyter.client.discovery import free_port
from tests.tiny_gguf import write_tiny_model


@pytest.fixture
def lmj_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LM_JUPYTER_", "JPY_"))}
    env["LM_JUPYTER_MODELS_DIR"] = str(tmp_path / "models")
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    return env


def lmj(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "lm_jupyter.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_import_serve_load_ps_unload_stop(lmj_env: dict[str, str], tmp_path: Path) -> None:
    source = write_tiny_model(tmp_path / "downloads" / "tiny-chat-Q8_0.gguf")
    imported = lmj(lmj_env, "import", str(source), "--publisher", "me")
    target = tmp_path / "models" / "me" / "tiny-chat" / "tiny-chat-Q8_0.gguf"
    assert target.is_file() and str(target) in imported.stderr
    assert os.stat(target).st_ino == os.stat(source).st_ino  # hard-linked, not copied
    again = lmj(lmj_env, "import", str(source), "--publisher", "me", check=False)
    assert again.returncode == 1 and "already exists" in again.stderr

    port = free_port("127.0.0.1", 0)
    started = lmj(lmj_env, "server", "start", "--port", str(port))
    assert f"Success! Server is now running on port {port}" in started.stderr
    try:
        status = json.loads(lmj(lmj_env, "server", "status", "--json").stdout)
        assert status == {"running": True, "port": port, "url": f"http://127.0.0.1:{port}/"}
        listing = json.loads(lmj(lmj_env, "ls", "--json").stdout)
        assert [m["modelKey"] for m in listing] == ["me/tiny-chat"]
        assert (
            listing[0]["architecture"] == "llama" and listing[0]["path"] == "me/tiny-chat/tiny-chat-Q8_0.gguf"
        )
        table = lmj(lmj_env, "ls").stdout
        assert "You have 1 model" in table and "me/tiny-chat" in table
        loaded = lmj(lmj_env, "load", "me/tiny-chat", "--context-length", "512")
        assert 'use the identifier "me/tiny-chat"' in loaded.stderr
        rows = json.loads(lmj(lmj_env, "ps", "--json").stdout)
        assert rows[0]["identifier"] == "me/tiny-chat" and rows[0]["contextLength"] == 512
        assert rows[0]["device"] == "cpu"  # GPU by default, but there is none here
        ps = lmj(lmj_env, "ps").stdout.splitlines()
        assert "DEVICE" in ps[0].split() and "IDLE" in ps[1] and "CPU" in ps[1].split()
        assert "✓ LOADED" in lmj(lmj_env, "ls").stdout
        missing = lmj(lmj_env, "load", "nobody/nothing", check=False)
        assert missing.returncode == 1
        assert missing.stderr.strip().count("\n") == 0 and "not downloaded" in missing.stderr
        assert 'Model "me/tiny-chat" unloaded.' in lmj(lmj_env, "unload").stderr
        assert "No models are currently loaded" in lmj(lmj_env, "ps").stdout
    finally:
        stopped = lmj(lmj_env, "server", "stop", check=False)
    assert f"Stopped the server on port {port}." in stopped.stderr
    assert json.loads(lmj(lmj_env, "server", "status", "--json").stdout) == {"running": False}
    assert lmj(lmj_env, "server", "stop", check=False).returncode == 1


def test_import_refuses_non_gguf(lmj_env: dict[str, str], tmp_path: Path) -> None:
    bogus = tmp_path / "notes.gguf"
    bogus.write_text("not a model")
    result = lmj(lmj_env, "import", str(bogus), check=False)
    assert result.returncode == 1 and "not a GGUF file" in result.stderr
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").rglob("*.gguf"))


def test_every_command_has_help(lmj_env: dict[str, str]) -> None:
    for command in ("import", "ls", "load", "unload", "ps", "server"):
        assert "usage: lmj " + command in lmj(lmj_env, command, "--help").stdout
