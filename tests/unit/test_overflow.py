"""Context-overflow arithmetic: what a cut prompt keeps and how much a context shift drops."""

from __future__ import annotations

from lm_jupyter.engine.protocol import shifts
from lm_jupyter.engine.worker.overflow import discard_count, fit_prompt, keep_count, reserve

BOS = 1


def test_only_the_cutting_policies_shift() -> None:
    assert not shifts("stopAtLimit")
    assert shifts("truncateMiddle") and shifts("rollingWindow")


def test_rolling_window_keeps_only_bos() -> None:
    prompt = [BOS, *range(10, 110)]
    assert keep_count("rollingWindow", prompt, 64, BOS) == 1
    assert keep_count("rollingWindow", prompt[1:], 64, BOS) == 0
    assert keep_count("rollingWindow", prompt, 64, None) == 0


def test_truncate_middle_keeps_the_start_up_to_a_quarter_of_the_context() -> None:
    assert keep_count("truncateMiddle", list(range(100)), 64, BOS) == 16
    assert keep_count("truncateMiddle", list(range(10)), 64, BOS) == 10


def test_cut_prompt_keeps_head_and_most_recent_tail_with_room_to_answer() -> None:
    prompt = list(range(200))
    cut = fit_prompt(prompt, 64, keep=16, max_tokens=8)
    assert len(cut) == 64 - 8
    assert cut[:16] == prompt[:16]
    assert cut[16:] == prompt[-(56 - 16) :]
    rolling = fit_prompt(prompt, 64, keep=1, max_tokens=None)
    assert len(rolling) == 64 - reserve(64, None) == 48
    assert rolling[0] == 0 and rolling[1:] == prompt[-47:]


def test_reserve_is_what_was_asked_within_bounds() -> None:
    assert reserve(100, 10) == 10
    assert reserve(100, 1000) == 50
    assert reserve(100, None) == 25
    assert reserve(1, None) == 1


def test_shift_discards_half_of_what_is_not_kept() -> None:
    assert discard_count(256, 1) == 127
    assert discard_count(256, 64) == 96
    assert discard_count(3, 2) == 1  # always makes room for at least one token
