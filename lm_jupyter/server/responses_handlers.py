"""Thin handlers for OpenAI's Responses API: ``/v1/responses`` and its stored objects.

LM Studio serves the Responses API only under ``/v1`` (it has no ``/api/v0`` or ``/api/v1``
twin), and so do we. Stored responses belong to the credential that created them
(``server/response_store.py``).
"""

from __future__ import annotations

import json
from typing import Any

from tornado import web
from tornado.iostream import StreamClosedError

from ..api.errors import APIError
from ..api.requests import parse_request
from ..api.responses_chat import not_found
from ..api.responses_request import ResponsesRequest
from ..api.sse import sse_event
from .handlers import BaseHandler
from .presets import PRESETS_SETTING
from .response_store import RESPONSES_SETTING, ResponseStore
from .responses_runner import ResponseRun

REMOTE_MCP_SETTING = "lm_jupyter_enable_remote_mcp"
MCP_TIMEOUT_SETTING = "lm_jupyter_mcp_timeout"


class _StoredHandler(BaseHandler):
    response_run: ResponseRun | None = None  # a streaming run, cancelled if its client goes away

    @property
    def store(self) -> ResponseStore:
        return self.settings[RESPONSES_SETTING]

    async def send_events(self, events: list[dict[str, Any]]) -> None:
        """Named SSE events (``event["type"]``); an error before the first is a plain HTTP error."""
        if not self._headers_written:
            self.set_header("Content-Type", "text/event-stream")
            self.set_header("Cache-Control", "no-cache")
            self.set_header("X-Accel-Buffering", "no")
        for event in events:
            self.write(sse_event(event["type"], event))
        if events:
            await self.flush()

    def on_connection_close(self) -> None:
        if self.response_run is not None:
            self.response_run.cancel()

    def new_run(self, body: bytes | None = None, tools_param: str = "tools") -> ResponseRun:
        """A run of ``body`` (the request's by default), whose remote MCP tools this server must
        allow; ``tools_param`` is where the client's request has them (for the error)."""
        body = self.request.body if body is None else body
        request = parse_request(ResponsesRequest, body)
        for index, tool in enumerate(request.tools or []):
            if tool.type == "mcp" and not self.settings.get(REMOTE_MCP_SETTING, False):
                raise APIError(
                    "Remote MCP servers are disabled on this server. Start it with "
                    "--LmJupyterApp.enable_remote_mcp=True (or set c.LmJupyterApp.enable_remote_mcp "
                    "= True in jupyter_server_config.py) to allow per-request MCP tools.",
                    param=f"{tools_param}.{index}.type",
                    code="mcp_disabled",
                )
        return ResponseRun(
            self.manager,
            self.store,
            request,
            json.loads(body),
            self.settings[PRESETS_SETTING].for_request,
            self.settings.get(MCP_TIMEOUT_SETTING, 30.0),
            self.owner,
        )


class ResponsesHandler(_StoredHandler):
    """OpenAI's Responses API."""

    body_model = ResponsesRequest

    @web.authenticated
    async def post(self) -> None:
        run = self.response_run = self.new_run()
        request = run.request
        if not request.stream:
            self.write_json(await run.run(None))
            return
        try:
            await run.run(self.send_events)
        except StreamClosedError:
            run.cancel()
            return
        self.finish(set_content_type="text/event-stream")


class InputTokensHandler(_StoredHandler):
    """``/v1/responses/input_tokens``: what the same ``/v1/responses`` body would cost in input."""

    body_model = ResponsesRequest

    @web.authenticated
    async def post(self) -> None:
        count = await self.new_run().input_tokens()
        self.write_json({"object": "response.input_tokens", "input_tokens": count})


class ResponseHandler(_StoredHandler):
    @web.authenticated
    async def get(self, response_id: str) -> None:
        stored = await self.store.get(response_id, self.owner)
        if stored is None:
            raise not_found(response_id)
        self.write_json(stored.response)

    @web.authenticated
    async def delete(self, response_id: str) -> None:
        if not await self.store.delete(response_id, self.owner):
            raise not_found(response_id)
        self.write_json({"id": response_id, "object": "response.deleted", "deleted": True})


class InputItemsHandler(_StoredHandler):
    @web.authenticated
    async def get(self, response_id: str) -> None:
        stored = await self.store.get(response_id, self.owner)
        if stored is None:
            raise not_found(response_id)
        items = stored.input_items
        order = self.get_argument("order", "desc")
        if order not in ("asc", "desc"):
            raise APIError("Invalid 'order': must be 'asc' or 'desc'.", param="order", code="invalid_value")
        if order == "desc":
            items = items[::-1]
        after = self.get_argument("after", None)
        if after is not None:
            ids = [item["id"] for item in items]
            if after not in ids:
                raise APIError(f"No input item with id '{after}'.", param="after", code="invalid_value")
            items = items[ids.index(after) + 1 :]
        limit_text = self.get_argument("limit", "20")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 100:
            raise APIError(
                "Invalid 'limit': must be an integer from 1 to 100.", param="limit", code="invalid_value"
            )
        page = items[: int(limit_text)]
        self.write_json(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(items) > len(page),
            }
        )


ROUTES: list[tuple[str, type[BaseHandler]]] = [
    (r"/v1/responses", ResponsesHandler),
    (r"/v1/responses/input_tokens", InputTokensHandler),  # before the id route, which it would match
    (r"/v1/responses/([^/]+)", ResponseHandler),
    (r"/v1/responses/([^/]+)/input_items", InputItemsHandler),
]
