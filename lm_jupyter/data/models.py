"""Which model a run uses and how many requests it may keep in flight."""

from __future__ import annotations

from dataclasses import dataclass

from ._client import Client, LmError

# A model that is not loaded yet is loaded just in time with the server's default parallel.
DEFAULT_PARALLEL = 4


@dataclass(frozen=True)
class Target:
    model: str  # what requests name
    key: str  # what the cache is keyed by (the model's key, whichever instance serves it)
    parallel: int  # the instance's slots: requests in flight that batch together

    @property
    def in_flight(self) -> int:
        """Requests to keep in flight: the slots, and one more waiting behind every second
        slot, so a slot that finishes takes the next row at the server's next step instead of
        idling through the round trip to the notebook and back (the server queues them)."""
        return self.parallel + max(1, self.parallel // 2)


def resolve(client: Client, model: str | None, kind: str) -> Target:
    """``kind``: "llm" or "embedding". No model: the first loaded one of that kind. A server
    that is not lm_jupyter (a remote OpenAI-compatible upstream) has no model listing: the
    model must be named, and DEFAULT_PARALLEL requests go in flight."""
    try:
        loaded = client.loaded()
    except LmError:
        loaded = []
    if model is None:
        for row in loaded:
            if row["type"] == kind:
                return Target(row["identifier"], row["modelKey"], int(row["parallel"]))
        noun = "embedding model" if kind == "embedding" else "LLM"
        raise ValueError(f"No {noun} is loaded: load one (`%lms load KEY`) or pass model=")
    for row in loaded:
        if model in (row["identifier"], row["modelKey"]):
            return Target(model, row["modelKey"], int(row["parallel"]))
    return Target(model, model, DEFAULT_PARALLEL)
