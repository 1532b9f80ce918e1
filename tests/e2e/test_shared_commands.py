"""``lmj`` and ``%lms`` share their commands (``client/commands.py``): one table of command
lines, run in order through each front end against one private server, must give the same
data, the same messages and the same refusals in both."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from lm_jupyter.client.client import Client
from lm_jupyter.kernel.magics import LmMagics
from tests.e2e.isolated_server import IsolatedServer, isolated_server
from tests.tiny_gguf import write_tiny_model


@dataclass
class Ran:
    data: Any  # JSON data (--json), or the table's text
    message: str  # the human message: lmj's stderr, what %lms prints
    error: str | None  # a refused command's one line (lmj also exits 1)


def keys(ran: Ran) -> set[str]:
    return {model["modelKey"] for model in ran.data}


# (command line, check); run in this order, so later rows see what earlier ones loaded.
TABLE: list[tuple[str, Callable[[Ran], object]]] = [
    ("ls --json --llm", lambda r: "test/tiny-chat" in keys(r) and "test/tiny-embed" not in keys(r)),
    ("ls --json --embedding", lambda r: keys(r) == {"test/tiny-embed"}),
    ("ls --embedding", lambda r: "test/tiny-embed" in r.data and "test/tiny-chat" not in r.data),
    ("ps", lambda r: "No models are currently loaded" in r.data),
    (
        "load test/tiny-chat -c 1024 --identifier shared -y",
        lambda r: (
            r.message.startswith("Model loaded successfully in ")
            and r.message.endswith('use the identifier "shared".')
        ),
    ),
    ("ps --json", lambda r: [(m["identifier"], m["contextLength"]) for m in r.data] == [("shared", 1024)]),
    (
        "load test/tiny-chat --estimate-only -c 2048 --json",
        lambda r: r.data["context_length"] == 2048 and "passesGuardrails" in r.data,
    ),
    ("unload shared --all", lambda r: r.error is not None and "either an identifier or --all" in r.error),
    ("unload -a", lambda r: r.message == "Unloaded 1 model."),
    ("unload", lambda r: r.message == "No models to unload."),
    (
        "unload nothing-here",
        lambda r: r.error is not None and "No loaded model has the identifier" in r.error,
    ),
    ("preset ls --json", lambda r: r.data == []),
    ("token ls --json", lambda r: r.data == []),
    ("remote ls --json", lambda r: r.data == []),
    ("remote add bad ftp://host/v1", lambda r: r.error is not None and "http(s) URL" in r.error),
    (
        "remote add spare http://127.0.0.1:9/v1 --models a/b --api-key-env SPARE_KEY",
        lambda r: r.message.startswith('Added remote upstream "spare"'),
    ),
    (
        "remote ls --json",
        lambda r: (
            [(u["name"], u["models"], u["api_key_env"]) for u in r.data] == [("spare", ["a/b"], "SPARE_KEY")]
        ),
    ),
    ("ls", lambda r: any(line.split()[:3] == ["a/b", "Remote:", "spare"] for line in r.data.splitlines())),
    ("remote rm spare", lambda r: r.message == 'Removed remote upstream "spare".'),
]


def via_lmj(server: IsolatedServer, line: str) -> Ran:
    result = server.lmj(*shlex.split(line), check=False)
    if result.returncode:
        assert result.returncode == 1 and result.stderr.startswith("Error: ")
        return Ran(None, "", result.stderr.strip().removeprefix("Error: "))
    data = json.loads(result.stdout) if "--json" in line else result.stdout
    return Ran(data, result.stderr.strip(), None)


def via_magic(magics: LmMagics, capsys: pytest.CaptureFixture[str], line: str) -> Ran:
    value = magics.lms(line)
    out, err = capsys.readouterr()
    if err:
        assert value is None
        return Ran(None, "", err.strip().removeprefix("Error: "))
    data = json.loads(json.dumps(value)) if "--json" in line else str(value)
    return Ran(data, out.strip(), None)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedServer]:
    folder = tmp_path_factory.mktemp("shared")
    write_tiny_model(folder / "models" / "test" / "tiny-chat-GGUF" / "tiny-chat-F32.gguf")
    embed = folder / "models" / "test" / "tiny-embed-GGUF" / "tiny-embed-F32.gguf"
    write_tiny_model(embed, name="tiny-embed", embedding=True, chat_template=None, seed=1)
    with isolated_server(folder, folder / "models") as server:
        yield server


def test_lmj_runs_the_table(shared: IsolatedServer) -> None:
    for line, check in TABLE:
        ran = via_lmj(shared, line)
        assert check(ran), (line, ran)


def test_lms_magic_runs_the_table(shared: IsolatedServer, capsys: pytest.CaptureFixture[str]) -> None:
    magics = LmMagics(shell=None)
    magics._client = Client(shared.info)
    for line, check in TABLE:
        ran = via_magic(magics, capsys, line)
        assert check(ran), (line, ran)
    assert magics.last_model is None  # the load set it, unload -a cleared it


def test_both_front_ends_build_the_same_parsers() -> None:
    """Every shared command takes the same flags in both (argparse's usage lines agree)."""
    from lm_jupyter.cli.main import build_parser
    from lm_jupyter.client.commands import COMMANDS
    from lm_jupyter.kernel.magics import _lms_parser

    def options(parser: Any, name: str) -> set[str]:
        command = next(a for a in parser._subparsers._group_actions).choices[name]
        return {flag for action in command._actions for flag in action.option_strings} - {"--host", "--port"}

    for command in COMMANDS:
        assert options(build_parser(), command.name) == options(_lms_parser(), command.name), command.name
