"""Tool names as models are shown them (LM Studio's normalisation)."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_CAMEL_LOWER_UPPER = re.compile(r"([a-z0-9])([A-Z])")
_CAMEL_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_NOT_NAME = re.compile(r"[^a-z0-9]+")
_MAX_NAME = 64


def normalize_tool_name(name: str) -> str:
    """A snake_case spelling of a tool name, as LM Studio shows models (0.3.23+): models call
    ``get_weather`` far more reliably than ``Get Weather!`` or ``getWeather``.

    The result uses only ``[a-z0-9_]``, is at most 64 characters (OpenAI's limit) and is stable
    (normalizing it again changes nothing). Accents are dropped (``Zürich`` -> ``zurich``); a
    name with no usable characters, or one cut to length, gets a short hash so distinct names
    stay distinct. The server keeps the map back to the caller's spelling.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    spaced = _CAMEL_ACRONYM.sub(r"\1_\2", _CAMEL_LOWER_UPPER.sub(r"\1_\2", ascii_name))
    snake = _NOT_NAME.sub("_", spaced.lower()).strip("_")
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    if not snake:
        return f"tool_{digest}"
    if len(snake) > _MAX_NAME:
        return f"{snake[: _MAX_NAME - 9].rstrip('_')}_{digest}"
    return snake
