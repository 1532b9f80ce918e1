"""``lmj log stream``: the server's live log in the terminal, like ``lms log stream``.

The banner goes to stderr once the server has subscribed us; events go to stdout (text,
coloured in a terminal, or ``--json`` lines), flushed one by one so a pipe sees each as it
happens. It runs until Ctrl+C or until the server stops.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..client.client import Client
from ..client.log_view import add_log_stream_arguments, stream_events


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
    def connected() -> None:
        print("Streaming logs from lm_jupyter", file=sys.stderr, flush=True)

    stream_events(client, args, sys.stdout, colour=use_colour(), on_connected=connected)
    print("The server closed the log stream.", file=sys.stderr)
    return 1
