"""One request's generation as its client sees it: wire-ready deltas, then a message and an outcome."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from ..api.completions import Outcome, PromptProgress
from ..chat.events import TextDelta
from ..chat.output import AssistantMessage, OutputParser
from .instance import Generation


class Turn:
    def __init__(
        self,
        generation: Generation,
        parser: OutputParser | None,
        message: AssistantMessage,
        on_done: Callable[[Turn], None] | None = None,
    ) -> None:
        self.generation = generation
        self.parser = parser
        self.message = message
        self.outcome: Outcome | None = None
        self.on_done = on_done  # the manager's observers hear about every finished turn
        self.raw: list[str] = []  # the model's text as generated, before parsing

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        async for piece in self.generation:
            if isinstance(piece, PromptProgress):  # only with return_progress, before any text
                yield {"prompt_progress": piece}
                continue
            self.raw.append(piece)
            for event in self.parser.feed(piece) if self.parser else [TextDelta(piece)]:
                delta = self.message.add(event)
                if delta:
                    yield delta
        for event in self.parser.finish() if self.parser else []:
            delta = self.message.add(event)
            if delta:
                yield delta
        outcome = self.generation.outcome
        assert outcome is not None
        truncated = outcome.stop_reason in ("maxPredictedTokensReached", "contextLengthReached")
        if self.message.complete_calls() and not truncated:
            outcome = replace(outcome, stop_reason="toolCalls")
        self.outcome = replace(outcome, reasoning_tokens=self._reasoning_tokens(outcome))
        if self.on_done is not None:
            self.on_done(self)

    def _reasoning_tokens(self, outcome: Outcome) -> int:
        """Tokens are counted in the worker, text here: split the count by characters."""
        reasoning = sum(len(part) for part in self.message.reasoning)
        total = reasoning + sum(len(part) for part in self.message.content)
        return round(outcome.completion_tokens * reasoning / total) if reasoning else 0

    def text(self) -> str:
        return "".join(self.message.content)

    async def cancel(self) -> None:
        await self.generation.cancel()
