"""Which JSON Schema features can be enforced while generating.

Schemas become llama.cpp grammars (llama-cpp-python's converter). Keywords the converter does
not understand would be silently dropped, so the model could emit JSON that fails the
caller's own validation; refusing them up front with the keyword's path is the honest answer.
"""

from __future__ import annotations

from typing import Any

from ..api.errors import APIError

ENFORCED = {
    "type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems",
    "maxItems", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$defs", "definitions",
    "pattern", "format", "minLength", "maxLength",
}  # fmt: skip
ANNOTATIONS = {
    "title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated",
    "readOnly", "writeOnly", "strict", "name",
}  # fmt: skip
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")


def check_schema(schema: Any, param: str = "response_format") -> None:
    """Raise a 400 naming the first keyword that would not be enforced."""
    unsupported = _unsupported(schema, "#")
    if unsupported:
        keyword, path = unsupported
        raise APIError(
            f"The JSON schema uses '{keyword}' at {path}, which cannot be enforced while generating "
            f"(enforced keywords: {', '.join(sorted(ENFORCED))}). Remove it, or validate that part "
            "yourself after parsing.",
            param=param,
            code="unsupported_schema",
        )


def _unsupported(schema: Any, path: str) -> tuple[str, str] | None:
    if isinstance(schema, bool):
        return None
    if not isinstance(schema, dict):
        return ("(not an object)", path)
    for keyword, value in schema.items():
        if keyword not in ENFORCED and keyword not in ANNOTATIONS:
            return (keyword, path)
        children: list[tuple[Any, str]] = []
        if keyword in _SUBSCHEMA_MAPS and isinstance(value, dict):
            children = [(sub, f"{path}/{keyword}/{name}") for name, sub in value.items()]
        elif keyword in _SUBSCHEMA_LISTS and isinstance(value, list):
            children = [(sub, f"{path}/{keyword}/{i}") for i, sub in enumerate(value)]
        elif keyword in ("items", "additionalProperties") and isinstance(value, dict):
            children = [(value, f"{path}/{keyword}")]
        for sub, sub_path in children:
            found = _unsupported(sub, sub_path)
            if found:
                return found
    return None


# How each family writes one call, as (text before the arguments JSON, text after it); NAME is
# replaced by the model-facing tool name. Families whose arguments are not a JSON object
# (Qwen3-Coder and Seed-OSS XML, gpt-oss Harmony) cannot be forced this way yet.
CALL_WRAPPERS: dict[str, tuple[str, str]] = {
    "hermes": ('<tool_call>\n{"name": "NAME", "arguments": ', "}\n</tool_call>"),
    "fallback": ('[TOOL_REQUEST]{"name": "NAME", "arguments": ', "}[END_TOOL_REQUEST]"),
    "llama3": ('{"name": "NAME", "parameters": ', "}"),
    "mistral": ("[TOOL_CALLS]NAME[ARGS]", ""),
    "nemotron_nano_v2": ('<TOOLCALL>[{"name": "NAME", "arguments": ', "}]</TOOLCALL>"),
    "granite": ('<|tool_call|>[{"name": "NAME", "arguments": ', "}]"),
    "functionary_v3": (">>>NAME\n", ""),
    "deepseek": (
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n",  # noqa: RUF001
        "\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",  # noqa: RUF001
    ),
}


def forced_calls(
    family: str, tools: list[dict[str, Any]], only: str | None, *, several: bool
) -> dict[str, Any]:
    """The constraint that makes the model call a tool (``tool_choice`` required or named).

    Returns ``{"alternatives": [{"prefix", "schema", "suffix"}…], "repeat": bool}``; the worker
    turns each schema into a grammar and the alternatives into one ``root`` rule.
    """
    wrapper = CALL_WRAPPERS.get(family)
    if wrapper is None:
        raise APIError(
            f"tool_choice 'required' or a named function cannot be enforced for this model's tool-call "
            f"format ({family}); use tool_choice 'auto'.",
            param="tool_choice",
            code="unsupported_tool_choice",
        )
    alternatives = []
    for tool in tools:
        function = tool["function"]
        if only is not None and function["name"] != only:
            continue
        schema = function.get("parameters") or {"type": "object"}
        check_schema(schema, param="tools")
        prefix, suffix = (part.replace("NAME", function["name"]) for part in wrapper)
        alternatives.append({"prefix": prefix, "schema": schema, "suffix": suffix})
    return {"alternatives": alternatives, "repeat": several}
