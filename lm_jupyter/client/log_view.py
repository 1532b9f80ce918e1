"""``lmj log stream`` and ``%lms log stream``: their shared options and the text format of events.

The format follows ``lms log stream`` (reference/lmstudio-api.md §8): model events as
``key: value`` lines with the prompt or output text under ``input:`` / ``output:``, stats with
``--stats``, server events as one line. ``--json`` output is the event itself, one per line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from .client import Client

SOURCES = ("model", "server")
FILTERS = ("input", "output")

_RESET = "\x1b[0m"
_COLOURS = {
    "dim": "\x1b[2m",
    "bold": "\x1b[1m",
    "info": "\x1b[32m",  # green
    "warn": "\x1b[33m",  # yellow
    "error": "\x1b[31m",  # red
    "debug": "\x1b[2m",
    "llm.prediction.input": "\x1b[36m",  # cyan
    "llm.prediction.output": "\x1b[35m",  # magenta
}


# Control characters in model text (ESC sequences, carriage returns) would rewrite the terminal.
_CONTROLS = {code: "\ufffd" for code in [*range(0x20), 0x7F, *range(0x80, 0xA0)] if code not in (0x09, 0x0A)}


def printable(text: str) -> str:
    """Model text safe to write to a terminal: control characters but tab and newline shown as �."""
    return text.translate(_CONTROLS)


def add_log_stream_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-s",
        "--source",
        action="append",
        metavar="SOURCE",
        help="model (default: prompts and outputs) or server (startup, requests, loads, unloads); "
        "repeat it or separate with commas for both",
    )
    parser.add_argument(
        "--filter", metavar="input,output", help="model events: input, output, or input,output (default)"
    )
    parser.add_argument("--stats", action="store_true", help="model events: tokens/s and other statistics")
    parser.add_argument("--json", action="store_true", help="one JSON event per line")
    parser.add_argument(
        "--history", type=int, default=0, metavar="N", help="first show up to N recent events (e.g. startup)"
    )


def selection(args: argparse.Namespace) -> tuple[list[str], list[str] | None]:
    """The sources and filters the options name, checked as ``lms`` checks them (ValueError)."""
    sources: list[str] = []
    for value in args.source or ["model"]:
        for name in value.split(","):
            name = name.strip()
            if name not in SOURCES:
                raise ValueError(f"Invalid --source '{name}': use model or server (or both).")
            if name not in sources:
                sources.append(name)
    filters = None
    if args.filter is not None:
        filters = [name.strip() for name in args.filter.split(",")]
        if not args.filter.strip() or any(name not in FILTERS for name in filters):
            raise ValueError(f"Invalid --filter '{args.filter}': use input, output or input,output.")
        if "model" not in sources:
            raise ValueError("--filter can only be used with --source model")
    if args.stats and "model" not in sources:
        raise ValueError("--stats can only be used with --source model")
    if args.history < 0:
        raise ValueError("--history must be 0 or more.")
    return sources, filters


def _paint(text: str, style: str, colour: bool) -> str:
    return f"{_COLOURS[style]}{text}{_RESET}" if colour and style in _COLOURS else text


def local_time(timestamp_ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp_ms / 1000).astimezone()


def lms_timestamp(moment: dt.datetime) -> str:
    """JavaScript's ``toLocaleString('en-US')``, as ``lms`` prints it: ``11/13/2024, 9:35:15 AM``."""
    hour = moment.hour % 12 or 12
    half = "AM" if moment.hour < 12 else "PM"
    return f"{moment.month}/{moment.day}/{moment.year}, {hour}:{moment:%M:%S} {half}"


def json_event(event: dict[str, Any], *, stats: bool) -> dict[str, Any]:
    """The event as ``--json`` prints it: statistics only with ``--stats``."""
    data = event["data"]
    if not stats and "stats" in data:
        event = {**event, "data": {k: v for k, v in data.items() if k != "stats"}}
    return event


def format_event(event: dict[str, Any], *, stats: bool = False, colour: bool = False) -> str:
    """One event as text (no trailing newline)."""
    data = event["data"]
    moment = local_time(event["timestamp"])
    kind = data.get("type", "")
    if kind == "server.log":
        level = str(data.get("level", "info"))
        head = _paint(f"[{moment:%Y-%m-%d %H:%M:%S}]", "dim", colour)
        return f"{head}{_paint(f'[{level.upper()}]', level, colour)} {printable(data.get('content', ''))}"
    lines = [
        _paint(f"timestamp: {lms_timestamp(moment)}", "dim", colour),
        f"type: {_paint(kind, kind, colour)}",
        f"modelIdentifier: {data.get('modelIdentifier', '')}",
    ]
    if kind == "llm.prediction.input":
        input_text = printable(data["input"])
        lines += [f"modelPath: {data.get('modelPath', '')}", _paint("input:", "bold", colour), input_text]
    else:
        lines += [_paint("output:", "bold", colour), printable(data.get("output", ""))]
        if stats:
            values = data.get("stats") or {}
            lines += [f"{key}: {value}" for key, value in values.items()] or ["No stats available"]
    return "\n".join(lines) + "\n"


def stream_events(
    client: Client, args: argparse.Namespace, out: TextIO, *, colour: bool, on_connected: Callable[[], None]
) -> None:
    """Write the events the options select to ``out`` as they arrive, until the server ends
    the stream (a KeyboardInterrupt stops it earlier and closes the connection)."""
    sources, filters = selection(args)
    events = client.log_stream(sources, filters, history=args.history, on_connected=on_connected)
    try:
        for event in events:
            if args.json:
                out.write(json.dumps(json_event(event, stats=args.stats), ensure_ascii=False) + "\n")
            else:
                out.write(format_event(event, stats=args.stats, colour=colour) + "\n")
            out.flush()
    finally:
        events.close()
