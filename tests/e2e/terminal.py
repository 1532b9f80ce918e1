"""Real ``lmj`` processes for e2e tests: a log stream captured in the background, and a
terminal (tmux, on a private socket) to type into and read from."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

LMJ = [sys.executable, "-m", "lm_jupyter.cli.main"]


def wait_until(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class LogCapture:
    """``lmj log stream ARGS`` running in the background; ``lines`` are its stdout lines."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [*LMJ, "log", "stream", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True).start()
        # The banner comes once the server has subscribed us: every later event will arrive.
        wait_until(
            lambda: any("Streaming logs from lm_jupyter" in line for line in self.stderr) or self.proc.poll(),
            what="the log stream to connect",
        )
        assert self.proc.poll() is None, "".join(self.stderr)

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.lines)]

    def data(self) -> list[dict[str, Any]]:
        return [event["data"] for event in self.events()]

    def stop(self) -> int:
        """Ctrl+C, as a user stops it. The deadline is generous: on a loaded machine Python's
        interpreter shutdown alone can take seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(60)


class Terminal:
    """A tmux session on its own socket running one command in a 200x50 terminal."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.socket = f"lmj-test-{uuid.uuid4().hex[:8]}"
        self.env = env
        # bash reports how the command exited. (tmux's own pane_dead_status can lag: its server
        # reaps panes lazily on a busy machine.) bash survives the Ctrl+C the command handles,
        # because it exits on SIGINT only when its foreground job died of it.
        script = f'{shlex.join(command)}; echo "[exited $?]"; sleep 600'
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", "main", "-x", "200", "-y", "50")
        self.tmux("respawn-pane", "-k", "-t", "main", shlex.join(["bash", "--norc", "-c", script]))

    def exit_status(self) -> int | None:
        """The command's exit status once it has exited, else None."""
        found = re.search(r"^\[exited (\d+)\]$", self.screen(), re.MULTILINE)
        return int(found.group(1)) if found else None

    def wait_exit(self, timeout: float = 30) -> int:
        """The command's exit status, once it exits."""
        wait_until(lambda: self.exit_status() is not None, timeout, "the command to exit")
        status = self.exit_status()
        assert status is not None
        return status

    def tmux(self, *args: str) -> str:
        # -u: UTF-8 whatever the locale says (progress bars draw block glyphs).
        result = subprocess.run(
            ["tmux", "-u", "-L", self.socket, *args], env=self.env, capture_output=True, text=True, timeout=10
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "main", *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "main", "-l", text)
        self.send("Enter")

    def screen(self, escapes: bool = False) -> str:
        """The pane's text, wrapped lines joined (``-e``: with colour escapes)."""
        return self.tmux("capture-pane", "-p", "-J", "-t", "main", "-S", "-", *(["-e"] if escapes else []))

    def wait_for(self, text: str, timeout: float = 30, escapes: bool = False) -> str:
        def shows() -> str | None:
            screen = self.screen(escapes)
            return screen if text in screen else None

        return str(wait_until(shows, timeout, repr(text)))

    def close(self) -> None:
        subprocess.run(
            ["tmux", "-L", self.socket, "kill-server"], env=self.env, capture_output=True, timeout=10
        )
