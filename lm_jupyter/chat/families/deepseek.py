"""DeepSeek V3/R1 and V3.1: ``<|tool▁calls▁begin|><|tool▁call▁begin|>function<|tool▁sep|>f``
+ a fenced JSON block, or (V3.1) ``...<|tool▁call▁begin|>f<|tool▁sep|>{...}`` (the bars in
DeepSeek's tokens are fullwidth, U+FF5C)."""

from __future__ import annotations

from dataclasses import dataclass

from .._json_stream import Malformed
from .._stream import Step
from ..toolcalls import CallMachine, is_name_char, scanning
from .base import Family


def _deepseek_token(words: str, space: str = "\u2581") -> str:
    """DeepSeek's special tokens (fullwidth bars, U+2581 between words) from "tool calls begin"."""
    return "<\uff5c" + space.join(words.split()) + "\uff5c>"


_DS_CALL_BEGIN = _deepseek_token("tool call begin")
_DS_CALL_END = _deepseek_token("tool call end")
_DS_SEP = _deepseek_token("tool sep")
_DS_CALLS_END = _deepseek_token("tool calls end")


@dataclass(frozen=True)
class _DeepSeekBlock:
    """DeepSeek V3/R1 (``function<|tool▁sep|>f`` + ```` ```json ```` fence) and V3.1
    (``f<|tool▁sep|>{...}``) calls between ``<|tool▁calls▁begin|>`` and its end token.
    The begin token's misspellings are those R1 distills produce (accepted by llama.cpp)."""

    starts: tuple[str, ...] = (
        _deepseek_token("tool calls begin"),
        _deepseek_token("tool calls begin", "_"),
        _deepseek_token("tool calls begin", " "),
        _deepseek_token("tool calls begin", "\\_"),
        _deepseek_token("tool calls"),
    )

    def parse(self, p: CallMachine, marker: str) -> Step[None]:
        first = p.calls
        yield from p.skip_ws()
        while (yield from p.accept(_DS_CALL_BEGIN)):
            head, _ = yield from p.read_until((_DS_SEP,), is_name_char)
            if head == "function":  # V3/R1: the call's type; the name follows on its own line
                name, _ = yield from p.read_until(("\n",), is_name_char)
                p.begin_call(name)
                yield from p.skip_ws()
                if (yield from p.accept("```")):
                    yield from p.accept("json")
            else:
                p.begin_call(head)
            yield from p.skip_ws()
            yield from p.json_value(p.emit_args)
            yield from p.skip_ws()
            yield from p.accept("```")
            yield from p.skip_ws()
            yield from p.accept(_DS_CALL_END)
            yield from p.skip_ws()
        if p.calls == first:
            raise Malformed("no call after the begin token")
        yield from p.accept(_DS_CALLS_END)


FAMILY = Family(
    name="deepseek",
    markers=((_deepseek_token("tool calls begin"),),),
    priority=10,
    program=scanning(_DeepSeekBlock()),
    call_wrapper=(
        f"{_DeepSeekBlock.starts[0]}{_DS_CALL_BEGIN}function{_DS_SEP}NAME\n```json\n",
        f"\n```{_DS_CALL_END}{_DS_CALLS_END}",
    ),
)
