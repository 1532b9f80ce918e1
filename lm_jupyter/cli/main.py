"""``lmj`` command line: human messages on stderr, ``--json`` data on stdout, non-zero exit on failure."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..hub.store import import_model, models_dir_from_env
from ..kernel import admin, discovery
from ..kernel.client import Client, LmError
from ..kernel.estimate_view import estimate_text
from ..kernel.options import gpu_option, load_options
from ..kernel.tables import Table, ls_json, ls_table, ps_table
from . import chat, log_stream
from .get import add_get_command


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


def cmd_ls(args: argparse.Namespace) -> int:
    models = _client().models()
    if args.llm or args.embedding:
        kinds = {"llm"} if args.llm else set()
        kinds |= {"embedding"} if args.embedding else set()
        models = [m for m in models if m["type"] in kinds]
    if args.json:
        print(json.dumps(ls_json(models), indent=2))
    else:
        print(ls_table(models, variants=args.variants), end="")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    if args.estimate_only:
        return _estimate_only(args)
    started = time.perf_counter()
    result = _client().load(args.model, **load_options(args))
    if args.json:
        print(json.dumps(result))
        return 0
    _say(f"Model loaded successfully in {time.perf_counter() - started:.2f}s.")
    if result.get("message"):
        _say(result["message"])
    _say(f'To use the model in the API/SDK, use the identifier "{result["instance_id"]}".')
    return 0


def _estimate_only(args: argparse.Namespace) -> int:
    """``lms load --estimate-only``: the estimate on stdout, in LM Studio's format or as JSON."""
    result = _client().estimate(
        args.model,
        context_length=args.context_length,
        gpu=args.gpu,
        flash_attention=args.flash_attention or None,
    )
    if args.json:
        print(json.dumps(result))
    else:
        print(estimate_text(result, context_length=args.context_length, gpu=args.gpu))
    return 0


def cmd_unload(args: argparse.Namespace) -> int:
    client = _client()
    loaded = [row["identifier"] for row in client.loaded()]
    if args.all:
        targets = loaded
    elif args.identifier:
        targets = [args.identifier]
    elif len(loaded) == 1:
        targets = loaded
    elif not loaded:
        _say('You don\'t have any models loaded. Use "lmj load" to load a model.')
        return 0
    else:
        _say("Several models are loaded; name one (see `lmj ps`) or pass --all.")
        return 1
    if not targets:
        _say("No models to unload.")
        return 0
    for identifier in targets:
        client.unload(identifier)
        if not args.all:
            _say(f'Model "{identifier}" unloaded.')
    if args.all:
        _say(f"Unloaded {len(targets)} model{'s' if len(targets) != 1 else ''}.")
    return 0


def cmd_ps(args: argparse.Namespace) -> int:
    rows = _client().loaded()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(ps_table(rows), end="")
    return 0


def cmd_server(args: argparse.Namespace) -> int:
    if args.action == "start":
        running = discovery.headless_server()
        if running is not None:
            _say(f"The server is already running at {running.url}")
            return 0
        models_dir = args.models_dir or str(models_dir_from_env())
        info = discovery.start_headless(host=args.host, port=args.port, models_dir=models_dir)
        _say(f"Success! Server is now running on port {args.port}")
        _say(f"  OpenAI base URL: {info.v1}")
        _say(f"  API token:       {info.token}")
        _say(f"  Models folder:   {models_dir}")
        return 0
    if args.action == "stop":
        port = discovery.stop_headless()
        if port is None:
            _say("The server is not running.")
            return 1
        _say(f"Stopped the server on port {port}.")
        return 0
    running = discovery.headless_server()
    status: dict[str, Any] = {"running": running is not None}
    if running is not None:
        status["port"] = int(running.url.rsplit(":", 1)[1].strip("/"))
        status["url"] = running.url
    if args.json:
        print(json.dumps(status))
    elif running is not None:
        _say(f"The server is running on port {status['port']}.")
    else:
        _say("The server is not running.")
    return 0


def cmd_admin(args: argparse.Namespace) -> int:
    """``lmj token ...`` and ``lmj preset ...`` (shared with ``%lms``: kernel/admin.py)."""
    outcome = args.action_of(_client(), args)
    if isinstance(outcome.data, Table):
        print(outcome.data, end="")
    elif isinstance(outcome.data, str):  # a new token, alone on stdout: TOKEN=$(lmj token create x)
        print(outcome.data)
    elif outcome.data is not None:
        print(json.dumps(outcome.data, indent=2))
    if outcome.message:
        _say(outcome.message)
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

    p = sub.add_parser("ls", help="List the models in the models folder.")
    p.add_argument("--json", action="store_true")
    p.add_argument("--llm", action="store_true", help="Only LLMs.")
    p.add_argument("--embedding", action="store_true", help="Only embedding models.")
    p.add_argument("--variants", action="store_true", help="A row for every variant (quantization).")
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("load", help="Load a model into memory.")
    p.add_argument("model")
    p.add_argument("-c", "--context-length", type=int)
    p.add_argument("--identifier", help="Name of the loaded instance (default: the model key).")
    p.add_argument("--ttl", type=int, help="Unload after this many idle seconds.")
    p.add_argument("--gpu", type=gpu_option, help="GPU offload: off, max, or a fraction 0.0-1.0.")
    p.add_argument("--parallel", type=int, help="Maximum concurrent predictions.")
    p.add_argument("--flash-attention", action="store_true", help="Use flash attention.")
    p.add_argument("--draft-model", help="Speculative decoding: draft with this model (same vocabulary).")
    p.add_argument("-y", "--yes", action="store_true", help="Do not ask questions.")
    p.add_argument(
        "--estimate-only", action="store_true", help="Only estimate the memory the load needs; do not load."
    )
    p.add_argument(
        "--force", action="store_true", help="Load even if the memory guardrail estimates it will not fit."
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_load)

    p = sub.add_parser("unload", help="Unload a model (or --all).")
    p.add_argument("identifier", nargs="?")
    p.add_argument("-a", "--all", action="store_true")
    p.set_defaults(func=cmd_unload)

    p = sub.add_parser("ps", help="List loaded models.")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ps)

    p = sub.add_parser("server", help="Start, stop or inspect the headless server.")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("-p", "--port", type=int, default=discovery.DEFAULT_PORT)
    p.add_argument("--host", "--bind", dest="host", default="127.0.0.1")
    p.add_argument(
        "--models-dir", help="Models folder (default: $LM_JUPYTER_MODELS_DIR or ~/.lm_jupyter/models)."
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_server)

    p = sub.add_parser("token", help="Create, list and revoke API tokens for OpenAI clients.")
    admin.add_token_commands(p)
    p.set_defaults(func=cmd_admin, action_of=admin.token_command)

    p = sub.add_parser("preset", help="List, show, save and delete presets.")
    admin.add_preset_commands(p)
    p.set_defaults(func=cmd_admin, action_of=admin.preset_command)

    p = sub.add_parser("log", help="Stream the server's log (lmj log stream).")
    log_stream.add_arguments(p)
    p.set_defaults(func=cmd_log)

    p = sub.add_parser("chat", help="Chat with a model in the terminal.")
    chat.add_arguments(p)
    p.set_defaults(func=cmd_chat)

    for name, command in sub.choices.items():
        if name not in ("import", "server"):  # these never talk to a server (`server` binds --host/--port)
            _remote_options(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    global _remote
    args = build_parser().parse_args(argv)
    if args.command != "server":
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
