"""Hermes 2 Pro, Qwen 2.5/3: ``<tool_call>{"name": f, "arguments": {...}}</tool_call>``."""

from __future__ import annotations

from functools import partial

from .._json_stream import Malformed
from .._stream import Step
from ..toolcalls import CallMachine, JsonBlock
from .base import Family

_HERMES_TAGGED = JsonBlock(("<tool_call>",), "</tool_call>")
# Small Qwen 2.5 models (Coder 1.5B, say) often write the call as a fenced JSON block instead;
# llama.cpp's Hermes parser accepts that too. Only a block whose object names an offered tool
# becomes a call; any other JSON code block is given back as text.
_HERMES_FENCED = JsonBlock(("```json",), "```")
# ... or as bare JSON, with no tag at all, sometimes in the doubled braces of Qwen 2.5's template
# text (``{{"name": ...}}``); llama.cpp's Hermes parser accepts an untagged ``{"name"`` as well.
_BARE = ('{"name"', '{{"name"')


def _bare_call(p: CallMachine, marker: str) -> Step[None]:
    """An untagged call object: only one that names an offered tool becomes a call (any other
    JSON that starts with a ``name`` key stays text)."""
    if not p.offers_tools:
        raise Malformed("a bare JSON object is a call only when tools are offered")
    yield from p.json_call(opened="name")
    if marker.startswith("{{"):
        yield from p.skip_ws()
        yield from p.accept("}")


def _hermes(p: CallMachine) -> Step[None]:
    yield from p.scan(
        {
            **dict.fromkeys(_HERMES_TAGGED.starts, partial(_HERMES_TAGGED.parse, p)),
            **dict.fromkeys(_HERMES_FENCED.starts, partial(_HERMES_FENCED.parse, p)),
            **dict.fromkeys(_BARE, partial(_bare_call, p)),
        }
    )


FAMILY = Family(
    name="hermes",
    markers=(("<tool_call>",),),
    priority=60,
    program=_hermes,
    call_wrapper=('<tool_call>\n{"name": "NAME", "arguments": ', "}\n</tool_call>"),
)
