"""Server-sent-events framing shared by every streaming route."""

from __future__ import annotations

import json
from typing import Any

DONE = b"data: [DONE]\n\n"


def sse_data(payload: dict[str, Any]) -> bytes:
    """Frame one JSON payload; compact separators keep per-token frames small."""
    return b"data: " + json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


def sse_event(name: str, payload: dict[str, Any]) -> bytes:
    """A named event (``event: NAME``), as the Responses and Anthropic streams send them."""
    return f"event: {name}\n".encode() + sse_data(payload)
