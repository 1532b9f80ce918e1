"""NVIDIA Nemotron-Nano v2: ``<TOOLCALL>[{...}]</TOOLCALL>``."""

from __future__ import annotations

from ..toolcalls import JsonBlock, scanning
from .base import Family

FAMILY = Family(
    name="nemotron_nano_v2",
    markers=(("<TOOLCALL>",),),
    priority=50,
    program=scanning(JsonBlock(("<TOOLCALL>",), "</TOOLCALL>")),
    call_wrapper=('<TOOLCALL>[{"name": "NAME", "arguments": ', "}]</TOOLCALL>"),
)
