"""``lmj load``'s progress bar, drawn on the terminal while the load request runs.

``lms load`` shows one; here the load request blocks until the model is loaded, so the bar
follows the server's listing on a thread (``client/load_follow.py``, as ``%lms load``'s view
does). It is drawn only on a terminal: piped or redirected output gets the message alone.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TextIO

from ..client.client import Client
from ..client.download_view import bar
from ..client.load_follow import follow

WIDTH = 30


def bar_line(progress: float, width: int = WIDTH) -> str:
    """One frame: ``Loading model [████████▍     ]  40.0%``."""
    progress = min(max(progress, 0.0), 1.0)
    return f"Loading model {bar(progress, width)} {progress * 100:5.1f}%"


@contextlib.contextmanager
def load_bar(client: Client, model: str, identifier: str | None, stream: TextIO) -> Iterator[None]:
    """Draw the load of ``model`` on ``stream`` while the body runs; a bar once drawn ends at
    100% when the body succeeds, and stays where it was when it fails."""
    if not stream.isatty():
        yield
        return
    stop = threading.Event()
    drawn = threading.Event()

    def run() -> None:
        for state in follow(client, model, stop, identifier):
            if state.state == "loading" and not stop.is_set():
                stream.write("\r" + bar_line(state.progress))
                stream.flush()
                drawn.set()

    thread = threading.Thread(target=run, name="lmj-load-bar", daemon=True)
    thread.start()
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        stop.set()
        thread.join(timeout=5)
        if drawn.is_set():
            stream.write(("\r" + bar_line(1.0) if succeeded else "") + "\n")
            stream.flush()
