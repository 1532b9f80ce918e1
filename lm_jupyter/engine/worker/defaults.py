"""LM Studio's sampling defaults, for every backend: what a request that sets nothing gets."""

from __future__ import annotations

from typing import Any

from ..protocol import GenerateParams

DEFAULTS = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.1}
PENALTY_LAST_N = 64  # tokens the repetition, frequency and presence penalties look back over


def pick(params: GenerateParams, name: str) -> Any:
    value = params.get(name)  # type: ignore[misc]
    return DEFAULTS[name] if value is None else value
