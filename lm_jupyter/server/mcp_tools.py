"""Remote MCP servers named in a Responses request (``{"type": "mcp", ...}`` tools).

lm_jupyter is the MCP client here, through the official ``mcp`` SDK over streamable HTTP. Every
step (connect, list, call) runs under a timeout, and a failure becomes data (an error on the
``mcp_list_tools`` or ``mcp_call`` item) rather than an exception, so a broken or silent server
costs the request at most the timeout and never hangs it.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from ..api.responses_request import McpToolSpec

log = logging.getLogger("lm_jupyter")


@dataclass
class McpServer:
    spec: McpToolSpec
    session: _Session | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)  # as the mcp_list_tools item lists them
    error: str | None = None


@dataclass
class CallResult:
    output: str | None
    error: dict[str, Any] | None


_Job = tuple[str, dict[str, Any], "asyncio.Future[Any]"]


class _Session:
    """One MCP server's connection, held by a task of its own.

    The SDK's client keeps an anyio task group open for as long as it is connected, and a task
    group cancels the task that opened it when one of its children fails (a stream read timing
    out after the SDK gave up on a call does). Opened in the request's task, that cancellation
    surfaced at the request's next await, in the next round's generation. Here it can only end
    this task, which then fails the calls it holds.
    """

    def __init__(self, spec: McpToolSpec, timeout: float) -> None:
        self.spec = spec
        self.timeout = timeout
        self.listed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.jobs: asyncio.Queue[_Job | None] = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        job: _Job | None = None
        try:
            async with (  # a client we pass in is ours to close
                create_mcp_http_client(
                    headers=dict(self.spec.headers or {}), timeout=httpx2.Timeout(self.timeout)
                ) as http,
                Client(
                    streamable_http_client(self.spec.server_url, http_client=http),
                    read_timeout_seconds=self.timeout,
                ) as client,
            ):
                self.listed.set_result(await client.list_tools())
                while (job := await self.jobs.get()) is not None:
                    name, arguments, answer = job
                    try:
                        answer.set_result(
                            await client.call_tool(name, arguments, read_timeout_seconds=self.timeout)
                        )
                    except Exception as exc:  # the call failed; the connection may go on
                        answer.set_exception(exc)
                    job = None
        except (Exception, asyncio.CancelledError) as exc:  # a cancellation ends this task only
            lost = exc if isinstance(exc, Exception) else ConnectionError("the connection was closed")
            for waiting in (self.listed, job[2] if job else None):
                if waiting is not None and not waiting.done():
                    waiting.set_exception(lost)
            while not self.jobs.empty():
                if (queued := self.jobs.get_nowait()) is not None and not queued[2].done():
                    queued[2].set_exception(lost)

    async def list_tools(self) -> Any:
        """The server's tool listing, within the timeout (the SDK bounds each read, not the
        connection as a whole: a server that accepts and never answers would hold the request)."""
        return await asyncio.wait_for(asyncio.shield(self.listed), self.timeout + 1)

    async def call(self, name: str, arguments: dict[str, Any]) -> Any:
        """The SDK's read timeout comes first; the wait here is the backstop."""
        if self.task.done():
            raise ConnectionError("the connection to the server was lost")
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.jobs.put_nowait((name, arguments, answer))
        return await asyncio.wait_for(asyncio.shield(answer), self.timeout + 1)

    async def close(self) -> None:
        """Disconnect politely, or drop a connection that does not end in time (``asyncio.wait``
        never raises the task's outcome into the request)."""
        self.jobs.put_nowait(None)
        _done, running = await asyncio.wait({self.task}, timeout=self.timeout)
        if running:
            self.task.cancel()
            await asyncio.wait(running)


class McpConnections:
    """The MCP servers of one request, connected for as long as the request runs."""

    def __init__(self, specs: list[McpToolSpec], timeout: float) -> None:
        self.servers = [McpServer(spec) for spec in specs]
        self.timeout = timeout

    async def __aenter__(self) -> McpConnections:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for server in self.servers:
            if server.session is not None:
                await server.session.close()

    async def connect(self, server: McpServer) -> None:
        """Connect and list the server's tools; on failure, record why in ``server.error``."""
        # The SDK validates call results with jsonschema, whose first import compiles grammars
        # for seconds: do it on a thread, not on the event loop in the middle of a call.
        await asyncio.to_thread(importlib.import_module, "jsonschema")
        server.session = _Session(server.spec, self.timeout)
        try:
            listing = await server.session.list_tools()
        except Exception as exc:  # any failure of a remote server is reported, not raised
            server.error = f"Error retrieving tool list from MCP server '{server.spec.server_label}': "
            server.error += _describe(exc)
            log.info("%s", server.error)
            server.session.task.cancel()  # a connection still trying is of no use now
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
        if server.session is None or server.error is not None:
            return CallResult(None, _protocol_error(server.error or "the server is not connected"))
        try:
            parsed = json.loads(arguments or "{}")
        except ValueError as exc:
            return CallResult(None, _protocol_error(f"the arguments are not valid JSON: {exc}"))
        try:
            result = await server.session.call(name, parsed)
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
