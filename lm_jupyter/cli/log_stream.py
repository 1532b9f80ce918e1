"""``lmj log stream``: the server's live log in the terminal, like ``lms log stream``.

The banner goes to stderr; events go to stdout (text, coloured in a terminal, or ``--json``
lines), flushed one by one so a pipe sees each as it happens. It runs until Ctrl+C or until the
server stops.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..kernel.client import Client
from ..kernel.log_view import add_log_stream_arguments, format_event, json_event, selection


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="log_command", metavar="COMMAND", required=True)
    stream = actions.add_parser(
        "stream",
        help="Stream the server's log: model inputs and outputs, requests, loads.",
        description="Stream the server's log: model inputs and outputs (--source model, the default), "
        "requests, loads and unloads (--source server).",
    )
    add_log_stream_arguments(stream)


def use_colour() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def run(client: Client, args: argparse.Namespace) -> int:
    sources, filters = selection(args)
    colour = use_colour()
    print("Streaming logs from lm_jupyter", file=sys.stderr, flush=True)
    for event in client.log_stream(sources, filters, history=args.history):
        if args.json:
            sys.stdout.write(json.dumps(json_event(event, stats=args.stats), ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(format_event(event, stats=args.stats, colour=colour) + "\n")
        sys.stdout.flush()
    print("The server closed the log stream.", file=sys.stderr)
    return 1
