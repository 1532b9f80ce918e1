"""OpenAI-style error bodies.

Every failure a client can cause is raised as an :class:`APIError` deep inside the stack and
turned into the same JSON body by the handler, so the status, ``type`` and ``param`` a client
sees never depend on which layer noticed the problem.
"""

from __future__ import annotations

from typing import Any


class APIError(Exception):
    """An error with the HTTP status and OpenAI error fields it must be reported with."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.param = param
        self.code = code
        self.retry_after = retry_after  # seconds, sent as Retry-After (503 queue full)

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def model_not_found(model: str) -> APIError:
    return APIError(
        f"Model '{model}' is not downloaded. Run `lmj ls` to see the models you have, "
        "or `lmj import PATH` to add a GGUF file.",
        status=404,
        param="model",
        code="model_not_found",
    )


def jit_off(model: str) -> APIError:
    """A request for a model that is not loaded while ``ModelManager.jit_loading`` is off."""
    return APIError(
        f"'{model}' is not loaded and just-in-time loading is off on this server: load it first "
        f"(`lmj load {model}`), or turn JIT loading on (`lmj server settings --set jit_loading=true`).",
        param="model",
        code="model_not_loaded",
    )


def server_error(message: str) -> APIError:
    return APIError(message, status=500, type="server_error", code="internal_error")
