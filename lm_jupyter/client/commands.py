"""The commands ``lmj`` and ``%lms`` share: ``ls``, ``ps``, ``load``, ``unload``, ``token``
and ``preset``, with the same flags (those of LM Studio's ``lms``) and the same results.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from .admin import PRESET, REMOTE, TOKEN
from .client import Client
from .command import Command, CommandError, CommandResult, resolve_model
from .estimate_view import estimate_text
from .options import gpu_option, load_options
from .tables import ls_json, ls_table, ps_table


def _ls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="the list as JSON data")
    parser.add_argument("--llm", action="store_true", help="only LLMs")
    parser.add_argument("--embedding", action="store_true", help="only embedding models")
    parser.add_argument("--variants", action="store_true", help="a row for every variant (quantization)")


def _ls(client: Client, args: argparse.Namespace) -> CommandResult:
    models = client.models()
    if args.llm or args.embedding:
        kinds = {"llm"} if args.llm else set()
        kinds |= {"embedding"} if args.embedding else set()
        models = [m for m in models if m["type"] in kinds]
    return CommandResult(ls_json(models) if args.json else ls_table(models, variants=args.variants))


def _ps_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="the list as JSON data")


def _ps(client: Client, args: argparse.Namespace) -> CommandResult:
    """Loaded instances, then models whose worker died (with the cause), like ``lms ps``."""
    # --json stays `lms ps --json`: loaded instances only (a crash's cause is the listing's last_error).
    if args.json:
        return CommandResult(client.loaded())
    models = client.models()  # one listing for both tables
    return CommandResult(ps_table(client.loaded(models), client.crashed(models)))


def _load_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="model key, e.g. publisher/model")
    parser.add_argument("-c", "--context-length", type=int, metavar="N", help="context length in tokens")
    parser.add_argument("--identifier", metavar="ID", help="name of the loaded instance (default: the key)")
    parser.add_argument("--ttl", type=int, metavar="SECONDS", help="unload after this many idle seconds")
    parser.add_argument("--gpu", type=gpu_option, metavar="off|max|0-1", help="GPU offload")
    parser.add_argument("--parallel", type=int, metavar="N", help="maximum concurrent predictions")
    parser.add_argument(
        "--flash-attention",
        action=argparse.BooleanOptionalAction,
        help="flash attention (on unless --no-flash-attention)",
    )
    parser.add_argument(
        "--draft-model",
        "--speculative-draft-model",
        dest="draft_model",
        metavar="KEY",
        help="speculative decoding with this draft model (for requests that name none)",
    )
    parser.add_argument(
        "--draft-max-tokens",
        "--speculative-draft-max-tokens",
        dest="draft_max_tokens",
        type=int,
        metavar="N",
        help="most tokens drafted per step (1-32; requests' num_draft_tokens overrides)",
    )
    parser.add_argument(
        "--draft-min-probability",
        "--speculative-draft-min-continue-probability",
        dest="draft_min_probability",
        type=float,
        metavar="P",
        help="stop drafting below this draft-token probability (0-1; a request's own overrides it)",
    )
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask questions")
    parser.add_argument("--estimate-only", action="store_true", help="only estimate the memory it needs")
    parser.add_argument("--force", action="store_true", help="load even if the memory guardrail refuses")
    parser.add_argument("--json", action="store_true", help="the load's (or estimate's) result as JSON data")


def load_estimate(client: Client, args: argparse.Namespace) -> dict[str, Any]:
    """``POST /api/v1/models/estimate`` for a ``load`` command line (``--estimate-only``, and
    the ``%lms load`` view's bars)."""
    return client.estimate(
        args.model,
        context_length=args.context_length,
        gpu=args.gpu,
        flash_attention=args.flash_attention,  # None: the server's default (on)
    )


def loaded_message(result: dict[str, Any], seconds: float) -> str:
    """What ``lms load`` prints once the model is loaded."""
    lines = [f"Model loaded successfully in {seconds:.2f}s."]
    if result.get("message"):
        lines.append(result["message"])
    lines.append(f'To use the model in the API/SDK, use the identifier "{result["instance_id"]}".')
    return "\n".join(lines)


def _load(client: Client, args: argparse.Namespace) -> CommandResult:
    resolve_model(client, args)
    if args.estimate_only:
        estimate = load_estimate(client, args)
        if args.json:
            return CommandResult(estimate)
        return CommandResult(text=estimate_text(estimate, context_length=args.context_length, gpu=args.gpu))
    started = time.perf_counter()
    result = client.load(args.model, **load_options(args))
    message = loaded_message(result, time.perf_counter() - started)
    return CommandResult(result if args.json else None, message, loaded=result["instance_id"])


def _unload_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("identifier", nargs="?", metavar="ID", help="identifier of the loaded instance")
    parser.add_argument("-a", "--all", action="store_true", help="unload every loaded model")


def _unload(client: Client, args: argparse.Namespace) -> CommandResult:
    if args.all and args.identifier:
        raise CommandError(f"{args.command_prog}: give either an identifier or --all, not both.")
    if args.identifier:
        targets = [args.identifier]
    else:
        targets = [row["identifier"] for row in client.loaded()]
        if not targets:
            return CommandResult(message="No models to unload.")
        if len(targets) > 1 and not args.all:
            raise CommandError(
                f"{len(targets)} models are loaded ({', '.join(targets)}): name one with "
                f"`{args.command_prog} ID`, or unload them all with `{args.command_prog} --all`."
            )
    for identifier in targets:
        client.unload(identifier)
    if args.all:
        count = len(targets)
        message = f"Unloaded {count} model{'' if count == 1 else 's'}."
    else:
        message = f'Model "{targets[0]}" unloaded.'
    return CommandResult(message=message, unloaded=targets)


LS = Command("ls", "list downloaded models", _ls_arguments, _ls)
PS = Command("ps", "list loaded models", _ps_arguments, _ps)
LOAD = Command("load", "load a model into memory", _load_arguments, _load)
UNLOAD = Command("unload", "unload a model (or --all)", _unload_arguments, _unload)

COMMANDS = (LS, LOAD, PS, UNLOAD, TOKEN, PRESET, REMOTE)
