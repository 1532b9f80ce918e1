"""Remote MCP servers named in a Responses request (``{"type": "mcp", ...}`` tools).

lm_jupyter is the MCP client here, through the official ``mcp`` SDK over streamable HTTP. Every
step (connect, list, call) runs under a timeout, and a failure becomes data (an error on the
``mcp_list_tools`` or ``mcp_call`` item) rather than an exception, so a broken or silent server
costs the request at most the timeout and never hangs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from ..api.responses_request import McpToolSpec

log = logging.getLogger("lm_jupyter")


@dataclass
class McpServer:
    spec: McpToolSpec
    client: Client | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)  # as the mcp_list_tools item lists them
    error: str | None = None


@dataclass
class CallResult:
    output: str | None
    error: dict[str, Any] | None


class McpConnections:
    """The MCP servers of one request, connected for as long as the request runs."""

    def __init__(self, specs: list[McpToolSpec], timeout: float) -> None:
        self.servers = [McpServer(spec) for spec in specs]
        self.timeout = timeout
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> McpConnections:
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self._stack.aclose()

    async def connect(self, server: McpServer) -> None:
        """Connect and list the server's tools; on failure, record why in ``server.error``."""
        # The SDK validates call results with jsonschema, whose first import compiles grammars
        # for seconds: do it on a thread, not on the event loop in the middle of a call.
        await asyncio.to_thread(importlib.import_module, "jsonschema")
        headers = dict(server.spec.headers or {})
        # No anyio deadline around the connection: the client holds a task group open for the
        # whole request, and cancel scopes must nest. httpx's timeouts and the SDK's read timeout
        # bound every step instead.
        try:
            http = await self._stack.enter_async_context(  # a client we pass in is ours to close
                create_mcp_http_client(headers=headers, timeout=httpx2.Timeout(self.timeout))
            )
            client = Client(
                streamable_http_client(server.spec.server_url, http_client=http),
                read_timeout_seconds=self.timeout,
            )
            server.client = await self._stack.enter_async_context(client)
            listing = await server.client.list_tools()
        except Exception as exc:  # any failure of a remote server is reported, not raised
            server.error = f"Error retrieving tool list from MCP server '{server.spec.server_label}': "
            server.error += _describe(exc)
            log.info("%s", server.error)
            return
        server.tools = [
            {
                "name": tool.name,
                "description": tool.description,
                "input_schema": tool.input_schema,
                "annotations": tool.annotations.model_dump(exclude_none=True) if tool.annotations else None,
            }
            for tool in listing.tools
            if server.spec.allows(tool.name)
        ]

    def chat_tools(self, taken: set[str]) -> list[dict[str, Any]]:
        """The listed tools as chat function tools; a name already taken (by a client function or
        an earlier server) keeps its first owner."""
        tools = []
        for tool in self.offered().values():
            if tool["name"] in taken:
                continue
            function = {"name": tool["name"], "parameters": tool["input_schema"] or {"type": "object"}}
            if tool["description"]:
                function["description"] = tool["description"]
            tools.append({"type": "function", "function": function})
        return tools

    def offered(self) -> dict[str, dict[str, Any]]:
        tools: dict[str, dict[str, Any]] = {}
        for server in self.servers:
            for tool in server.tools:
                tools.setdefault(tool["name"], tool)
        return tools

    def owner(self, name: str) -> McpServer:
        return next(server for server in self.servers if any(t["name"] == name for t in server.tools))

    def by_label(self, label: str) -> McpServer | None:
        return next((server for server in self.servers if server.spec.server_label == label), None)

    async def call(self, server: McpServer, name: str, arguments: str) -> CallResult:
        if server.client is None:
            return CallResult(None, _protocol_error(server.error or "the server is not connected"))
        try:
            parsed = json.loads(arguments or "{}")
        except ValueError as exc:
            return CallResult(None, _protocol_error(f"the arguments are not valid JSON: {exc}"))
        try:
            with anyio.fail_after(self.timeout + 1):  # the SDK's own read timeout comes first
                result = await server.client.call_tool(name, parsed, read_timeout_seconds=self.timeout)
        except TimeoutError:
            return CallResult(None, _protocol_error(f"no answer within {self.timeout:g}s"))
        except Exception as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if isinstance(status, int):
                return CallResult(None, {"type": "http_error", "code": status, "message": _describe(exc)})
            return CallResult(None, _protocol_error(_describe(exc), getattr(exc, "code", -32603)))
        content = [block.model_dump(exclude_none=True) for block in result.content]
        if result.is_error:
            return CallResult(None, {"type": "mcp_tool_execution_error", "content": content})
        text = [block["text"] for block in content if block.get("type") == "text"]
        if len(text) == len(content):
            return CallResult("\n".join(text), None)
        return CallResult(json.dumps(content, ensure_ascii=False), None)


def _protocol_error(message: str, code: int = -32603) -> dict[str, Any]:
    return {
        "type": "mcp_protocol_error",
        "code": code if isinstance(code, int) else -32603,
        "message": message,
    }


def _describe(exc: BaseException) -> str:
    """The innermost cause: anyio wraps a transport failure in exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, TimeoutError):
        return "the server did not answer in time"
    return str(exc) or type(exc).__name__
