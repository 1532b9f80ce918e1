"""Turning a pydantic validation failure into a 400 that names the field (OpenAI's error shape)."""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from .errors import APIError


class _FieldError(ValueError):
    """A cross-field check that knows exactly which field is wrong."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def _within(loc: str, param: str) -> str:
    """A cross-field check's field, under the object it checked (``tool_choice`` + ``name``);
    a field validator names its field from the top already (``messages.0.content``)."""
    if not loc or param == loc or param.startswith(loc + "."):
        return param
    return f"{loc}.{param}"


_TYPE_NAMES = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
    "string_type": "a string",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
}


_T = TypeVar("_T", bound=BaseModel)


def parse_request(model: type[_T], body: bytes) -> _T:
    """Validate a raw JSON body into ``model`` or raise an :class:`APIError` naming the field."""
    if not body.strip():
        raise APIError("The request body is empty; send a JSON object.", code="invalid_json")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        error = _to_api_error(exc)
        if error.code == "missing_required_parameter":
            error = _missing_beside_unknown(error, model, body)
        raise error from None


def _missing_beside_unknown(error: APIError, model: type[BaseModel], body: bytes) -> APIError:
    """A missing field next to fields the request does not know is most likely misnamed
    (``model_key`` for ``model``): say so, since extra fields are otherwise ignored."""
    try:
        sent = json.loads(body)
    except ValueError:
        return error
    unknown = sorted(key for key in sent if key not in model.model_fields) if isinstance(sent, dict) else []
    if not unknown:
        return error
    named = ", ".join(f"'{key}'" for key in unknown)
    return APIError(
        f"Missing required parameter: '{error.param}'. This route does not know {named}; "
        f'send "{error.param}" instead.',
        param=error.param,
        code=error.code,
    )


def too_deep() -> APIError:
    """JSON nested deeper than a parser's recursion limit: the client's fault, never a 500."""
    return APIError(
        "The request body is nested too deeply to be parsed; flatten the JSON.", code="invalid_json"
    )


def _to_api_error(exc: ValidationError) -> APIError:
    # Of a union's per-member errors, the deepest one says most (a list of parts missing
    # "text" beats "not a string"); for unrelated errors the first wins.
    first = max(exc.errors(), key=lambda error: len(error["loc"]))
    kind = first["type"]
    if kind == "json_invalid":
        return APIError(f"The request body is not valid JSON: {first['msg']}.", code="invalid_json")
    if kind == "model_type" and not first["loc"]:
        return APIError("The request body must be a JSON object.", code="invalid_json")
    # Unions report one error per member; the member names in loc are noise for a client.
    loc = [part for part in first["loc"] if isinstance(part, int) or not _is_union_tag(str(part))]
    param = ".".join(str(part) for part in loc) or None
    ctx_error = (first.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _FieldError):
        named = _within(param or "", ctx_error.param)
        return APIError(f"Invalid '{named}': {ctx_error}.", param=named)
    if kind == "missing":
        return APIError(
            f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
        )
    if kind in _TYPE_NAMES or kind.endswith("_type") or kind.endswith("_parsing"):
        expected = _TYPE_NAMES.get(kind, "a different type")
        if len(exc.errors()) > 1 and all(
            e["loc"][: len(loc)] == first["loc"][: len(loc)] for e in exc.errors()
        ):
            expected = "one of the accepted types"
        return APIError(f"Invalid type for '{param}': expected {expected}.", param=param, code="invalid_type")
    message = first["msg"].removeprefix("Value error, ")
    return APIError(f"Invalid value for '{param}': {message}.", param=param, code="invalid_value")


def _is_union_tag(part: str) -> bool:
    return part in {"str", "int", "float", "bool", "list[str]", "list[TextPart]", "dict[str,float]"} or (
        part.startswith(("list[", "dict[", "function-", "literal["))
    )
