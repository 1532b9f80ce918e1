"""``%%chat`` cells: the parser of the magic line, the request a cell becomes, and the input
transformer that runs a cell as an async cell (see ``magics.py``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from IPython.utils.text import DollarFormatter

from .chat_runner import DEFAULT_MAX_ROUNDS, ChatRequest, TextView, WidgetView
from .chat_session import response_format
from .magic_args import MagicError, MagicParser
from .pytools import tools_from

RESULT_VAR = "_chat_result"  # every finished %%chat stores its reply (or parsed object) here


def chat_parser() -> MagicParser:
    parser = MagicParser(
        prog="%%chat",
        description="Chat with a model; the cell is your message ({var} is "
        "replaced by the variable's value, {{ and }} are literal braces).",
    )
    parser.add_argument("model", nargs="?", metavar="MODEL", help="model key or instance identifier")
    parser.add_argument("--model", dest="model_option", metavar="MODEL", help="the same as MODEL")
    parser.add_argument("--new", action="store_true", help="start a new conversation")
    parser.add_argument("--system", metavar="TEXT", help="system prompt (kept until --new)")
    parser.add_argument("--max-tokens", type=int, metavar="N", help="most tokens to generate (-1: no limit)")
    parser.add_argument("--temperature", type=float, metavar="T", help="sampling temperature")
    parser.add_argument(
        "--json-schema",
        metavar="VAR",
        help="answer as JSON for this schema (a dict or a "
        f"pydantic model class); the parsed value goes to {RESULT_VAR} and --out",
    )
    parser.add_argument("--tools", metavar="VAR", help="a function or list of functions the model may call")
    parser.add_argument("--auto-run", action="store_true", help="run tool calls without asking")
    parser.add_argument(
        "--tool-choice",
        metavar="auto|required|none|NAME",
        help="for the first request: whether (or which) tool the model must call",
    )
    parser.add_argument(
        "--max-rounds",
        type=int,
        default=DEFAULT_MAX_ROUNDS,
        metavar="N",
        help=f"most requests in one tool loop (default {DEFAULT_MAX_ROUNDS})",
    )
    parser.add_argument("--draft-model", metavar="MODEL", help="speculative decoding with this draft model")
    parser.add_argument(
        "--reasoning",
        choices=("show", "hide", "collapse"),
        default="collapse",
        help="how to show the model's reasoning (default: collapse)",
    )
    parser.add_argument("--out", metavar="VAR", help=f"also store the reply in VAR (always in {RESULT_VAR})")
    return parser


def chat_request(args: argparse.Namespace, text: str, namespace: dict[str, Any]) -> tuple[ChatRequest, Any]:
    """The request, and the pydantic class of ``--json-schema`` (None for a dict schema)."""
    schema_class = None
    options: dict[str, Any] = {
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "draft_model": args.draft_model,
    }
    if args.json_schema:
        fmt, schema_class = response_format(
            lookup(namespace, args.json_schema, "--json-schema"), args.json_schema
        )
        options["response_format"] = fmt
    request = ChatRequest(
        model="", prompt=text, options=options, max_rounds=max(1, args.max_rounds), auto_run=args.auto_run
    )
    if args.tools:
        request.tools, request.functions = tools_from(lookup(namespace, args.tools, "--tools"))
    if args.tool_choice is not None:
        if not args.tools:
            raise MagicError("%%chat: --tool-choice needs --tools.")
        choice = args.tool_choice
        if choice not in ("auto", "required", "none"):
            if choice not in request.functions:
                raise MagicError(f"%%chat: --tool-choice {choice}: no such tool in --tools {args.tools}.")
            choice = {"type": "function", "function": {"name": choice}}
        request.tool_choice = choice
    return request, schema_class


@dataclass
class ChatPlan:
    request: ChatRequest
    view: WidgetView | TextView
    out: str | None
    response_format: dict[str, Any] | None
    schema_class: Any
    loading: Any = None  # a LoadDisplay above the chat while its model loads just in time


def lookup(namespace: dict[str, Any], name: str, option: str) -> Any:
    if name not in namespace:
        raise MagicError(f"%%chat {option} {name}: no variable named {name!r} in this notebook.")
    return namespace[name]


def expand_line(line: str, namespace: dict[str, Any]) -> str:
    """``$var`` and ``{expr}`` in the magic line, as IPython's ``run_cell_magic`` expands them
    (the async path does not go through it). Like IPython, a line that fails to expand is kept."""
    try:
        return DollarFormatter().vformat(line, args=[], kwargs=namespace)
    except Exception:
        return line


def async_chat_cells(lines: list[str]) -> list[str]:
    """Input transformer: a ``%%chat`` cell becomes ``await <magics>.chat_async(line, cell)``.

    ipykernel dispatches comm messages while an async cell awaits (and not while a synchronous
    one runs), so this is what lets the ChatView's buttons reach the kernel mid-stream.
    """
    if not lines or not lines[0].startswith("%%chat"):
        return lines
    first, rest = lines[0], "".join(lines[1:])
    line = first[len("%%chat") :].strip()
    if first[len("%%chat") :][:1] not in ("", " ", "\t", "\n"):
        return lines  # %%chatty: some other magic
    return [f"await get_ipython().magics_manager.registry['LmMagics'].chat_async({line!r}, {rest!r})\n"]
