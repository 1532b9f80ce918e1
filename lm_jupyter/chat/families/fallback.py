"""LM Studio's default tool use for templates without tool support:
``[TOOL_REQUEST]{"name": f, "arguments": {...}}[END_TOOL_REQUEST]``, taught to the model by
``chat/fallback_tools.py``. No template marker: it is what detection falls back to."""

from __future__ import annotations

from ..fallback_tools import REQUEST_CLOSE, REQUEST_OPEN
from ..toolcalls import JsonBlock, scanning
from .base import Family

FAMILY = Family(
    name="fallback",
    markers=(),
    priority=1000,
    program=scanning(JsonBlock((REQUEST_OPEN,), REQUEST_CLOSE)),
    call_wrapper=(REQUEST_OPEN + '{"name": "NAME", "arguments": ', "}" + REQUEST_CLOSE),
)
