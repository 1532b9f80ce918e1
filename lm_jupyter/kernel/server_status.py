"""``%lms server status``: which server this kernel talks to, how it was found, what it holds."""

from __future__ import annotations

from typing import Any

from ..client.client import Client, LmError

SOURCES = {
    "parent": "the Jupyter server that started this kernel (JPY_PARENT_PID)",
    "env": "the LM_JUPYTER_URL environment variable",
    "headless": "the headless server's runtime file (lmj server start)",
    "connect": "%lms connect",
}


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def server_status(client: Client, started_by_kernel: bool, as_json: bool) -> dict[str, Any] | None:
    """The status as a dict (``--json``), else printed; ``started_by_kernel``: discovery found
    no server and started a headless one for this kernel."""
    server = client.server
    status: dict[str, Any] = {
        "url": server.url,
        "source": server.source,
        "pid": server.pid,
        "started_by_kernel": started_by_kernel,
        "running": False,
    }
    try:
        models = client.models()
    except LmError as exc:
        status["error"] = str(exc)
    else:
        status["running"] = True
        status["models"] = len(models)
        status["loaded"] = sum(len(model["loaded_instances"]) for model in models)
    if as_json:
        return status
    how = SOURCES.get(server.source, server.source)
    if started_by_kernel:
        how = "started by this kernel (no other server was found)"
    pid = f" (pid {server.pid})" if server.pid else ""
    print(f"Server:   lm_jupyter at {server.url}{pid}")
    print(f"Found by: {how}")
    if status["running"]:
        print(f"Status:   running; {plural(status['models'], 'model')} downloaded, {status['loaded']} loaded")
    else:
        print(f"Status:   not reachable: {status['error']}")
    return None
