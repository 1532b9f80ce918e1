"""Worker process entry point: owns one model and runs it on a single inference thread.

The main thread only reads commands from stdin (so a ``cancel`` arrives while a generation
runs); the inference thread is the only thread that ever touches the llama context. The
protocol goes out on a private duplicate of stdout, and fd 1 is pointed at stderr, so
anything native code prints can never corrupt a protocol line.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import traceback
from typing import Any, BinaryIO

from .protocol import decode, encode


class Worker:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.write_lock = threading.Lock()
        self.jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.cancelled: set[str] = set()
        self.cancel_lock = threading.Lock()
        self.backend: Any = None

    def send(self, message: dict[str, Any]) -> None:
        with self.write_lock:
            self.out.write(encode(message))
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
            else:
                self.jobs.put(command)
        self.jobs.put(None)  # the server went away: finish and exit

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
                    self.send({"id": request_id, "ev": "done", "stop_reason": "userStopped", "skipped": True})
                    self.forget(request_id)
                else:
                    self.run_one(command)
            if self.backend is not None and self.backend.busy:
                self.backend.step()

    def forget(self, request_id: str) -> None:
        with self.cancel_lock:
            self.cancelled.discard(request_id)

    def run_one(self, command: dict[str, Any]) -> None:
        from .backends.llama_cpp import RequestError

        request_id = command.get("id", "")

        def emit(event: dict[str, Any]) -> None:
            self.send({"id": request_id, **event})
            if event["ev"] in ("done", "error"):
                self.forget(request_id)

        try:
            if command["op"] == "load":
                self.load(command, emit)
            elif command["op"] == "generate":
                cancelled = lambda: self.is_cancelled(request_id)  # noqa: E731
                self.backend.submit(request_id, command["params"], emit, cancelled)
            elif command["op"] == "embed":
                emit({"ev": "embeddings", **self.backend.embed(command["input"])})
            else:
                emit({"ev": "error", "status": 400, "message": f"unknown op {command['op']}"})
        except RequestError as exc:
            emit({"ev": "error", "status": 400, "code": exc.code, "param": exc.param, "message": str(exc)})
        except Exception as exc:  # report, never die: the next request must still work
            traceback.print_exc(file=sys.stderr)
            emit({"ev": "error", "status": 500, "message": f"{type(exc).__name__}: {exc}"})

    def load(self, command: dict[str, Any], emit: Any) -> None:
        from .backends.llama_cpp import LlamaBackend
        from .backends.llama_log import BufferSizes
        from .hardware import process_rss

        # Resident memory just before the model and after it has decoded once: the difference
        # is what this model costs, which the memory estimate is checked against.
        rss_before = process_rss()
        with BufferSizes() as buffers:
            self.backend = LlamaBackend(
                command["path"],
                context_length=command["context_length"],
                embedding=command["embedding"],
                threads=command.get("threads", 0),
                gpu_layers=command.get("gpu_layers", 0),
                flash_attention=command.get("flash_attention", False),
                parallel=command.get("parallel", 1),
            )
        try:
            model_size = self.backend.warm_up()
        except Exception:  # measuring must never cost a load; a real fault shows on first use
            traceback.print_exc(file=sys.stderr)
            model_size = 0
        memory = {
            "rss_before": rss_before,
            "rss_after": process_rss(),
            "model_size": model_size,
            "buffers": buffers.sizes,
        }
        emit({"ev": "loaded", **self.backend.info(), "memory": memory})


def main() -> None:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    worker = Worker(out)
    inference = threading.Thread(target=worker.run_jobs, name="inference")
    inference.start()
    worker.read_commands(sys.stdin.buffer)
    inference.join()


if __name__ == "__main__":
    main()
