"""``lmj load`` options, ``ps --json`` and ``ls --variants`` against a running server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import gguf

from lm_jupyter.client.discovery import ServerInfo
from tests.e2e import test_cli as cli
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
