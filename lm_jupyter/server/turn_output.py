"""What the generation handlers read from a finished or stopped turn: its logprob entries, the
model card of /api/v0 answers, and draining a cancelled stream."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..api import completions as shapes
from ..api.errors import APIError
from ..engine.instance import Instance
from ..engine.remote.turn import RemoteTarget, RemoteTurn
from ..engine.turn import Turn

log = logging.getLogger("lm_jupyter")


async def drain(deltas: AsyncIterator[dict[str, Any]]) -> None:
    """After a cancel, read the turn to its end (the worker stops within a token), so it
    finishes like any other: instance idle at once, outcome ``userStopped`` in the log."""
    try:
        async for _delta in deltas:
            pass
    except APIError as exc:
        log.info("Stopped generation ended with an error: %s", exc.message)


def entries(turn: Turn | RemoteTurn, echo: bool) -> list[dict[str, Any]]:
    """A turn's logprob entries: the prompt's (``echo``, local turns only) or the answer's."""
    if not isinstance(turn, Turn):
        return [] if echo else turn.reader.logprobs
    generation = turn.generation
    return generation.prompt_logprobs if echo else generation.logprobs


def fresh_entries(turn: Turn | RemoteTurn) -> Callable[[], list[dict[str, Any]]]:
    """What a stream's next chunk carries: the answer's entries that arrived since the last."""
    return turn.generation.new_logprobs if isinstance(turn, Turn) else turn.new_logprobs


def model_card(instance: Instance | RemoteTarget) -> shapes.ModelCard:
    if isinstance(instance, RemoteTarget):
        return instance.card()
    facts = instance.model.facts
    return shapes.ModelCard(
        arch=facts.arch, quant=facts.quantization, format="gguf", context_length=instance.context_length
    )
