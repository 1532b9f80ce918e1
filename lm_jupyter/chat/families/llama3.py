"""Llama 3.1-3.3: the whole reply is ``{"name": f, "parameters": {...}}`` (``;``-separated
for several), optionally after ``<|python_tag|>``."""

from __future__ import annotations

from functools import partial

from .._stream import Step
from ..toolcalls import CallMachine
from .base import Family

_PYTHON_TAG = "<|python_tag|>"
_LLAMA_FIRST_KEYS = frozenset({"name", "type"})
_END_OF_MESSAGE = "<|eom_id|>"


def _llama3(p: CallMachine) -> Step[None]:
    """The reply is either the call(s) or the answer, decided at the first non-space characters
    (``{"name"``/``{"type"`` or ``<|python_tag|>``), so a plain answer streams at once."""
    yield from p.attempt(partial(_llama3_calls, p, ""))
    yield from p.scan({_PYTHON_TAG: partial(_llama3_calls, p)})


def _llama3_calls(p: CallMachine, marker: str) -> Step[None]:
    more = True
    while more:
        yield from p.skip_ws()
        yield from p.accept(_PYTHON_TAG)
        yield from p.skip_ws()
        yield from p.json_call(first_keys=_LLAMA_FIRST_KEYS)
        yield from p.skip_ws()
        more = yield from p.accept(";")
    yield from p.accept(_END_OF_MESSAGE)  # in case the server leaves the stop token in the text


FAMILY = Family(
    name="llama3",
    markers=((_PYTHON_TAG,), ("<|start_header_id|>", "ipython")),
    priority=100,
    program=_llama3,
    call_wrapper=('{"name": "NAME", "parameters": ', "}"),
)
