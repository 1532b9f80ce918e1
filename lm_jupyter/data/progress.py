"""Progress of a run: rows done/total, rows per second, ETA and errors, as a widget in a
notebook and as one rewritten line on stderr in a terminal."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._client import bar, clock


@dataclass
class State:
    title: str
    total: int
    done: int = 0  # computed or taken from the cache
    errors: int = 0
    cached: int = 0
    retries: int = 0  # requests sent again after a 503 (the server's queue was full)
    started: float = field(default_factory=time.monotonic)
    status: str = "running"  # running | done | interrupted | failed

    def rate(self, now: float) -> float:
        computed = self.done - self.cached
        elapsed = now - self.started
        return computed / elapsed if computed and elapsed > 0 else 0.0

    def eta(self, now: float) -> float | None:
        rate = self.rate(now)
        return (self.total - self.done) / rate if rate else None

    def parts(self, now: float) -> dict[str, Any]:
        """What both views show."""
        eta = self.eta(now)
        return {
            "title": self.title,
            "done": self.done,
            "total": self.total,
            "errors": self.errors,
            "cached": self.cached,
            "rate": f"{self.rate(now):.1f} rows/s",
            "eta": "" if eta is None or self.status != "running" else f"ETA {clock(eta)}",
            "status": self.status,
        }


def line(state: State, now: float) -> str:
    """``llm.map [███████▌   ] 120/200 rows | 4.1 rows/s | ETA 00:19 | 2 errors``."""
    parts = state.parts(now)
    ratio = parts["done"] / parts["total"] if parts["total"] else 1.0
    fields = [f"{parts['title']} {bar(ratio)} {parts['done']}/{parts['total']} rows", parts["rate"]]
    if parts["eta"]:
        fields.append(parts["eta"])
    if parts["cached"]:
        fields.append(f"{parts['cached']} cached")
    if parts["errors"]:
        fields.append(f"{parts['errors']} errors")
    if parts["status"] != "running":
        fields.append(parts["status"])
    return " | ".join(fields)


class View(Protocol):
    def show(self, state: State) -> None: ...
    def close(self, state: State) -> None: ...


class TextView:
    """A terminal's progress line, redrawn at most 10 times a second."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.last = 0.0

    def show(self, state: State) -> None:
        now = time.monotonic()
        if now - self.last >= 0.1:
            self.last = now
            self.stream.write("\r" + line(state, now))
            self.stream.flush()

    def close(self, state: State) -> None:
        self.stream.write("\r" + line(state, time.monotonic()) + "\n")
        self.stream.flush()


class WidgetView:
    """The notebook's progress bar (``widgets.DataProgress``), updated at most 10 times a second."""

    def __init__(self) -> None:
        from IPython.display import display

        from ..kernel.widgets import DataProgress

        self.widget = DataProgress()
        self.last = 0.0
        self.handle = display(self.widget, display_id=True)

    def show(self, state: State) -> None:
        now = time.monotonic()
        if now - self.last >= 0.1:
            self.last = now
            self.widget.set_state(state.parts(now))

    def close(self, state: State) -> None:
        self.widget.set_state(state.parts(time.monotonic()))
        if self.handle is not None:  # the saved text copy shows how the run ended
            self.handle.update(self.widget)


class Silent:
    def show(self, state: State) -> None:
        pass

    def close(self, state: State) -> None:
        pass


def view_for(progress: bool | str) -> View:
    """``progress``: True picks the widget in a kernel and the text line elsewhere;
    "widget", "text" or False choose."""
    if progress is False:
        return Silent()
    if progress == "text":
        return TextView()
    if progress == "widget" or (progress is True and _in_kernel()):
        return WidgetView()
    return TextView()


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None
