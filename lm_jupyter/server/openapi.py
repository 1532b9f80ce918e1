"""An OpenAPI 3.1 description of every route the extension serves: ``GET /v1/openapi.json``.

Built from the routes themselves (``app.ROUTES``: each pattern, each verb its handler
implements, path parameters named after the handler method's arguments) and from the pydantic
request models the handlers validate bodies with (``BaseHandler.body_model``), so it cannot
drift from what the server accepts. Clients and API fuzzers (the tests run schemathesis
against it) read it; every error is described as OpenAI's error object, which every route
answers with. The catch-all 404s under the extension's prefixes are not routes and are left out.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from jupyter_server.base.handlers import APIHandler
from pydantic.json_schema import models_json_schema
from tornado import web

from .._version import __version__
from .handlers import BaseHandler

OPENAPI_SETTING = "lm_jupyter_openapi"  # the built document, in the Tornado settings
VERBS = ("get", "post", "put", "patch", "delete")
_GROUP = re.compile(r"\([^)]*\)")

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}


_ANTHROPIC_ERROR = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}
_LMSTUDIO_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "code": {"type": "string"},
                "param": {"type": "string"},
            },
        }
    },
}
_ERROR_RESPONSES = {"openai": "Error", "anthropic": "AnthropicError", "lmstudio": "LMStudioError"}


def verbs_of(handler: type[BaseHandler]) -> list[str]:
    """The HTTP verbs a handler implements (Jupyter's APIHandler defines them all as 405s)."""
    return [verb for verb in VERBS if getattr(handler, verb) is not getattr(APIHandler, verb)]


def build(routes: list[tuple[str, type[BaseHandler]]]) -> dict[str, Any]:
    models = {handler.body_model for _, handler in routes if handler.body_model is not None}
    refs, definitions = models_json_schema(
        [(model, "validation") for model in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, Any] = {}
    for pattern, handler in routes:
        operations = {}
        for verb in verbs_of(handler):
            method = getattr(handler, verb)
            names = [name for name in inspect.signature(method).parameters if name != "self"]
            arguments = names[: len(_GROUP.findall(pattern))]  # optional ones may be left out
            path = pattern
            for name in arguments:
                path = _GROUP.sub("{" + name + "}", path, count=1)
            operation: dict[str, Any] = {
                "operationId": verb + re.sub(r"[^A-Za-z0-9]+", "_", path).rstrip("_"),
                "summary": _summary(handler),
                "parameters": [
                    {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                    for name in arguments
                ],
                "responses": {
                    "200": {"description": "Success", "content": {"application/json": {"schema": {}}}},
                    "default": {"$ref": f"#/components/responses/{_ERROR_RESPONSES[handler.error_format]}"},
                },
            }
            if verb in ("post", "put", "patch") and handler.body_model is not None:
                ref = refs[(handler.body_model, "validation")]
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": ref}},
                }
            operations[verb] = operation
            paths[path] = operations
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "lm_jupyter",
            "version": __version__,
            "description": "OpenAI-compatible and LM Studio routes of the lm_jupyter Jupyter extension.",
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": {
                **definitions.get("$defs", {}),
                "Error": _ERROR,
                "AnthropicError": _ANTHROPIC_ERROR,
                "LMStudioError": _LMSTUDIO_ERROR,
            },
            "responses": {
                "Error": {
                    "description": "An error in OpenAI's format",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
                "AnthropicError": {
                    "description": "An error in Anthropic's format (the Messages API's routes)",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/AnthropicError"}}
                    },
                },
                "LMStudioError": {
                    "description": "An error in LM Studio's v1 format (/api/v1/chat)",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/LMStudioError"}}
                    },
                },
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The Jupyter server's token, or an lm_jupyter API token (sk-lmj-...).",
                }
            },
        },
    }


def _summary(handler: type[BaseHandler]) -> str:
    doc = inspect.getdoc(handler) or ""
    return doc.split("\n", 1)[0] if doc and handler.__doc__ else handler.__name__


class OpenAPIHandler(BaseHandler):
    """This description."""

    @web.authenticated
    async def get(self) -> None:
        self.write_json(self.settings[OPENAPI_SETTING])


ROUTES: list[tuple[str, type[BaseHandler]]] = [(r"/v1/openapi.json", OpenAPIHandler)]
