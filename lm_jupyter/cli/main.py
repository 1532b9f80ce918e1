"""``lmj`` command line: human messages on stderr, ``--json`` data on stdout, non-zero exit on failure."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..client import discovery
from ..client.client import Client, LmError
from ..client.command import add_commands, resolve_model
from ..client.commands import COMMANDS
from ..client.tables import Table
from ..hub.store import import_model, models_dir_from_env
from . import chat, log_stream
from .get import add_get_command
from .load_bar import load_bar
from .server import add_server_commands


def _say(message: str) -> None:
    print(message, file=sys.stderr)


# The server --host/--port name; main() sets it, so every command's _client() honours them.
_remote: discovery.ServerInfo | None = None


def _client() -> Client:
    if _remote is not None:
        return Client(_remote)
    if discovery.find_server() is None:
        _say("Starting the lm_jupyter server...")
    return Client.discover()


def cmd_import(args: argparse.Namespace) -> int:
    root = models_dir_from_env()
    target = import_model(Path(args.path), root, publisher=args.publisher, repo=args.repo, copy=args.copy)
    _say(f"Imported {args.path} to {target}")
    return 0


def cmd_shared(args: argparse.Namespace) -> int:
    """A command ``%lms`` shares (``client/commands.py``): data on stdout, the message on stderr;
    a load draws its progress on a terminal (``%lms load`` shows its own view)."""
    client = _client()
    if args.command == "load" and not (args.estimate_only or args.json):
        resolve_model(client, args)
        with load_bar(client, args.model, args.identifier, sys.stderr):
            result = args.command_action(client, args)
    else:
        result = args.command_action(client, args)
    if result.text is not None:
        print(result.text)
    if isinstance(result.data, Table):
        print(result.data, end="")
    elif isinstance(result.data, str):  # a new token, alone on stdout: TOKEN=$(lmj token create x)
        print(result.data)
    elif result.data is not None:
        print(json.dumps(result.data, indent=2))
    if result.message:
        _say(result.message)
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    return log_stream.run(_client(), args)


def cmd_chat(args: argparse.Namespace) -> int:
    return chat.run(_client(), args, colour=log_stream.use_colour())


def _remote_options(parser: argparse.ArgumentParser) -> None:
    """``lms``'s --host/--port: talk to that server (token: $LM_JUPYTER_TOKEN), start none."""
    group = parser.add_argument_group("remote server (default: $LM_JUPYTER_URL, else the local one)")
    group.add_argument("--host", default=argparse.SUPPRESS, help="host of the lm_jupyter server to use")
    group.add_argument("--port", type=int, default=argparse.SUPPRESS, help="its port (default 1234)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lmj",
        description="Run local LLMs: the lm_jupyter CLI.",
        epilog="Exit status: 0 on success, 1 on failure, 2 on bad arguments, 130 after Ctrl+C.",
    )
    _remote_options(parser)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("import", help="Copy or hard-link a GGUF file into the models folder.")
    p.add_argument("path")
    p.add_argument("--publisher", help="Publisher folder (default: local).")
    p.add_argument("--repo", help="Repository folder (default: the file name without quantization).")
    p.add_argument("--copy", action="store_true", help="Copy instead of hard-linking.")
    p.set_defaults(func=cmd_import)

    add_get_command(sub, _client)

    add_commands(sub, COMMANDS, func=cmd_shared)

    add_server_commands(sub, _client)

    p = sub.add_parser("log", help="Stream the server's log (lmj log stream).")
    log_stream.add_arguments(p)
    p.set_defaults(func=cmd_log)

    p = sub.add_parser("chat", help="Chat with a model in the terminal.")
    chat.add_arguments(p)
    p.set_defaults(func=cmd_chat)

    for name, command in sub.choices.items():
        if name not in ("import", "server", "daemon"):  # no server to talk to (`server` binds --host/--port)
            _remote_options(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    global _remote
    args = build_parser().parse_args(argv)
    if args.command not in ("server", "daemon"):
        _remote = discovery.remote_server(getattr(args, "host", None), getattr(args, "port", None))
    try:
        return int(args.func(args))
    except BrokenPipeError:  # output piped into `head` and friends
        return 0
    except (LmError, OSError, ValueError, RuntimeError) as exc:
        _say(f"Error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
