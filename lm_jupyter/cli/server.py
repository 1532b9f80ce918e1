"""``lmj server start|stop|status|settings`` and ``lmj daemon up|down|status``, as ``lms`` 0.4 has them.

LM Studio's daemon (``llmster``) is a process that hosts the HTTP server; here the headless
Jupyter server is both, so ``lmj daemon up`` and ``lmj server start`` start the same detached
process, recorded (pid, port, url) in ``lm_jupyter-server.json`` in Jupyter's runtime folder,
and either ``down``/``stop`` ends it. ``lmj server settings`` reads and changes the running
server's settings (``/api/v1/settings``), so none needs a browser.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from .._version import __version__
from ..api.server_settings import config_option
from ..client import discovery
from ..client.client import Client
from ..hub.store import models_dir_from_env

CORS_WARNING = (
    "Warning: CORS is on: any website you visit can send requests to this server (they still need a token)."
)


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def add_server_commands(sub: Any, client: Callable[[], Client]) -> None:
    p = sub.add_parser("server", help="Start, stop or inspect the headless server, or change its settings.")
    p.add_argument("action", choices=["start", "stop", "status", "settings"])
    _start_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda args: cmd_server(args, client))

    p = sub.add_parser("daemon", help="Run the headless server as a background service (lms daemon).")
    p.add_argument("action", choices=["up", "down", "status"])
    _start_options(p)
    p.add_argument("--json", action="store_true", help="the status as JSON on stdout")
    p.set_defaults(func=cmd_daemon)


def _start_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-p", "--port", type=int, default=discovery.DEFAULT_PORT)
    p.add_argument("--host", "--bind", dest="host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--cors", action="store_true", help="allow cross-origin requests from any website")
    p.add_argument(
        "--models-dir", help="Models folder (default: $LM_JUPYTER_MODELS_DIR or ~/.lm_jupyter/models)."
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a server setting to start with (`lmj server settings --set` changes one in the running "
        "server; `lmj server settings` lists them); repeatable",
    )


def _start(args: argparse.Namespace) -> discovery.ServerInfo:
    config = [config_option(*_pair(item)) for item in args.set]
    if args.cors:
        _say(CORS_WARNING)
        config.append("--ServerApp.allow_origin=*")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        _say(f"Warning: listening on {args.host}: other machines can reach this server (with a token).")
    models_dir = args.models_dir or str(models_dir_from_env())
    return discovery.start_headless(host=args.host, port=args.port, models_dir=models_dir, config=config)


def _pair(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise ValueError(f"--set takes NAME=VALUE, not '{item}'")
    return name.strip(), value.strip()


def _port(info: discovery.ServerInfo) -> int:
    return int(info.url.rstrip("/").rsplit(":", 1)[1])


def cmd_server(args: argparse.Namespace, client: Callable[[], Client]) -> int:
    if args.action == "settings":
        return _settings(client(), args)
    if args.action == "start":
        running = discovery.headless_server()
        if running is not None:
            _say(f"The server is already running at {running.url}")
            return 0
        info = _start(args)
        _say(f"Success! Server is now running on port {args.port}")
        _say(f"  OpenAI base URL: {info.v1}")
        # The Jupyter token runs code on this machine: never printed where logs and screen
        # recordings keep it. Clients get their own API tokens.
        _say(f"  Jupyter token:   {discovery.redact(info.token)} (in {discovery.runtime_file()})")
        _say("  API token:       create one for OpenAI clients with `lmj token create NAME`")
        _say(f"  Models folder:   {args.models_dir or models_dir_from_env()}")
        return 0
    if args.action == "stop":
        port = discovery.stop_headless()
        if port is None:
            _say("The server is not running.")
            return 1
        _say(f"Stopped the server on port {port}.")
        return 0
    running = discovery.headless_server()
    status: dict[str, Any] = {"running": running is not None}
    if running is not None:
        status["port"] = _port(running)
        status["url"] = running.url
    if args.json:
        print(json.dumps(status))
    elif running is not None:
        _say(f"The server is running on port {status['port']}.")
    else:
        _say("The server is not running.")
    return 0


def _settings(client: Client, args: argparse.Namespace) -> int:
    """List the settings, or change those ``--set`` names (values are JSON: true, 600, "auto";
    anything that is not JSON is a string)."""
    if args.set:
        changes = {}
        for item in args.set:
            name, value = _pair(item)
            try:
                changes[name] = json.loads(value)
            except ValueError:
                changes[name] = value
        result = client.change_settings(changes)
        _say(
            "Changed " + ", ".join(f"{name} to {json.dumps(value)}" for name, value in changes.items()) + "."
        )
    else:
        result = client.settings()
    if args.json:
        print(json.dumps(result["settings"], indent=2))
        return 0
    width = max(len(name) for name in result["settings"])
    for name, value in result["settings"].items():
        print(f"{name.ljust(width)}  {json.dumps(value)}")
    return 0


def cmd_daemon(args: argparse.Namespace) -> int:
    running = discovery.headless_server()
    if args.action == "up":
        info = running or _start(args)
        if args.json:
            print(json.dumps(_running_json(info)))
        elif running is not None:
            _say(f"The daemon is already running (PID: {info.pid}, port {_port(info)}).")
        else:
            _say(f"lm_jupyter daemon started (PID: {info.pid}, port {_port(info)}).")
        return 0
    if args.action == "down":
        if running is None:
            if args.json:
                print(json.dumps({"status": "not-running"}))
            else:
                _say("The daemon is not running.")
            return 0
        discovery.stop_headless()
        if args.json:
            print(json.dumps({"status": "stopped", "pid": running.pid}))
        else:
            _say(f"Stopped the daemon (PID: {running.pid}).")
        return 0
    if args.json:
        print(json.dumps(_running_json(running) if running is not None else {"status": "not-running"}))
    elif running is not None:
        _say(f"lm_jupyter v{__version__} is running (PID: {running.pid}) on port {_port(running)}.")
    else:
        _say("The daemon is not running.")
    return 0


def _running_json(info: discovery.ServerInfo) -> dict[str, Any]:
    """``lms daemon status --json``'s fields, with the port and URL this server answers on."""
    return {
        "status": "running",
        "pid": info.pid,
        "isDaemon": True,
        "version": __version__,
        "port": _port(info),
        "url": info.url,
    }
