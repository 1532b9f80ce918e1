"""``lmj daemon up|down|status``, ``lmj server start --bind/--cors/--set`` and ``lmj server settings``
as a user runs them: real ``lmj`` processes, a real headless server, real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from lm_jupyter.client.discovery import free_port
from tests.e2e.test_cli import lmj, lmj_env  # noqa: F401 (the fixture)
from tests.tiny_gguf import write_tiny_model


def test_daemon_up_status_down(lmj_env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    write_tiny_model(tmp_path / "models" / "me" / "tiny-chat-GGUF" / "tiny-chat-F32.gguf")
    assert json.loads(lmj(lmj_env, "daemon", "status", "--json").stdout) == {"status": "not-running"}
    assert "The daemon is not running." in lmj(lmj_env, "daemon", "status").stderr
    port = free_port("127.0.0.1", 0)
    up = lmj(lmj_env, "daemon", "up", "--port", str(port), "--cors", "--set", "jit_ttl=120")
    assert "daemon started (PID: " in up.stderr and f"port {port}" in up.stderr
    assert "CORS is on" in up.stderr
    try:
        status = json.loads(lmj(lmj_env, "daemon", "status", "--json").stdout)
        assert status["status"] == "running" and status["isDaemon"] is True and status["port"] == port
        record = json.loads((tmp_path / "runtime" / "lm_jupyter-server.json").read_text())
        assert record["pid"] == status["pid"] and record["port"] == port  # the state file
        assert f"(PID: {status['pid']}) on port {port}" in lmj(lmj_env, "daemon", "status").stderr
        again = lmj(lmj_env, "daemon", "up", "--json")
        assert json.loads(again.stdout)["pid"] == status["pid"]  # one daemon, not two
        # the same process is `lmj server`'s
        assert json.loads(lmj(lmj_env, "server", "status", "--json").stdout)["port"] == port
        # --cors: a browser page on another origin may call it (with a token)
        headers = {"Authorization": f"Bearer {record['token']}", "Origin": "http://example.com"}
        reply = httpx.get(f"http://127.0.0.1:{port}/api/v1/models", headers=headers)
        assert reply.status_code == 200 and reply.headers["access-control-allow-origin"] == "*"
        # --set at start: the server runs with it
        settings = json.loads(lmj(lmj_env, "server", "settings", "--json").stdout)
        assert settings["jit_ttl"] == 120.0
    finally:
        down = lmj(lmj_env, "daemon", "down")
    assert f"Stopped the daemon (PID: {status['pid']})." in down.stderr
    assert json.loads(lmj(lmj_env, "daemon", "status", "--json").stdout) == {"status": "not-running"}
    assert json.loads(lmj(lmj_env, "daemon", "down", "--json").stdout) == {"status": "not-running"}


def test_server_settings_change_the_running_server(lmj_env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    write_tiny_model(tmp_path / "models" / "me" / "tiny-chat-GGUF" / "tiny-chat-F32.gguf")
    port = free_port("127.0.0.1", 0)
    lmj(lmj_env, "server", "start", "--port", str(port))
    try:
        table = lmj(lmj_env, "server", "settings").stdout
        for name in ("jit_loading", "jit_ttl", "auto_evict", "enable_remote_mcp", "mcp_timeout"):
            assert name in table
        changed = lmj(
            lmj_env, "server", "settings", "--set", "jit_loading=false", "--set", "enable_remote_mcp=true"
        )
        assert "Changed jit_loading to false, enable_remote_mcp to true." in changed.stderr
        settings = json.loads(lmj(lmj_env, "server", "settings", "--json").stdout)
        assert settings["jit_loading"] is False and settings["enable_remote_mcp"] is True
        refused = lmj(lmj_env, "chat", "me/tiny-chat", "-p", "hi", check=False)
        assert refused.returncode == 1 and "just-in-time loading is off" in refused.stderr
        lmj(lmj_env, "server", "settings", "--set", "jit_loading=true")
        assert lmj(lmj_env, "chat", "me/tiny-chat", "-p", "hi", "--max-tokens", "2").returncode == 0
        bad = lmj(lmj_env, "server", "settings", "--set", "jit_ttl=soon", check=False)
        assert bad.returncode == 1 and "'jit_ttl' must be a number" in bad.stderr
    finally:
        lmj(lmj_env, "server", "stop")
    unknown = lmj(lmj_env, "server", "start", "--set", "nope=1", check=False)
    assert unknown.returncode == 1 and "unknown setting 'nope'" in unknown.stderr


def test_settings_route_refuses_bad_changes_and_api_tokens(http: httpx.Client) -> None:
    before = http.get("api/v1/settings").json()
    assert set(before) == {"settings", "help"} and before["help"]["jit_loading"]
    for body, param in [
        ({"nope": 1}, "nope"),
        ({"jit_ttl": "soon"}, "jit_ttl"),
        ({"jit_ttl": True}, "jit_ttl"),
        ({"auto_evict": 1}, "auto_evict"),
        ({"max_jit_instances": 0}, "max_jit_instances"),
        ({"jit_ttl": -5}, "jit_ttl"),
        ({"reasoning_format": "loud"}, "reasoning_format"),
        ({"jit_ttl": 60, "threads": 1.5}, "threads"),  # nothing changes when one is wrong
    ]:
        response = http.patch("api/v1/settings", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param
    for raw in (b"[]", b"{}", b"not json"):
        assert http.patch("api/v1/settings", content=raw).status_code == 400
    assert http.get("api/v1/settings").json() == before
    token = http.post("api/v1/tokens", json={"name": "settings-test"}).json()["token"]
    try:
        as_token = {"Authorization": f"Bearer {token}"}
        assert http.get("api/v1/settings", headers=as_token).status_code == 200
        refused = http.patch("api/v1/settings", json={"jit_ttl": 5}, headers=as_token)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_permissions"
    finally:
        http.delete("api/v1/tokens/settings-test")
    changed = http.patch("api/v1/settings", json={"mcp_timeout": 7})
    assert changed.status_code == 200 and changed.json()["settings"]["mcp_timeout"] == 7.0
    http.patch("api/v1/settings", json={"mcp_timeout": before["settings"]["mcp_timeout"]})
