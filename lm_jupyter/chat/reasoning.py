"""Separating a reasoning model's thinking from its answer, while both stream.

LM Studio moves ``<think>...</think>`` text into ``reasoning_content`` (DeepSeek-R1 style). The
splitter runs before the tool-call parser so that a ``<tool_call>`` the model only thinks about
is never parsed as a call (LM Studio BT#1592): the server feeds the tool parser the answer text
alone.
"""

from __future__ import annotations

import re

from lm_jupyter.chat._stream import Machine, Step
from lm_jupyter.chat.events import ReasoningDelta, StreamEvent, TextDelta

__all__ = ["ReasoningDelta", "ReasoningSplitter", "TextDelta", "reasoning_markers"]


class _Split(Machine):
    def __init__(self, start: str, end: str, inside: bool) -> None:
        super().__init__()
        self.start = start
        self.end = end
        self.inside = inside

    def run(self) -> Step[None]:
        opened = self.inside
        if opened:
            yield from self.skip_ws()
            yield from self.accept(self.start)  # some models write the opening tag again
        else:  # whitespace before a leading marker is not answer text; otherwise it is kept
            opened = yield from self.attempt(self._opening)
        if opened and not (yield from self._reasoning()):
            return
        while (yield from self.text_until((self.start,), self.emit_text)) is not None:
            if not (yield from self._reasoning()):
                return

    def _opening(self) -> Step[None]:
        yield from self.skip_ws()
        yield from self.expect(self.start)

    def _reasoning(self) -> Step[bool]:
        """Thinking up to the end marker; False when the text ends first (it stays reasoning)."""
        yield from self.skip_ws()
        if (yield from self.text_until(("\n" + self.end, self.end), self.emit_reasoning)) is None:
            return False
        yield from self.skip_ws()  # the blank line models put between thinking and answer
        return True


class ReasoningSplitter:
    """Splits streamed text into :class:`ReasoningDelta` (inside start/end markers) and
    :class:`TextDelta`, holding back only what could be the start of a marker.

    ``inside=True`` when the generation prompt already opened the block (DeepSeek-R1 and
    Qwen3-Thinking templates end the prompt with ``<think>\\n``): the reply starts in the thinking.
    Reasoning cut off by ``max_tokens`` stays reasoning. The whitespace right inside the markers
    and between the thinking and the answer is dropped.
    """

    def __init__(self, start: str = "<think>", end: str = "</think>", *, inside: bool = False) -> None:
        self._machine = _Split(start, end, inside)

    def feed(self, text: str) -> list[TextDelta | ReasoningDelta]:
        return _split_events(self._machine.feed(text))

    def finish(self) -> list[TextDelta | ReasoningDelta]:
        return _split_events(self._machine.finish())


def _split_events(events: list[StreamEvent]) -> list[TextDelta | ReasoningDelta]:
    return [event for event in events if isinstance(event, TextDelta | ReasoningDelta)]


# Think markers; the first one found in the template wins. They cut across tool-call families
# (Qwen3 writes Hermes calls, DeepSeek-R1 DeepSeek calls, both think in <think>), so they are a
# table of their own. A family whose parser separates reasoning itself (gpt-oss Harmony) says so
# in its record (``Family.parses_reasoning``), and its template has none of these markers.
_MARKERS: tuple[tuple[str, str], ...] = (
    ("<seed:think>", "</seed:think>"),  # ByteDance Seed-OSS
    ("<think>", "</think>"),  # DeepSeek-R1, Qwen3, Nemotron, GLM, ...
    ("[THINK]", "[/THINK]"),  # Magistral
    ("<|START_THINKING|>", "<|END_THINKING|>"),  # Command R7B / A
)


def reasoning_markers(chat_template: str | None) -> tuple[str, str, bool] | None:
    """``(start, end, prompt_opens_block)`` for a template whose model reasons, else None.

    ``prompt_opens_block`` is read from the template's generation-prompt branch: true when a
    string there ends with the start marker (DeepSeek-R1's ``'<|Assistant|><think>\\n'``), false when the
    marker is closed right away (Qwen3's ``'<think>\\n\\n</think>\\n\\n'`` for thinking off) or
    absent. It is the template's default; a server that has the rendered prompt can check
    whether the prompt really ends with the start marker.
    """
    if not chat_template:
        return None
    for start, end in _MARKERS:
        if start in chat_template:
            return start, end, _prompt_opens(chat_template, start)
    return None


def _prompt_opens(template: str, start: str) -> bool:
    branch = template.rfind("add_generation_prompt")
    if branch < 0:
        return False
    # The marker then a string's closing quote, with at most a newline (written or escaped) between.
    opening = re.compile(re.escape(start) + r"(?:\\n|\n)?['\"]")
    return opening.search(template, branch) is not None
