"""Which JSON Schema features can be enforced while generating.

Schemas become llama.cpp grammars (llama-cpp-python's converter). Keywords the converter does
not understand would be silently dropped, so the model could emit JSON that fails the
caller's own validation; refusing them up front with the keyword's path is the honest answer.
"""

from __future__ import annotations

from typing import Any

from ..api.errors import APIError
from .families import Family

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
    for ref, path in _refs(schema, "#"):
        if not _resolves(schema, ref):
            raise APIError(
                f"The JSON schema's $ref '{ref}' at {path} does not point into the schema itself; "
                "only local references like '#/$defs/Name' to definitions that exist can be enforced.",
                param=param,
                code="unsupported_schema",
            )


def _refs(schema: Any, path: str) -> list[tuple[Any, str]]:
    """Every ``$ref`` in the schema with where it is."""
    found: list[tuple[Any, str]] = []
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref":
                found.append((value, path))
            else:
                found += _refs(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            found += _refs(value, f"{path}/{index}")
    return found


def _resolves(root: Any, ref: Any) -> bool:
    """Whether a ``$ref`` is a JSON pointer (``#/a/b``) to a schema inside ``root``."""
    if not isinstance(ref, str) or not ref.startswith("#"):
        return False
    node = root
    for raw in ref[1:].split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return isinstance(node, (dict, bool))


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


def forced_calls(
    family: Family, tools: list[dict[str, Any]], only: str | None, *, several: bool
) -> dict[str, Any]:
    """The constraint that makes the model call a tool (``tool_choice`` required or named).

    Returns ``{"alternatives": [{"prefix", "schema", "suffix"}…], "repeat": bool}``; the worker
    turns each schema into a grammar and the alternatives into one ``root`` rule.
    """
    wrapper = family.call_wrapper
    if wrapper is None:
        raise APIError(
            f"tool_choice 'required' or a named function cannot be enforced for this model's tool-call "
            f"format ({family.name}); use tool_choice 'auto'.",
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
