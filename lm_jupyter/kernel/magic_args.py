"""Argument parsing for the magics: argparse that reports instead of exiting the kernel."""

from __future__ import annotations

import argparse
import difflib
import re
import shlex
from typing import NoReturn

_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


class MagicError(Exception):
    """A problem to report to the user as one line on stderr."""


class HelpShown(Exception):
    """argparse printed help (``-h``); nothing more to do."""


class MagicParser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of exiting the kernel."""

    def error(self, message: str) -> NoReturn:
        raise MagicError(f"{self.prog}: {message}{did_you_mean(message)} (see `{self.prog} --help`)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status:
            raise MagicError(message.strip() if message else f"{self.prog}: invalid arguments")
        raise HelpShown


def did_you_mean(message: str) -> str:
    """``; did you mean `load`?`` for a mistyped command or choice (argparse's own message
    lists every choice; the nearest one is what the user wants to read)."""
    match = _INVALID_CHOICE.search(message)
    if not match:
        return ""
    choices = re.findall(r"'([^']*)'", match.group(2)) or [c.strip() for c in match.group(2).split(",")]
    close = difflib.get_close_matches(match.group(1), choices, n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


def split_args(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as exc:  # an unclosed quote
        raise MagicError(f"Cannot parse the arguments: {exc}.") from None
