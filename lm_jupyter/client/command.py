"""What a command shared by ``lmj`` and ``%lms`` is, and how a front end registers one.

A command is a parser builder and an action. The action returns a :class:`CommandResult`
and never prints, so each front end shows the same result in its own way: ``lmj`` writes
``data`` to stdout (a table as text, anything else as JSON) and ``message`` to stderr; ``%lms``
prints ``message`` and returns ``data`` as the cell's result.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .client import Client, LmError


class CommandError(LmError):
    """A request the command refuses before asking the server (the user can fix it)."""


@dataclass
class CommandResult:
    data: Any = None  # a Table, JSON-ready data or a bare string: stdout, or the cell's result
    message: str | None = None  # the human message: lmj's stderr, printed by %lms
    text: str | None = None  # text both front ends print on stdout (an estimate)
    loaded: str | None = None  # the instance the command loaded (the kernel's default chat model)
    unloaded: list[str] = field(default_factory=list)


Action = Callable[[Client, argparse.Namespace], CommandResult]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    action: Action


def add_commands(subparsers: Any, commands: Iterable[Command], **defaults: Any) -> None:
    """Register ``commands`` on an ``add_subparsers()`` object; ``args.command_action`` runs one.

    ``defaults`` are set on each command's arguments too (``lmj`` sets its printer there)."""
    for command in commands:
        parser = subparsers.add_parser(command.name, help=command.help)
        command.arguments(parser)
        parser.set_defaults(command_action=command.action, command_prog=parser.prog, **defaults)


def unique_match(name: str, models: list[dict[str, Any]]) -> str:
    """A model key or instance identifier for ``name``: itself when something is called that,
    else the one key (variant key, identifier) that contains it, case-insensitively, so
    ``qwen2.5`` means ``qwen/qwen2.5-coder-1.5b-instruct`` when no other model matches. Several
    matches are an error listing them; none leaves ``name`` for the server to refuse."""
    names: list[str] = []
    for model in models:
        names.append(model["key"])
        names += [variant["key"] for variant in model.get("variant_details") or []]
        names += [instance["id"] for instance in model.get("loaded_instances") or []]
    if name in names:
        return name
    hits = sorted({candidate for candidate in names if name.lower() in candidate.lower()})
    if len(hits) > 1:
        keys = sorted({model["key"] for model in models if model["key"] in hits}) or hits
        if len(keys) == 1:
            return keys[0]
        raise CommandError(f"'{name}' matches {len(keys)} models ({', '.join(keys)}); name one of them.")
    return hits[0] if hits else name


def resolve_model(client: Client, args: argparse.Namespace) -> str:
    """``args.model`` as :func:`unique_match` names it, resolved once per command: a front end
    that shows a load's progress resolves it first, and the load itself need not list the
    models again."""
    if not getattr(args, "model_resolved", False):
        args.model = unique_match(args.model, client.models())
        args.model_resolved = True
    return str(args.model)
