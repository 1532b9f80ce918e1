"""IBM Granite 3.x: ``<|tool_call|>[{...}]``."""

from __future__ import annotations

from ..toolcalls import JsonBlock, scanning
from .base import Family

FAMILY = Family(
    name="granite",
    markers=(("<|tool_call|>",),),
    priority=70,
    program=scanning(JsonBlock(("<|tool_call|>",))),
    call_wrapper=('<|tool_call|>[{"name": "NAME", "arguments": ', "}]"),
)
