"""Find the lm_jupyter server a kernel or terminal should talk to, or start one.

Order (DESIGN §1): the Jupyter server that launched this kernel (``JPY_PARENT_PID`` matched
against Jupyter's runtime files), then ``LM_JUPYTER_URL``/``LM_JUPYTER_TOKEN``, then a
headless server already started by ``lmj server start``, then a new headless server.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from jupyter_core.paths import jupyter_runtime_dir

DEFAULT_PORT = 1234
RUNTIME_FILE = "lm_jupyter-server.json"


@dataclass(frozen=True)
class ServerInfo:
    url: str  # base URL ending in "/", e.g. http://127.0.0.1:8888/
    token: str
    pid: int | None = None
    source: str = "env"

    @property
    def v1(self) -> str:
        return self.url + "v1"


def runtime_file() -> Path:
    return Path(jupyter_runtime_dir()) / RUNTIME_FILE


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def parent_server() -> ServerInfo | None:
    """The Jupyter server whose kernel we are, if it runs the lm_jupyter extension."""
    parent = os.environ.get("JPY_PARENT_PID")
    if not parent:
        return None
    from jupyter_server.serverapp import list_running_servers

    for info in list_running_servers():
        if str(info.get("pid")) == parent:
            url = info["url"]
            if not _serves_lm_jupyter(url, info.get("token", "")):
                return None
            return ServerInfo(
                url if url.endswith("/") else url + "/", info.get("token", ""), info["pid"], "parent"
            )
    return None


def _serves_lm_jupyter(url: str, token: str) -> bool:
    """A Jupyter server may run without our extension enabled; then look elsewhere."""
    base = url if url.endswith("/") else url + "/"
    try:
        response = httpx.get(base + "api/v1/models", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def env_server() -> ServerInfo | None:
    url = os.environ.get("LM_JUPYTER_URL")
    if not url:
        return None
    return ServerInfo(url if url.endswith("/") else url + "/", os.environ.get("LM_JUPYTER_TOKEN", ""))


def remote_server(host: str | None, port: int | None) -> ServerInfo | None:
    """The server ``--host``/``--port`` name (``lms``'s remote options), with ``LM_JUPYTER_TOKEN``."""
    if host is None and port is None:
        return None
    base = (host or "127.0.0.1").rstrip("/")
    if not base.startswith(("http://", "https://")):
        if ":" in base and not base.startswith("["):  # an IPv6 address
            base = f"[{base}]"
        base = f"http://{base}"
    url = f"{base}:{port or DEFAULT_PORT}/"
    token = os.environ.get("LM_JUPYTER_TOKEN", "")
    if not token:  # the headless server `lmj server start` recorded, named by its port
        recorded = headless_server()
        if recorded is not None and _same_server(recorded.url, url):
            token = recorded.token
    return ServerInfo(url, token, None, "remote")


def _same_server(recorded: str, named: str) -> bool:
    """Whether two base URLs reach the same server (loopback names are one host)."""
    loopback = {"127.0.0.1", "localhost", "[::1]", "::1"}
    a, b = httpx.URL(recorded), httpx.URL(named)
    hosts_match = a.host == b.host or {a.host, b.host} <= loopback
    return hosts_match and a.port == b.port and a.scheme == b.scheme


def headless_server() -> ServerInfo | None:
    """The server ``lmj server start`` left running, if its process is still alive."""
    path = runtime_file()
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not _pid_alive(int(info["pid"])):
        path.unlink(missing_ok=True)
        return None
    return ServerInfo(info["url"], info["token"], int(info["pid"]), "headless")


def find_server() -> ServerInfo | None:
    for finder in (parent_server, env_server, headless_server):
        found = finder()
        if found is not None:
            return found
    return None


def free_port(host: str, preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind((host, preferred))
        except OSError:
            sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start_headless(
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    models_dir: str | None = None,
    config: Sequence[str] = (),
    timeout: float = 60,
) -> ServerInfo:
    """Start a Jupyter server running only lm_jupyter, detached, and wait until it answers."""
    token = secrets.token_hex(24)
    log_dir = private_runtime_dir()
    argv = [
        sys.executable,
        "-m",
        "lm_jupyter.server",
        f"--ServerApp.ip={host}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.open_browser=False",
        "--ServerApp.allow_root=True",
    ]
    if models_dir:
        argv.append(f"--LmJupyterApp.models_dir={models_dir}")
    argv += config  # further traitlets options, e.g. --ModelManager.threads=4
    log_file = os.fdopen(_open_private(log_dir / "lm_jupyter-server.log", os.O_APPEND), "ab")
    # The token goes in the environment (Jupyter's IdentityProvider reads JUPYTER_TOKEN), which
    # only this user can read; a command-line argument would show in every user's `ps`.
    env = {**os.environ, "JUPYTER_TOKEN": token}
    env.pop("JUPYTER_TOKEN_FILE", None)
    proc = subprocess.Popen(
        argv,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    log_file.close()
    info = ServerInfo(f"http://{host}:{port}/", token, proc.pid, "headless")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"The lm_jupyter server exited during startup (status {proc.returncode}); "
                f"see {log_dir / 'lm_jupyter-server.log'}. Is port {port} in use?"
            )
        try:
            response = httpx.get(
                info.url + "api/status", headers={"Authorization": f"Bearer {token}"}, timeout=2
            )
            if response.status_code == 200:
                record = {"url": info.url, "token": token, "pid": proc.pid, "port": port}
                _write_private(runtime_file(), json.dumps(record))
                return info
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"The lm_jupyter server did not answer on {info.url} within {timeout:.0f}s.")


def private_runtime_dir() -> Path:
    """Jupyter's runtime folder, made as Jupyter makes it (0700): it holds tokens."""
    folder = Path(jupyter_runtime_dir())
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
        folder.chmod(0o700)  # mkdir's mode is masked by the umask
    return folder


def _open_private(path: Path, flags: int) -> int:
    """Open for writing, created 0600 (never readable by others, not even for an instant)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | flags, 0o600)
    os.fchmod(fd, 0o600)  # a file made earlier by an older version may be 0644
    return fd


def _write_private(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".part")
    with os.fdopen(_open_private(partial, os.O_TRUNC), "w") as handle:
        handle.write(text)
    partial.replace(path)


def redact(token: str) -> str:
    """A token as it may be printed: enough to tell two apart, too little to use."""
    return token[:4] + "…" if len(token) > 8 else "…"


def stop_process(pid: int, timeout: float = 15) -> None:
    """SIGTERM, wait (reaping it if it is our child), then SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not _pid_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def stop_headless(timeout: float = 15) -> int | None:
    """Stop the server ``lmj server start`` started; returns its port, or None if none ran."""
    info = headless_server()
    path = runtime_file()
    if info is None or info.pid is None:
        return None
    data = json.loads(path.read_text())
    stop_process(info.pid, timeout)
    path.unlink(missing_ok=True)
    return int(data.get("port", 0)) or None
