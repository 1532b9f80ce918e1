"""The ``token``, ``preset`` and ``remote`` commands of ``lmj`` and ``%lms`` (see ``command.py``)."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from .client import Client, LmError
from .command import Command, CommandResult
from .tables import Table

# -- tokens ------------------------------------------------------------------------------


def _token_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="token_command", metavar="COMMAND", required=True)
    create = commands.add_parser("create", help="create a token; it is printed once, never again")
    create.add_argument("name", metavar="NAME", help="a name to tell tokens apart, e.g. my-ide")
    create.add_argument("--expires", type=float, metavar="DAYS", help="expire after this many days")
    create.add_argument("--json", action="store_true", help="print the token and its details as JSON")
    ls = commands.add_parser("ls", help="list tokens (names, dates and status; never the tokens)")
    ls.add_argument("--json", action="store_true", help="print the list as JSON")
    revoke = commands.add_parser("revoke", help="revoke a token: it stops working at once")
    revoke.add_argument("name", metavar="NAME")


def _token(client: Client, args: argparse.Namespace) -> CommandResult:
    if args.token_command == "create":
        created = client.create_token(args.name, args.expires)
        expiry = f", expires {_when(created['expires_at'])}" if created["expires_at"] else ""
        message = (
            f'Created API token "{args.name}"{expiry}. Copy it now: it will not be shown again. '
            "Use it as the api_key of OpenAI clients."
        )
        return CommandResult(created if args.json else created["token"], message)
    if args.token_command == "revoke":
        client.revoke_token(args.name)
        return CommandResult(message=f'Revoked API token "{args.name}".')
    tokens = client.tokens()
    return CommandResult(tokens if args.json else token_table(tokens))


def token_table(tokens: list[dict[str, Any]]) -> Table:
    if not tokens:
        return Table([], [], caption="You have no API tokens. Create one with: lmj token create NAME")
    rows = [
        [t["name"], _when(t["created_at"]), _when(t["expires_at"]) or "never", t["status"].upper()]
        for t in tokens
    ]
    return Table(["NAME", "CREATED", "EXPIRES", "STATUS"], rows)


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    try:
        return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")
    except (ValueError, OverflowError, OSError):  # a date past year 9999 (an old server's file)
        return f"{timestamp:.0f} (Unix time)"


# -- presets -----------------------------------------------------------------------------

# `save` flags and the preset fields they set.
_SAVE_FLAGS: list[tuple[str, str, type, str, str]] = [
    ("--system", "system_prompt", str, "TEXT", "system prompt"),
    ("--temperature", "temperature", float, "T", "sampling temperature"),
    ("--top-p", "top_p", float, "P", "nucleus sampling probability"),
    ("--top-k", "top_k", int, "K", "sample from the K most likely tokens"),
    ("--max-tokens", "max_tokens", int, "N", "most tokens to generate (-1: no limit)"),
    ("--seed", "seed", int, "N", "random seed, for repeatable output"),
    ("--context-length", "context_length", int, "N", "context length when the preset loads a model"),
]


def _preset_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="preset_command", metavar="COMMAND", required=True)
    ls = commands.add_parser("ls", help="list presets")
    ls.add_argument("--json", action="store_true", help="the list as JSON")
    show = commands.add_parser("show", help="show a preset's settings as JSON")
    show.add_argument("name", metavar="NAME")
    save = commands.add_parser(
        "save", help='save a preset (replacing one of the same name); use it with "preset": NAME'
    )
    save.add_argument("name", metavar="NAME")
    for flag, field, kind, metavar, help_text in _SAVE_FLAGS:
        save.add_argument(flag, dest=field, type=kind, metavar=metavar, help=help_text)
    save.add_argument("--json-schema", metavar="FILE", help="JSON Schema file the output must follow")
    save.add_argument("--from-file", metavar="FILE.json", help="start from this preset JSON file")
    rm = commands.add_parser("rm", help="delete a preset")
    rm.add_argument("name", metavar="NAME")


def _preset(client: Client, args: argparse.Namespace) -> CommandResult:
    if args.preset_command == "show":
        return CommandResult(client.preset(args.name))
    if args.preset_command == "save":
        client.save_preset(args.name, preset_body(args))
        return CommandResult(message=f'Preset "{args.name}" saved. Use it with "preset": "{args.name}".')
    if args.preset_command == "rm":
        client.delete_preset(args.name)
        return CommandResult(message=f'Preset "{args.name}" deleted.')
    presets = client.presets()
    return CommandResult(presets if args.json else preset_table(presets))


def preset_body(args: argparse.Namespace) -> dict[str, Any]:
    """The preset JSON that ``save`` sends: ``--from-file``, then the flags on top."""
    body = _read_json(args.from_file, "--from-file") if args.from_file else {}
    if not isinstance(body, dict):
        raise LmError(f"--from-file: {args.from_file} must hold a JSON object (a preset).")
    for _, field, *_rest in _SAVE_FLAGS:
        if getattr(args, field) is not None:
            body[field] = getattr(args, field)
    if args.json_schema:
        schema = _read_json(args.json_schema, "--json-schema")
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": args.name, "schema": schema, "strict": True},
        }
    return body


def _read_json(path: str, flag: str) -> Any:
    try:
        return json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
    except OSError as exc:
        raise LmError(f"{flag}: cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise LmError(f"{flag}: {path} is not valid JSON: {exc}") from None


def preset_table(presets: list[dict[str, Any]]) -> Table:
    if not presets:
        return Table(
            [], [], caption="You have no presets. Save one with: lmj preset save NAME --temperature 0.7"
        )
    rows = []
    for preset in presets:
        fields = {k: v for k, v in preset.items() if k not in ("name", "system_prompt", "error")}
        settings = ", ".join(f"{k}={_short(v)}" for k, v in fields.items())
        system = _short(preset.get("system_prompt", ""))
        rows.append([preset["name"], system, f"error: {preset['error']}" if "error" in preset else settings])
    return Table(["NAME", "SYSTEM PROMPT", "SETTINGS"], rows)


def _short(value: Any, width: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


TOKEN = Command("token", "create, list and revoke API tokens for OpenAI clients", _token_arguments, _token)
PRESET = Command("preset", "list, show, save and delete presets", _preset_arguments, _preset)


# -- remote upstreams --------------------------------------------------------------------


def _remote_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="remote_command", metavar="COMMAND", required=True)
    add = commands.add_parser(
        "add", help="add an OpenAI-compatible upstream (vLLM, llama-server, lm_jupyter)"
    )
    add.add_argument("name", metavar="NAME", help="a name for it, e.g. cluster")
    add.add_argument("url", metavar="URL", help="its base URL, e.g. http://vllm.example:8000/v1")
    add.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="the environment variable (of the server) that holds its API key; the key is never stored",
    )
    add.add_argument("--models", metavar="A,B", help="only these of its models (default: all it lists)")
    ls = commands.add_parser("ls", help="list upstreams with their state and models")
    ls.add_argument("--json", action="store_true", help="print the list as JSON")
    rm = commands.add_parser("rm", help="remove an upstream")
    rm.add_argument("name", metavar="NAME")


def _remote(client: Client, args: argparse.Namespace) -> CommandResult:
    if args.remote_command == "add":
        models = [name.strip() for name in (args.models or "").split(",") if name.strip()]
        added = client.add_remote(args.name, args.url, args.api_key_env, models)
        listed = ", ".join(added["listed_models"]) or "none yet"
        return CommandResult(
            message=f'Added remote upstream "{args.name}" ({added["state"]}; its models: {listed}).'
        )
    if args.remote_command == "rm":
        client.remove_remote(args.name)
        return CommandResult(message=f'Removed remote upstream "{args.name}".')
    remotes = client.remotes()
    return CommandResult(remotes if args.json else remote_table(remotes))


def remote_table(remotes: list[dict[str, Any]]) -> Table:
    if not remotes:
        return Table([], [], caption="No remote upstreams. Add one with: lmj remote add NAME URL")
    rows = [
        [
            r["name"],
            r["url"],
            r["state"].upper(),
            ", ".join(r["models"] or r["listed_models"]),
            f"${r['api_key_env']}" if r["api_key_env"] else "",
            r["last_error"] or "",
        ]
        for r in remotes
    ]
    return Table(["NAME", "URL", "STATE", "MODELS", "API KEY", "LAST ERROR"], rows)


REMOTE = Command(
    "remote", "add, list and remove remote upstreams (vLLM, llama-server, ...)", _remote_arguments, _remote
)
