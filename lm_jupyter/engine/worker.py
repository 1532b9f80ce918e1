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
        while (command := self.jobs.get()) is not None:
            request_id = command.get("id", "")
            if self.is_cancelled(request_id):
                self.send({"id": request_id, "ev": "done", "stop_reason": "userStopped", "skipped": True})
            else:
                self.run_one(command)
            with self.cancel_lock:
                self.cancelled.discard(request_id)

    def run_one(self, command: dict[str, Any]) -> None:
        from .backends.llama_cpp import PromptTooLong

        request_id = command.get("id", "")

        def emit(event: dict[str, Any]) -> None:
            self.send({"id": request_id, **event})

        try:
            if command["op"] == "load":
                self.load(command, emit)
            elif command["op"] == "generate":
                self.backend.generate(command["params"], emit, lambda: self.is_cancelled(request_id))
            elif command["op"] == "embed":
                emit({"ev": "embeddings", **self.backend.embed(command["input"])})
            else:
                emit({"ev": "error", "status": 400, "message": f"unknown op {command['op']}"})
        except PromptTooLong as exc:
            emit({"ev": "error", "status": 400, "code": "context_length_exceeded", "message": str(exc)})
        except Exception as exc:  # report, never die: the next request must still work
            traceback.print_exc(file=sys.stderr)
            emit({"ev": "error", "status": 500, "message": f"{type(exc).__name__}: {exc}"})

    def load(self, command: dict[str, Any], emit: Any) -> None:
        from .backends.llama_cpp import LlamaBackend

        self.backend = LlamaBackend(
            command["path"],
            context_length=command["context_length"],
            embedding=command["embedding"],
            threads=command.get("threads", 0),
            gpu_layers=command.get("gpu_layers", 0),
            flash_attention=command.get("flash_attention", False),
        )
        emit({"ev": "loaded", **self.backend.info()})


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
