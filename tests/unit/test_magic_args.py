"""The magics' argparse messages (kernel/magic_args.py)."""

from __future__ import annotations

import pytest

from lm_jupyter.kernel.magic_args import MagicError, MagicParser, did_you_mean


def test_a_mistyped_command_gets_the_nearest_one() -> None:
    parser = MagicParser(prog="%lms")
    commands = parser.add_subparsers(dest="command", parser_class=MagicParser)
    for name in ("ls", "load", "unload"):
        commands.add_parser(name)
    expected = r"invalid choice: 'laod' .*; did you mean `load`\? \(see `%lms --help`\)"
    with pytest.raises(MagicError, match=expected):
        parser.parse_args(["laod"])
    with pytest.raises(MagicError) as raised:
        parser.parse_args(["frobnicate"])
    assert "did you mean" not in str(raised.value)
    assert did_you_mean("argument --x: expected one argument") == ""
