"""The worker process's main loop: owns one model (a ``Backend``) and runs it on a single
inference thread.

Three threads. The main thread only reads commands from stdin (so a ``cancel`` arrives while
a generation runs). The preparation thread makes each ``generate`` ready: tokenizing the
prompt and compiling its output constraint, the parts whose cost grows with what a client
sends, checking for cancellation between steps; it also answers ``tokenize`` and
``detokenize``. It uses the model (read-only) and never the context. The inference thread is
the only thread that ever touches the model's running state (a llama context, an MLX cache):
it loads, embeds, ranks and steps the batch, so a huge prompt being tokenized never stalls
the requests already generating. The protocol goes out on a private duplicate of stdout, and
fd 1 is pointed at stderr, so anything native code prints can never corrupt a protocol line.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from ..hardware import process_rss
from ..protocol import decode, encode
from .backend import Backend, Cancelled, RequestError, backend_opener

_TOKENIZE_OPTIONS = ("add_special", "parse_special", "with_pieces")
# Commands the preparation thread runs: they use the model, never the context, and their cost
# grows with what a client sends, so generating requests never wait for them.
_PREPARATION_OPS = ("generate", "tokenize", "detokenize")


class Worker:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.write_lock = threading.Lock()
        self.jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()  # for the inference thread
        self.to_prepare: queue.Queue[dict[str, Any] | None] = queue.Queue()  # generate commands
        self.cancelled: set[str] = set()
        self.cancel_lock = threading.Lock()
        self.backend: Backend | None = None
        self._local = threading.local()  # ``held``: the lines a thread's ``one_write`` collects

    def send(self, message: dict[str, Any]) -> None:
        held = getattr(self._local, "held", None)
        if held is not None:
            held.append(encode(message))
            return
        with self.write_lock:
            self.out.write(encode(message))
            self.out.flush()

    @contextlib.contextmanager
    def one_write(self) -> Iterator[None]:
        """What this thread sends inside goes out in one write and flush at the end: a decode
        step's tokens (and endings) of every sequence wake the server once, not once per token."""
        self._local.held = held = []
        try:
            yield
        finally:
            self._local.held = None
            if held:
                with self.write_lock:
                    self.out.write(b"".join(held))
                    self.out.flush()

    def is_cancelled(self, request_id: str) -> bool:
        with self.cancel_lock:
            return request_id in self.cancelled

    def read_commands(self, source: BinaryIO) -> None:
        for line in source:
            if not line.strip():
                continue
            command = decode(line)
            if command["op"] == "cancel":
                with self.cancel_lock:
                    self.cancelled.add(command["id"])
            elif command["op"] in _PREPARATION_OPS:
                self.to_prepare.put(command)
            else:
                self.jobs.put(command)
        self.to_prepare.put(None)  # the server went away: finish and exit (after what is queued)

    def prepare_jobs(self) -> None:
        """The preparation thread: turn each ``generate`` into a ``submit`` for the inference thread."""
        while (command := self.to_prepare.get()) is not None:
            if command["op"] != "generate":  # tokenizing: the model only, never the context
                self.run_one(command)
                continue
            request_id = command.get("id", "")
            cancelled = functools.partial(self.is_cancelled, request_id)
            with self._reporting(request_id):
                try:
                    if cancelled() or self.backend is None:
                        raise Cancelled
                    prepared = self.backend.prepare(command["params"], cancelled)
                except Cancelled:
                    self._skipped(request_id)
                    continue
                self.jobs.put({"op": "submit", "id": request_id, "prepared": prepared})
        self.jobs.put(None)

    def run_jobs(self) -> None:
        """Take commands as they come and, between them, step the scheduler: requests that
        arrive while others generate join the running batch."""
        while True:
            busy = self.backend is not None and self.backend.busy
            commands: list[dict[str, Any] | None] = []
            try:
                commands.append(self.jobs.get(block=not busy))
                while True:  # everything that has arrived joins the next step together
                    commands.append(self.jobs.get_nowait())
            except queue.Empty:
                pass
            for command in commands:
                if command is None:
                    return
                request_id = command.get("id", "")
                if self.is_cancelled(request_id):
                    if "prepared" in command:
                        command["prepared"].discard()
                    self._skipped(request_id)
                else:
                    self.run_one(command)
            if self.backend is not None and self.backend.busy:
                with self.one_write():
                    self.backend.step()

    def forget(self, request_id: str) -> None:
        with self.cancel_lock:
            self.cancelled.discard(request_id)

    def _skipped(self, request_id: str) -> None:
        """A request cancelled before it started: ``done`` with nothing generated."""
        self.send({"id": request_id, "ev": "done", "stop_reason": "userStopped", "skipped": True})
        self.forget(request_id)

    def _emitter(self, request_id: str) -> Callable[[dict[str, Any]], None]:
        def emit(event: dict[str, Any]) -> None:
            self.send({"id": request_id, **event})
            if event["ev"] in ("done", "error"):
                self.forget(request_id)

        return emit

    @contextlib.contextmanager
    def _reporting(self, request_id: str) -> Iterator[None]:
        """A failure becomes the request's ``error`` event (400 for the client's mistakes);
        the worker never dies of one: the next request must still work."""
        emit = self._emitter(request_id)
        try:
            yield
        except RequestError as exc:
            emit({"ev": "error", "status": 400, "code": exc.code, "param": exc.param, "message": str(exc)})
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            emit({"ev": "error", "status": 500, "message": f"{type(exc).__name__}: {exc}"})

    def run_one(self, command: dict[str, Any]) -> None:
        request_id = command.get("id", "")
        emit = self._emitter(request_id)
        with self._reporting(request_id):
            if command["op"] == "load":
                self.load(command, emit)
            elif command["op"] == "submit":
                cancelled = lambda: self.is_cancelled(request_id)  # noqa: E731
                self.backend.submit(request_id, command["prepared"], emit, cancelled)
            elif command["op"] == "embed":
                emit({"ev": "embeddings", **self.backend.embed(command["input"])})
            elif command["op"] == "rank":
                emit({"ev": "ranked", **self.backend.rank(command["query"], command["documents"])})
            elif command["op"] == "tokenize":
                options = {key: bool(command.get(key)) for key in _TOKENIZE_OPTIONS}
                result = self.backend.tokens(command.get("text", ""), parts=command.get("parts"), **options)
                emit({"ev": "tokens", **result})
            elif command["op"] == "detokenize":
                emit({"ev": "detokenized", "content": self.backend.detokenize(command["tokens"])})
            else:
                emit({"ev": "error", "status": 400, "message": f"unknown op {command['op']}"})

    def load(self, command: dict[str, Any], emit: Any) -> None:
        # Resident memory just before the model and after it has decoded once: the difference
        # is what this model costs, which the memory estimate is checked against.
        open_backend = backend_opener(command.get("format", "gguf"))
        rss_before = process_rss()
        reported = [-1.0]

        def progress(fraction: float) -> None:  # whole percents only: llama.cpp calls per tensor
            if fraction >= 1 or fraction - reported[0] >= 0.01:
                reported[0] = fraction
                emit({"ev": "load_progress", "progress": round(min(fraction, 1.0), 3)})

        self.backend, buffers = open_backend(command, progress)
        try:
            model_size = self.backend.warm_up()
        except Exception:  # measuring must never cost a load; a real fault shows on first use
            traceback.print_exc(file=sys.stderr)
            model_size = 0
        memory = {
            "rss_before": rss_before,
            "rss_after": process_rss(),
            "model_size": model_size,
            "buffers": buffers,
        }
        info = self.backend.info()
        if not self.backend.embedding:
            info["max_token_bytes"] = self.backend.max_token_bytes()
        emit({"ev": "loaded", **info, "memory": memory})


def main() -> None:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    worker = Worker(out)
    inference = threading.Thread(target=worker.run_jobs, name="inference")
    preparation = threading.Thread(target=worker.prepare_jobs, name="preparation", daemon=True)
    inference.start()
    preparation.start()
    worker.read_commands(sys.stdin.buffer)
    inference.join()
    # Every answer is out; leave without running native destructors at interpreter exit (MLX's
    # stream threads abort the process there, which would read as a crash). The OS frees the rest.
    out.flush()
    sys.stderr.flush()
    os._exit(0)
