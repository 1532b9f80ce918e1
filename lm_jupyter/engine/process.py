"""The server's side of a worker process: start it, talk to it, notice when it dies.

Everything here is asyncio and never blocks the Jupyter server's event loop: commands are
written to the worker's stdin, and one reader task routes each event line to the queue of
the request it belongs to.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
from collections.abc import Callable
from typing import Any

from ..api.errors import APIError
from .protocol import decode, encode
from .worker_death import describe_exit

log = logging.getLogger("lm_jupyter")
_ids = itertools.count(1)


class WorkerDied(APIError):
    def __init__(self, label: str, returncode: int | None, estimate_bytes: int | None = None) -> None:
        self.returncode = returncode
        self.cause = describe_exit(label, returncode, estimate_bytes)
        super().__init__(
            f"{self.cause} The model has been unloaded.",
            status=500,
            type="server_error",
            code="model_crashed",
        )


class WorkerProcess:
    def __init__(self, label: str, on_exit: Callable[[WorkerProcess], None]) -> None:
        self.label = label
        self.on_exit = on_exit
        self.proc: asyncio.subprocess.Process | None = None
        self.pending: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.reader: asyncio.Task[None] | None = None
        self.dead: WorkerDied | None = None
        # What the guardrail estimated this load needs, so a SIGKILL can be put in proportion.
        self.estimate_bytes: int | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lm_jupyter.engine.worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,
        )
        self.reader = asyncio.create_task(self._read_events())

    async def request(self, op: str, **fields: Any) -> tuple[str, asyncio.Queue[dict[str, Any]]]:
        """Send a command; events for it arrive on the returned queue."""
        if self.dead:
            raise self.dead
        request_id = f"r{next(_ids)}"
        events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pending[request_id] = events
        await self._send({"op": op, "id": request_id, **fields})
        return request_id, events

    async def cancel(self, request_id: str) -> None:
        if request_id in self.pending and not self.dead:
            await self._send({"op": "cancel", "id": request_id})

    def finished(self, request_id: str) -> None:
        self.pending.pop(request_id, None)

    async def _send(self, message: dict[str, Any]) -> None:
        assert self.proc and self.proc.stdin
        try:
            self.proc.stdin.write(encode(message))
            await self.proc.stdin.drain()
        except (ConnectionError, BrokenPipeError):
            await self._wait_dead()
            assert self.dead
            raise self.dead from None

    async def _read_events(self) -> None:
        assert self.proc and self.proc.stdout
        while line := await self.proc.stdout.readline():
            event = decode(line)
            events = self.pending.get(event.get("id", ""))
            if events is not None:
                events.put_nowait(event)
        await self._wait_dead()

    async def _wait_dead(self) -> None:
        if self.dead:
            return
        assert self.proc
        returncode = await self.proc.wait()
        self.dead = WorkerDied(self.label, returncode, self.estimate_bytes)
        if returncode != 0:
            log.error("Worker for %s (pid %s) died: %s", self.label, self.proc.pid, self.dead.message)
        for events in self.pending.values():
            events.put_nowait({"ev": "error", "died": True})
        self.on_exit(self)

    async def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to finish (stdin EOF), then make sure it is gone."""
        if not self.proc or self.proc.returncode is not None:
            return
        assert self.proc.stdin
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self.reader:
            await self.reader
