"""The record of what the code knows about one model family.

A family is the format a model was trained to write tool calls in, and with it how its chat
template is recognised, how a call is forced, and how its reasoning is separated and named.
(vLLM keeps a registry of tool parsers and llama.cpp per-format chat parameters for the same
reason: the knowledge of one format in one place.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..toolcalls import CallMachine, Program, ToolCallParser, default_call_id


@dataclass(frozen=True)
class Family:
    name: str
    # Detection: the family's template contains every marker of one of these rows. Families
    # are tried by ascending ``priority``, so a more specific format goes before the ones whose
    # markers it shares (Qwen3-Coder templates mention <tool_call> too).
    markers: tuple[tuple[str, ...], ...]
    priority: int
    program: Program  # the streaming call parser's program
    # How one forced call is written, as (text before the arguments JSON, text after it), NAME
    # standing for the model-facing tool name; None when the arguments are not one JSON object
    # (XML parameters, Harmony), which cannot be forced this way yet.
    call_wrapper: tuple[str, str] | None = None
    # The parser separates reasoning itself (Harmony's analysis channel) instead of the
    # template's think markers (``chat/reasoning.py``).
    parses_reasoning: bool = False
    # The output has markup even without tools (Harmony channels, Functionary's ">>>all"),
    # so the parser runs on every reply.
    always_parsed: bool = False
    # Where ``reasoning_format: "auto"`` puts reasoning (LM Studio uses ``reasoning`` for gpt-oss).
    reasoning_field: str = "reasoning_content"

    def detects(self, chat_template: str) -> bool:
        return any(all(marker in chat_template for marker in row) for row in self.markers)

    def parser(
        self, *, tool_names: list[str] | None = None, new_id: Callable[[], str] = default_call_id
    ) -> ToolCallParser:
        """A fresh streaming parser for one generation in this family's format.

        With ``tool_names`` (the names the model was shown), a call to any other tool comes
        back as text, and a near miss in spelling (same ``normalize_tool_name``) gets the
        offered spelling; with None any name is accepted.
        """
        return CallMachine(self.program, tool_names, new_id)
