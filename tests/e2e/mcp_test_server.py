"""A real MCP server (the ``mcp`` SDK's MCPServer, formerly FastMCP) for the remote-MCP tests.

Run as ``python mcp_test_server.py PORT``; it serves streamable HTTP at ``/mcp`` with a tool that
works, one that raises, one that never answers and one that echoes a request header.
"""

from __future__ import annotations

import asyncio
import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("lmj-test")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def explode(code: int) -> str:
    """A tool that always fails (an integer argument keeps a random model's call short)."""
    raise RuntimeError(f"exploded with code {code}")


@server.tool()
async def hang() -> str:
    """A tool that never answers."""
    await asyncio.sleep(3600)
    return "too late"


@server.tool()
def whoami(ctx: Context) -> str:
    """Echo the X-Test-Token header the client sent (shows that request headers arrive)."""
    return (ctx.headers or {}).get("x-test-token", "no token")


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
