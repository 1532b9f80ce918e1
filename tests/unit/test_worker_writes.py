"""The worker's protocol writes: a decode step's events leave in one write and flush."""

from __future__ import annotations

import io
import threading

from lm_jupyter.engine.protocol import decode
from lm_jupyter.engine.worker.main import Worker


class CountingOut(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.flushes = 0

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.writes += 1
        return super().write(data)

    def flush(self) -> None:
        self.flushes += 1


def test_a_steps_events_go_out_in_one_write() -> None:
    out = CountingOut()
    worker = Worker(out)
    with worker.one_write():
        worker.send({"id": "a", "ev": "text", "text": "x"})
        # Another thread (the preparation thread answering a tokenize) is not held back.
        other = threading.Thread(target=worker.send, args=({"id": "t", "ev": "tokens", "tokens": []},))
        other.start()
        other.join()
        assert out.writes == 1
        worker.send({"id": "b", "ev": "text", "text": "y"})
        worker.send({"id": "a", "ev": "done", "stop_reason": "eosFound"})
    assert (out.writes, out.flushes) == (2, 2)
    lines = [decode(line) for line in out.getvalue().splitlines()]
    assert [(m["id"], m["ev"]) for m in lines] == [
        ("t", "tokens"),
        ("a", "text"),
        ("b", "text"),
        ("a", "done"),
    ]
    worker.send({"id": "c", "ev": "text", "text": "z"})  # outside a step: at once
    assert out.writes == 3
