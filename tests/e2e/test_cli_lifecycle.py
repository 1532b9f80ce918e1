"""``lmj load`` options, ``ps --json`` and ``ls --variants`` against a running server."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import gguf
import pytest

from lm_jupyter.client.discovery import ServerInfo
from tests.conftest import QWEN_KEY
from tests.e2e import test_cli as cli
from tests.e2e.terminal import LMJ, Terminal, wait_until
from tests.tiny_gguf import write_tiny_model

PS_FIELDS = {
    "identifier",
    "modelKey",
    "type",
    "status",
    "queued",
    "contextLength",
    "parallel",
    "device",  # ours: where it runs (cpu, gpu, gpu+cpu), as the DEVICE column shows
    "sizeBytes",
    "memoryBytes",
    "ttlMs",
    "ttlRemainingMs",
    "loadedBy",
}


def lmj(server: ServerInfo, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JPY_")}
    env |= {"LM_JUPYTER_URL": server.url, "LM_JUPYTER_TOKEN": server.token}
    return cli.lmj(env, *args)


def test_load_flags_and_ps_json(server: ServerInfo) -> None:
    out = lmj(
        server,
        "load",
        "test/tiny-chat",
        "--identifier",
        "cli-a",
        "--ttl",
        "600",
        "--parallel",
        "2",
        "--context-length",
        "2048",
        "--gpu",
        "max",
        "--flash-attention",
    )
    assert 'use the identifier "cli-a"' in out.stderr and "runs on the CPU" in out.stderr
    try:
        rows = {row["identifier"]: row for row in json.loads(lmj(server, "ps", "--json").stdout)}
        row = rows["cli-a"]
        assert set(row) == PS_FIELDS
        assert (row["modelKey"], row["status"], row["loadedBy"]) == ("test/tiny-chat", "idle", "explicit")
        assert row["contextLength"] == 2048 and row["parallel"] == 2 and row["ttlMs"] == 600_000
        assert row["device"] == "cpu"
        assert 0 < row["ttlRemainingMs"] <= 600_000 and row["memoryBytes"] > 0
        table = lmj(server, "ps").stdout
        assert "cli-a" in table and "IDLE" in table and "/ 10m 0s" in table and "explicit" in table
    finally:
        assert 'Model "cli-a" unloaded.' in lmj(server, "unload", "cli-a").stderr


def test_ls_variants(server: ServerInfo, models_dir: Path) -> None:
    repo = models_dir / "test" / "tiny-quants-GGUF"
    write_tiny_model(repo / "tiny-quants-Q4_K_M.gguf", file_type=gguf.LlamaFileType.MOSTLY_Q4_K_M)
    write_tiny_model(repo / "tiny-quants-Q8_0.gguf", file_type=gguf.LlamaFileType.MOSTLY_Q8_0)
    plain = lmj(server, "ls").stdout
    assert "test/tiny-quants (2 variants)" in plain and "@q4_k_m" not in plain
    lines = lmj(server, "ls", "--variants").stdout.splitlines()
    assert any(line.startswith(" * test/tiny-quants@q8_0") for line in lines)
    assert any(line.startswith("   test/tiny-quants@q4_k_m") for line in lines)
    entry = next(
        e for e in json.loads(lmj(server, "ls", "--json").stdout) if e["modelKey"] == "test/tiny-quants"
    )
    assert entry["selectedVariant"] == "test/tiny-quants@q8_0" and len(entry["variants"]) == 2


@pytest.mark.slow
def test_load_draws_a_progress_bar_on_a_terminal(server: ServerInfo) -> None:
    """On a terminal ``lmj load`` draws the server's load progress (Qwen takes seconds to load,
    so the bar is seen moving) and ends it at 100%; piped, the message comes alone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JPY_")}
    env |= {"LM_JUPYTER_URL": server.url, "LM_JUPYTER_TOKEN": server.token}
    terminal = Terminal([*LMJ, "load", QWEN_KEY, "-c", "2048", "--identifier", "bar-qwen"], env)
    try:
        frames = set()

        def finished() -> bool:
            screen = terminal.screen()
            frames.update(re.findall(r"Loading model \[[^\]]+\]\s+(\d+\.\d)%", screen))
            return terminal.exit_status() is not None

        wait_until(finished, timeout=300, what="lmj load to finish")
        screen = terminal.screen()
        assert terminal.exit_status() == 0, screen
        assert "Loading model [" + "█" * 30 + "] 100.0%" in screen
        assert any(float(frame) < 100 for frame in frames), frames  # drawn while it loaded
        assert screen.index("100.0%") < screen.index("Model loaded successfully")
    finally:
        terminal.close()
        lmj(server, "unload", "bar-qwen")
    piped = lmj(server, "load", "test/tiny-chat", "--identifier", "bar-tiny")
    lmj(server, "unload", "bar-tiny")
    assert piped.returncode == 0 and "Loading model" not in piped.stderr, piped.stderr
