"""When the tool loop of ``%%chat`` ends (kernel/chat_runner.py, pure parts)."""

from __future__ import annotations

from lm_jupyter.kernel.chat_runner import repeats_answered_calls
from lm_jupyter.kernel.chat_session import Reply, ToolCall


def reply(*calls: tuple[str, str]) -> Reply:
    made = [ToolCall(f"c{i}", name, args) for i, (name, args) in enumerate(calls)]
    return Reply(requested_at=0.0, tool_calls=made)


def test_a_restated_call_ends_the_loop_and_a_new_one_does_not() -> None:
    first = reply(("convert_temperature", '{"value": 21.5, "unit": "celsius"}'))
    again = reply(("convert_temperature", '{"unit": "celsius", "value": 21.5}'))  # reordered
    other = reply(("convert_temperature", '{"value": 70.7, "unit": "fahrenheit"}'))
    assert repeats_answered_calls([first, again])
    assert not repeats_answered_calls([first, other])
    assert not repeats_answered_calls([first, reply()])  # an answer, no calls
    assert not repeats_answered_calls([first])
    assert not repeats_answered_calls([first, reply(("convert_temperature", "{bad"), ("x", "{}"))])
