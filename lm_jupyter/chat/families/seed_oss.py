"""ByteDance Seed-OSS: Qwen3-Coder's XML calls inside ``<seed:tool_call>``."""

from __future__ import annotations

from ..toolcalls import scanning
from .base import Family
from .qwen3_coder import XmlBlock

FAMILY = Family(
    name="seed_oss",
    markers=(("<seed:tool_call>",),),
    priority=30,
    program=scanning(XmlBlock(("<seed:tool_call>",), "</seed:tool_call>")),
)
