from __future__ import annotations

import pytest

from lm_jupyter.chat.stops import StopMatcher


def run(stops: list[str], pieces: list[str]) -> tuple[str, bool]:
    matcher = StopMatcher(stops)
    out = "".join(matcher.feed(piece) for piece in pieces)
    if not matcher.stopped:
        out += matcher.flush()
    return out, matcher.stopped


@pytest.mark.parametrize(
    ("stops", "pieces", "expected"),
    [
        (["END"], ["hello E", "N", "D more"], ("hello ", True)),
        (["END"], ["hello E", "N", "x"], ("hello ENx", False)),
        (["\n\n", "##"], ["a\n", "b#", "#c"], ("a\nb", True)),
        (["abc"], ["ab", "ab", "c"], ("ab", True)),
        ([], ["plain ", "text"], ("plain text", False)),
        (["x"], ["", "x"], ("", True)),
    ],
)
def test_stop_matching(stops: list[str], pieces: list[str], expected: tuple[str, bool]) -> None:
    assert run(stops, pieces) == expected


def test_nothing_of_a_partial_match_is_emitted_early() -> None:
    matcher = StopMatcher(["STOP"])
    assert matcher.feed("go ST") == "go "
    assert matcher.feed("O") == ""
    assert matcher.feed("P!") == ""
    assert matcher.stopped


@pytest.mark.parametrize(
    ("stops", "pieces", "matched"),
    [
        (["END", "STOP"], ["a STO", "P b END"], "STOP"),
        (["##", "\n"], ["x\n##"], "\n"),
        (["END"], ["no stop"], None),
    ],
)
def test_the_stop_string_that_ended_the_text_is_known(
    stops: list[str], pieces: list[str], matched: str | None
) -> None:
    matcher = StopMatcher(stops)
    for piece in pieces:
        matcher.feed(piece)
    assert matcher.matched == matched
