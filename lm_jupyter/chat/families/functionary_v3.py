"""Functionary v3.2: ``>>>f\\n{...}`` per call, ``>>>all\\ntext`` for the answer (the prompt
already ends with ``>>>``); parsed also for requests without tools. Its template is a Llama 3
one, so it is tried before ``llama3``."""

from __future__ import annotations

from functools import partial

from .._json_stream import Malformed, StringWriter
from .._stream import Step
from ..toolcalls import CallMachine, is_name_char
from .base import Family


def _functionary(p: CallMachine) -> Step[None]:
    """Functionary v3.2: parts ``>>>name\\n...``; the prompt ends with ``>>>`` so the first part
    comes without it. ``all`` is the answer, ``python`` may be raw code (wrapped as
    ``{"code": ...}``), anything else is a call with JSON arguments."""
    yield from p.attempt(partial(_functionary_part, p, ""))
    yield from p.scan({">>>": partial(_functionary_part, p)})


def _functionary_part(p: CallMachine, marker: str) -> Step[None]:
    if not marker:
        yield from p.accept(">>>")
    name, _ = yield from p.read_until(("\n",), is_name_char, limit=64)
    if name == "all":
        return  # the answer follows, up to the next >>>
    raw_python = name == "python" and (yield from p.peek()) != "{"
    if not raw_python and (yield from p.peek()) != "{":
        raise Malformed("not a call")
    p.begin_call(name)
    if not raw_python:
        yield from p.json_value(p.emit_args)
        return
    p.emit_args('{"code": ')
    code = StringWriter(p.emit_args)
    found = yield from p.text_until((">>>",), code.write)
    if found:
        p.pos -= len(found)
    code.close()
    p.emit_args("}")


FAMILY = Family(
    name="functionary_v3",
    markers=((">>>all",),),
    priority=80,
    program=_functionary,
    call_wrapper=(">>>NAME\n", ""),
    always_parsed=True,
)
