"""Python functions as chat tools: JSON-schema tool definitions from signatures and docstrings,
and running the calls a model makes.

Pure (no I/O): the magics decide *whether* a call runs (the user allows it, or ``--auto-run``);
this module only describes functions and runs one call it is handed.

Types come from the annotations, so ``def weather(city: str, days: int = 1)`` becomes
``{"city": {"type": "string"}, "days": {"type": "integer", "default": 1}}`` with ``city``
required. ``Literal[...]`` and ``Enum`` become ``enum``, ``list[X]`` an array, ``X | None`` an
optional X, a pydantic model or dataclass its own schema. The docstring's first paragraph is
the tool's description, and Google-style (``Args:``) or Sphinx-style (``:param x:``) entries
describe the parameters.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

Tool = dict[str, Any]

_SIMPLE: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
    dict: {"type": "object"},
    list: {"type": "array"},
    Any: {},
}


class ToolError(Exception):
    """A function cannot be described as a tool, or a call cannot be run."""


def type_schema(annotation: Any) -> dict[str, Any]:
    """The JSON schema of one annotation (``inspect.Parameter.empty`` means any value)."""
    if annotation is inspect.Parameter.empty:
        return {}
    if annotation in _SIMPLE:
        return dict(_SIMPLE[annotation])
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        schema = type_schema(args[0])
        notes = [a for a in args[1:] if isinstance(a, str)]
        return {**schema, "description": notes[0]} if notes else schema
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        options = [type_schema(a) for a in args if a is not type(None)]
        nullable = len(options) < len(args)
        if len(options) == 1 and not nullable:
            return options[0]
        if len(options) == 1:
            return {"anyOf": [options[0], {"type": "null"}]}
        return {"anyOf": options + ([{"type": "null"}] if nullable else [])}
    if origin is tuple and args and args[-1] is not Ellipsis:
        items = [type_schema(a) for a in args]
        return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}
    if origin in (list, set, frozenset, tuple, Sequence):
        return {"type": "array", "items": type_schema(args[0])} if args else {"type": "array"}
    if origin is dict:
        return (
            {"type": "object", "additionalProperties": type_schema(args[1])} if args else {"type": "object"}
        )
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {"enum": [member.value for member in annotation]}
    if isinstance(annotation, type) and hasattr(annotation, "model_json_schema"):  # pydantic
        return dict(annotation.model_json_schema())
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return _object_schema(inspect.signature(annotation), typing.get_type_hints(annotation), {})
    raise ToolError(f"cannot describe the type {annotation!r} as JSON schema")


def function_tool(func: Callable[..., Any]) -> Tool:
    """The OpenAI ``tools`` entry that describes ``func``."""
    if not callable(func) or not hasattr(func, "__name__"):
        raise ToolError(f"{func!r} is not a function")
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as exc:  # an annotation that does not resolve
        raise ToolError(f"{func.__name__}: cannot read its type hints ({exc})") from None
    description, params = parse_docstring(inspect.getdoc(func) or "")
    try:
        schema = _object_schema(inspect.signature(func), hints, params)
    except ToolError as exc:
        raise ToolError(f"{func.__name__}: {exc}") from None
    function: dict[str, Any] = {"name": func.__name__, "parameters": schema}
    if description:
        function["description"] = description
    return {"type": "function", "function": function}


def _object_schema(
    signature: inspect.Signature, hints: dict[str, Any], descriptions: dict[str, str]
) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required = []
    for name, param in signature.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue  # a model can only send named arguments
        schema = type_schema(hints.get(name, param.annotation))
        if name in descriptions and "description" not in schema:
            schema["description"] = descriptions[name]
        if param.default is param.empty:
            required.append(name)
        elif _json_value(param.default):
            schema["default"] = param.default
        properties[name] = schema
    result: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        result["required"] = required
    return result


def _json_value(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params|Returns?|Raises|Yields|Examples?|Notes?):\s*$")
_GOOGLE_PARAM = re.compile(r"^\s+\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_PARAM = re.compile(r"^\s*:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The description (text before the first section) and each parameter's description."""
    description: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in doc.splitlines():
        sphinx = _SPHINX_PARAM.match(line)
        if sphinx:
            current, section = sphinx.group(1), "sphinx"
            params[current] = sphinx.group(2).strip()
            continue
        header = _SECTION.match(line.strip())
        if header:
            section, current = header.group(1).lower(), None
            continue
        if line.strip().startswith(":"):  # :returns:, :raises: ...
            section, current = "sphinx-other", None
            continue
        if section is None:
            description.append(line)
        elif section in ("args", "arguments", "parameters", "params"):
            google = _GOOGLE_PARAM.match(line)
            if google:
                current = google.group(1)
                params[current] = google.group(2).strip()
            elif current and line.strip():
                params[current] = f"{params[current]} {line.strip()}".strip()
        elif section == "sphinx" and current and line.startswith((" ", "\t")) and line.strip():
            params[current] = f"{params[current]} {line.strip()}"
    return "\n".join(description).strip(), params


def tools_from(functions: Any) -> tuple[list[Tool], dict[str, Callable[..., Any]]]:
    """``--tools VAR``: a function or a list of functions -> tool definitions and a name table."""
    items = [functions] if callable(functions) else functions
    if not isinstance(items, list | tuple) or not items:
        raise ToolError("--tools needs a function or a non-empty list of functions")
    tools, table = [], {}
    for func in items:
        tool = function_tool(func)
        name = tool["function"]["name"]
        if name in table:
            raise ToolError(f"two tools are named {name!r}")
        tools.append(tool)
        table[name] = func
    return tools, table


def call_tool(table: dict[str, Callable[..., Any]], name: str, arguments: str) -> str:
    """Run one call and return what goes back to the model as the tool message's content.

    A call the model got wrong (unknown tool, arguments that are not a JSON object, or that do
    not fit the signature) and an exception inside the function are reported to the model as
    ``Error: ...`` text, so it can correct itself; only the user interrupting stops the loop.
    """
    func = table.get(name)
    if func is None:
        return f"Error: there is no tool named {name!r}; the tools are {', '.join(sorted(table))}."
    try:
        args = json.loads(arguments or "{}")
    except json.JSONDecodeError as exc:
        return f"Error: the arguments are not valid JSON ({exc})."
    if not isinstance(args, dict):
        return "Error: the arguments must be a JSON object."
    try:
        inspect.signature(func).bind(**args)
    except TypeError as exc:
        return f"Error: {exc}."
    try:
        result = func(**args)
    except Exception as exc:
        return f"Error: {type(exc).__name__}: {exc}"
    return result_text(result)


def result_text(result: Any) -> str:
    """A tool's return value as message content: strings as they are, the rest as JSON."""
    if isinstance(result, str):
        return result
    if hasattr(result, "model_dump_json"):
        return str(result.model_dump_json())
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        result = dataclasses.asdict(result)
    try:
        return json.dumps(result, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(result)
