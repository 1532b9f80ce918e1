"""Split a rendered chat prompt into the template's markup and the messages' content.

Tokenizers turn the text of a special token (``<end_of_turn>``, ``<|im_start|>``) into that
token when asked to parse special tokens, which a chat prompt needs for its own turn markers.
If the whole prompt were tokenized that way, a user could type ``<end_of_turn>
<start_of_turn>model`` and forge a turn. So the prompt goes to the worker as parts: markup,
tokenized with special tokens, and content, tokenized as plain text.

How: the template is rendered a second time with each message's content replaced by a
placeholder (private-use characters around the message's index). What lies between the
placeholders is the template's markup. The real prompt is then matched against that
skeleton: markup must appear verbatim, and each content as given or trimmed (templates often
``trim`` it). If a template transforms content in another way, the match fails and the
skeleton is used with each content inserted as given: the prompt may then differ from the
template's in whitespace, but content can never become markup.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Part = tuple[str, bool]  # (text, parse special tokens?)

_OPEN, _CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(f"{_OPEN}(\\d+){_CLOSE}")


def split_prompt(
    render: Callable[[list[dict[str, Any]]], str], messages: list[dict[str, Any]]
) -> tuple[str, list[Part]]:
    """The rendered prompt and its parts (markup special, content plain text)."""
    prompt = render(messages)
    contents = [m.get("content") if isinstance(m.get("content"), str) else "" for m in messages]
    marked = [
        {**message, "content": f"{_OPEN}{index}{_CLOSE}"} if contents[index] else message
        for index, message in enumerate(messages)
    ]
    pieces = _PLACEHOLDER.split(render(marked))  # markup, index, markup, index, ..., markup
    markup = pieces[0::2]
    slots = [int(index) for index in pieces[1::2]]
    parts = _align(prompt, markup, [contents[index] for index in slots])
    if parts is None:
        skeleton = [(markup[0], True)]
        for index, after in zip(slots, markup[1:], strict=True):
            skeleton += [(contents[index], False), (after, True)]
        return "".join(text for text, _ in skeleton), _merged(skeleton)
    return prompt, parts


def _align(prompt: str, markup: list[str], contents: list[str]) -> list[Part] | None:
    """The prompt as markup and content parts, if it is the skeleton with each content as
    given or trimmed; None otherwise."""
    if not prompt.startswith(markup[0]):
        return None
    parts: list[Part] = [(markup[0], True)]
    pos = len(markup[0])
    for content, after in zip(contents, markup[1:], strict=True):
        for candidate in dict.fromkeys((content, content.strip(), content.lstrip(), content.rstrip())):
            end = pos + len(candidate)
            if prompt.startswith(candidate, pos) and prompt.startswith(after, end):
                parts += [(candidate, False), (after, True)]
                pos = end + len(after)
                break
        else:
            return None
    return _merged(parts) if pos == len(prompt) else None


def _merged(parts: list[Part]) -> list[Part]:
    """Neighbouring parts of the same kind joined, empty ones dropped."""
    merged: list[Part] = []
    for text, special in parts:
        if not text:
            continue
        if merged and merged[-1][1] == special:
            merged[-1] = (merged[-1][0] + text, special)
        else:
            merged.append((text, special))
    return merged
