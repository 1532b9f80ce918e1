"""The registry of model families: one module per family, each defining ``FAMILY``.

Adding a family is adding a module here; it is found by name, and detection tries families by
their ``priority``. The server detects the family once per request (:func:`detect_family` on
the template it renders) and passes the record on to the prompt, the output parser, forced
calls and the reasoning field.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from ..toolcalls import ToolCallParser, default_call_id
from .base import Family

__all__ = ["FALLBACK", "FAMILIES", "Family", "detect_family", "family_named", "make_parser"]


def _load() -> dict[str, Family]:
    found = []
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            found.append(importlib.import_module(f"{__name__}.{module.name}").FAMILY)
    return {family.name: family for family in sorted(found, key=lambda family: family.priority)}


FAMILIES: dict[str, Family] = _load()
FALLBACK = FAMILIES["fallback"]


def detect_family(chat_template: str | None) -> Family:
    """The family a chat template was written for; the fallback (LM Studio's "default" tool
    use) when it has no tool support a family here knows."""
    if chat_template:
        for family in FAMILIES.values():
            if family.detects(chat_template):
                return family
    return FALLBACK


def family_named(name: str) -> Family:
    family = FAMILIES.get(name)
    if family is None:
        raise ValueError(f"unknown tool-call family {name!r}; known: {', '.join(FAMILIES)}")
    return family


def make_parser(
    family: str, *, tool_names: list[str] | None = None, new_id: Callable[[], str] = default_call_id
) -> ToolCallParser:
    """A fresh streaming parser for ``family``'s format (see :meth:`Family.parser`)."""
    return family_named(family).parser(tool_names=tool_names, new_id=new_id)
