"""``lmj`` as a whole: help for every command, exit codes, ``--json``, and remote servers
(``--host/--port`` with ``LM_JUPYTER_TOKEN``, or ``LM_JUPYTER_URL``)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

import pytest

from lm_jupyter.cli.main import build_parser, main
from lm_jupyter.client.discovery import ServerInfo, free_port
from tests.e2e.terminal import LMJ
from tests.e2e.test_cli import lmj


def commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path (``("token", "create")``...), found in the parser itself."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((*prefix, name))
                found += commands(sub, (*prefix, name))
    return found


ALL = commands(build_parser())


def test_the_command_list_is_complete() -> None:
    for expected in [("chat",), ("log",), ("log", "stream"), ("ls",), ("ps",), ("load",), ("unload",),
                     ("server",), ("import",), ("token", "create"), ("preset", "ls")]:  # fmt: skip
        assert expected in ALL


@pytest.mark.parametrize("command", ALL, ids=" ".join)
def test_help_for_every_command(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: lmj {' '.join(command)}") and "options:" in out


@pytest.mark.parametrize(
    "command", [("ls",), ("ps",), ("load",), ("server",), ("log", "stream"), ("token", "ls")]
)
def test_json_where_lms_has_it(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    assert "--json" in capsys.readouterr().out


@pytest.mark.parametrize("command", [c for c in ALL if len(c) == 1 and c[0] not in ("import", "server")])
def test_remote_options_on_every_server_command(
    command: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    out = capsys.readouterr().out
    assert "--host HOST" in out and "--port PORT" in out


@pytest.fixture
def bare_env(tmp_path: Path) -> dict[str, str]:
    """No server to discover: only what each test names."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LM_JUPYTER_", "JPY_"))}
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    env["LM_JUPYTER_MODELS_DIR"] = str(tmp_path / "models")
    return env


def port_of(server: ServerInfo) -> str:
    return server.url.rsplit(":", 1)[1].strip("/")


def test_remote_server_by_host_and_port(server: ServerInfo, bare_env: dict[str, str], tmp_path: Path) -> None:
    env = {**bare_env, "LM_JUPYTER_TOKEN": server.token}
    for args in (
        ("--host", "127.0.0.1", "--port", port_of(server), "ls", "--json"),
        (
            "ls",
            "--json",
            "--host",
            "127.0.0.1",
            "--port",
            port_of(server),
        ),  # after the command, as lms takes them
    ):
        result = lmj(env, *args)
        assert "test/tiny-chat" in [m["modelKey"] for m in json.loads(result.stdout)]
        assert result.stderr == ""  # no "Starting the lm_jupyter server..."
    assert not (tmp_path / "runtime" / "lm_jupyter-server.json").exists()  # nothing was started

    wrong = lmj({**bare_env, "LM_JUPYTER_TOKEN": "wrong"}, "ps", "--port", port_of(server), check=False)
    assert wrong.returncode == 1 and wrong.stderr.startswith("Error: Authentication required")
    assert wrong.stderr.count("\n") == 1


def test_remote_server_by_url(server: ServerInfo, bare_env: dict[str, str]) -> None:
    env = {**bare_env, "LM_JUPYTER_URL": server.url.rstrip("/"), "LM_JUPYTER_TOKEN": server.token}
    rows = json.loads(lmj(env, "ps", "--json").stdout)
    assert isinstance(rows, list)
    chat = lmj(env, "chat", "test/tiny-chat", "-p", "hello", "--max-tokens", "3", "--stats")
    assert "Prediction Stats:" in chat.stderr and "Predicted Tokens: " in chat.stderr


def test_exit_codes(server: ServerInfo, bare_env: dict[str, str]) -> None:
    assert lmj(bare_env, check=False).returncode == 2  # no command: a usage error
    assert lmj(bare_env, "frobnicate", check=False).returncode == 2
    assert lmj(bare_env, "ls", "--no-such-flag", check=False).returncode == 2
    closed = str(free_port("127.0.0.1", 0))
    unreachable = lmj(bare_env, "ps", "--port", closed, check=False)
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith(
        f"Error: Cannot reach the lm_jupyter server at http://127.0.0.1:{closed}/"
    )
    env = {**bare_env, "LM_JUPYTER_URL": server.url, "LM_JUPYTER_TOKEN": server.token}
    missing = lmj(env, "load", "nobody/nothing", check=False)
    assert missing.returncode == 1 and "not downloaded" in missing.stderr
    empty = subprocess.run(  # nothing to ask, and no terminal to ask in
        [*LMJ, "chat", "test/tiny-chat"], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    assert empty.returncode == 1 and "Nothing to ask" in empty.stderr
    piped = subprocess.run(
        [*LMJ, "chat", "test/tiny-chat", "--max-tokens", "2"],
        env=env,
        input="hi",
        capture_output=True,
        text=True,
    )
    assert piped.returncode == 0 and piped.stdout.endswith("\n")
    unknown = lmj(env, "chat", "nobody/nothing", "-p", "hi", check=False)
    assert unknown.returncode == 1 and "not downloaded" in unknown.stderr
