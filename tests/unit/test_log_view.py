"""Text and JSON output of ``lmj log stream`` / ``%lms log stream``, and its option checks."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from lm_jupyter.client.log_view import (
    add_log_stream_arguments,
    format_event,
    json_event,
    lms_timestamp,
    local_time,
    printable,
    selection,
)

STATS = {"stopReason": "eosFound", "tokensPerSecond": 12.5}


def options(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_log_stream_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "sources", "filters"),
    [
        ((), ["model"], None),
        (("-s", "server"), ["server"], None),
        (("--source", "server", "--source", "model"), ["server", "model"], None),
        (("--source", "model,server,model"), ["model", "server"], None),
        (("--filter", "output", "--stats"), ["model"], ["output"]),
        (("-s", "server,model", "--filter", "input,output"), ["server", "model"], ["input", "output"]),
    ],
)
def test_selection(argv: tuple[str, ...], sources: list[str], filters: list[str] | None) -> None:
    assert selection(options(*argv)) == (sources, filters)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("-s", "runtime"), "Invalid --source 'runtime'"),
        (("--filter", ""), "Invalid --filter ''"),
        (("--filter", "input,both"), "Invalid --filter 'input,both'"),
        (("-s", "server", "--stats"), "--stats can only be used with --source model"),
        (("-s", "server", "--filter", "input"), "--filter can only be used with --source model"),
        (("--history", "-1"), "--history must be 0 or more"),
    ],
)
def test_bad_selection(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("-", r"\-").replace("'", "'")):
        selection(options(*argv))


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (dt.datetime(2024, 11, 13, 9, 35, 15), "11/13/2024, 9:35:15 AM"),
        (dt.datetime(2024, 1, 2, 0, 5, 7), "1/2/2024, 12:05:07 AM"),
        (dt.datetime(2024, 1, 2, 12, 0, 0), "1/2/2024, 12:00:00 PM"),
        (dt.datetime(2024, 1, 2, 23, 59, 59), "1/2/2024, 11:59:59 PM"),
    ],
)
def test_lms_timestamp(moment: dt.datetime, text: str) -> None:
    assert lms_timestamp(moment) == text


def test_model_events_as_lms_prints_them() -> None:
    stamp = 1731490515000
    when = lms_timestamp(local_time(stamp))
    data = {
        "type": "llm.prediction.input",
        "input": "<s>hi\n",
        "modelPath": "a/b/c.gguf",
        "modelIdentifier": "m",
    }
    assert format_event({"timestamp": stamp, "data": data}) == (
        f"timestamp: {when}\ntype: llm.prediction.input\nmodelIdentifier: m\nmodelPath: a/b/c.gguf\n"
        "input:\n<s>hi\n\n"
    )
    out = {"timestamp": stamp, "data": {"type": "llm.prediction.output", "output": "yes", "stats": STATS,
                                        "modelIdentifier": "m"}}  # fmt: skip
    assert (
        format_event(out)
        == f"timestamp: {when}\ntype: llm.prediction.output\nmodelIdentifier: m\noutput:\nyes\n"
    )
    assert format_event(out, stats=True).endswith(
        "output:\nyes\nstopReason: eosFound\ntokensPerSecond: 12.5\n"
    )
    bare = {
        "timestamp": stamp,
        "data": {"type": "llm.prediction.output", "output": "", "modelIdentifier": "m"},
    }
    assert format_event(bare, stats=True).endswith("output:\n\nNo stats available\n")


def test_server_events_are_one_line_with_level() -> None:
    stamp = 1731490515000
    event = {
        "timestamp": stamp,
        "data": {"type": "server.log", "level": "warn", "content": "GET /x 404 1.00ms"},
    }
    when = local_time(stamp).strftime("%Y-%m-%d %H:%M:%S")
    assert format_event(event) == f"[{when}][WARN] GET /x 404 1.00ms"
    coloured = format_event(event, colour=True)
    assert "\x1b[33m[WARN]\x1b[0m" in coloured and coloured.endswith(" GET /x 404 1.00ms")


def test_colour_only_when_asked() -> None:
    event = {"timestamp": 0, "data": {"type": "llm.prediction.output", "output": "x", "modelIdentifier": "m"}}
    assert "\x1b[" not in format_event(event)
    assert "\x1b[35mllm.prediction.output\x1b[0m" in format_event(event, colour=True)


def test_model_text_cannot_drive_the_terminal() -> None:
    assert printable("a\x1b[2Jb\rc\td\ne\x07\x9b") == "a\ufffd[2Jb\ufffdc\td\ne\ufffd\ufffd"
    event = {
        "timestamp": 0,
        "data": {"type": "llm.prediction.output", "output": "\x1b]0;pwned\x07", "modelIdentifier": "m"},
    }
    assert "\x1b" not in format_event(event) and "\x07" not in format_event(event)


def test_json_event_keeps_stats_only_with_stats() -> None:
    event = {"timestamp": 1, "data": {"type": "llm.prediction.output", "output": "y", "stats": STATS,
                                      "modelIdentifier": "m"}}  # fmt: skip
    assert "stats" not in json_event(event, stats=False)["data"]
    assert json_event(event, stats=True) == event
    assert "stats" in event["data"]  # the original is untouched
