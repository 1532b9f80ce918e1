"""``lmj chat``'s pure parts: how an answer is printed, and the slash commands."""

from __future__ import annotations

import io

from lm_jupyter.cli.chat import DIM, UNDIM, AnswerPrinter, TerminalChat, stats_text


def printed(deltas: list[dict], colour: bool) -> tuple[str, str]:
    out = io.StringIO()
    printer = AnswerPrinter(out, colour)
    for delta in deltas:
        printer.feed(delta)
    printer.end()
    return out.getvalue(), printer.text


THINKING = [
    {"role": "assistant", "content": ""},
    {"reasoning_content": "Weigh "},
    {"reasoning_content": "it."},
    {"content": "Warm"},
    {"content": "."},
]


def test_reasoning_is_dimmed_in_a_terminal() -> None:
    text, answer = printed(THINKING, colour=True)
    assert text == f"{DIM}Weigh it.{UNDIM}\nWarm.\n"
    assert answer == "Warm."  # history keeps the answer, not the thinking


def test_reasoning_is_marked_elsewhere() -> None:
    text, answer = printed(THINKING, colour=False)
    assert text == "<think>Weigh it.</think>\nWarm.\n" and answer == "Warm."


def test_gpt_oss_reasoning_field_and_unfinished_thinking() -> None:
    text, answer = printed([{"reasoning": "Still thinking"}], colour=False)
    assert text == "<think>Still thinking</think>\n" and answer == ""
    assert printed([], colour=True) == ("", "")


def test_answer_text_cannot_drive_the_terminal() -> None:
    text, answer = printed([{"content": "a\x1b[2Jb"}], colour=True)
    assert text == "a\ufffd[2Jb\n" and answer == "a\x1b[2Jb"


def test_slash_commands() -> None:
    err = io.StringIO()
    session = TerminalChat(None, "m", system="old", out=io.StringIO(), err=err)  # type: ignore[arg-type]
    session.history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    assert session.command("/reset") and session.history == [] and session.system == "old"
    assert session.command("/system Be terse.") and session.system == "Be terse."
    assert session.command("/system") and session.system is None
    assert session.command("/help") and session.command("/nonsense")
    assert not session.command("/exit") and not session.command("exit")
    said = err.getvalue()
    assert (
        "Chat history cleared." in said and "System prompt set." in said and "System prompt cleared." in said
    )
    assert "/reset" in said and "Unknown command /nonsense" in said


def test_stats_block() -> None:
    stats = {"stop_reason": "userStopped", "tokens_per_second": 12.345, "time_to_first_token": 0.1234}
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert stats_text(stats, usage) == (
        "Prediction Stats:\n  Stop Reason: userStopped\n  Tokens/Second: 12.35\n"
        "  Time to First Token: 0.123s\n"
        "  Prompt Tokens: 7\n  Predicted Tokens: 3\n  Total Tokens: 10"
    )
