"""Loads shown in a notebook: ``%lms load``, and the just-in-time load of a ``%%chat``.

Both show a :class:`~lm_jupyter.kernel.widgets.LoadView` (the estimate's memory bars, then a
progress bar, then the measured memory) and end it with its Markdown copy, so the saved notebook
keeps the outcome. The progress comes from the server's listing (``client/load_follow.py``),
read on a thread at 4 Hz: ``%lms load``'s own request blocks until the load ends, and a
``%%chat``'s load is triggered by its chat request, so neither has a progress stream of its own.

An interrupt or an error ends the view in a state that says so (no traceback, no second copy
of the error): an interrupted ``%lms load`` leaves the server loading, which the view says.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from IPython.display import display

from ..client.client import Client, LmError
from ..client.command import CommandResult, resolve_model
from ..client.commands import load_estimate, loaded_message
from ..client.load_follow import LoadState, follow, load_state
from ..client.notebook_text import for_notebook
from ..client.options import load_options
from .widgets import LoadView

INTERRUPTED = "The server goes on loading it: `%lms ps` shows it, `%lms unload ID` unloads it."


class LoadDisplay:
    """A LoadView in the cell's output, its progress followed on a thread."""

    def __init__(self, client: Client, model: str, estimate: dict[str, Any]) -> None:
        self.client, self.model = client, model
        self.view = LoadView(model, estimate)
        self.handle = display(self.view, display_id=True)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def follow(self, identifier: str | None = None, until_loaded: bool = False) -> None:
        """Show the server's progress of this load; ``until_loaded``: also its end (a JIT load,
        whose result no request of ours returns)."""

        def run() -> None:
            for state in follow(self.client, self.model, self._stop, identifier):
                if state.state == "loading":
                    self.view.show_progress(state.progress, state.identifier)
                elif state.state == "loaded" and until_loaded:
                    self.jit_loaded(state)
                    return

        self._thread = threading.Thread(target=run, name="lm_jupyter-load-follow", daemon=True)
        self._thread.start()

    def jit_loaded(self, state: LoadState) -> None:
        message = f"Loaded just in time by this chat, as `{state.identifier}`."
        self.view.loaded(state.identifier, state.memory_bytes, message)

    def end(self, failed: bool = False) -> None:
        """Stop following and replace the view with its copy; a JIT load the chat outlived
        is read once more (it may have finished between two looks)."""
        self._stop.set()
        # An interrupt can land inside Thread.start(), leaving a thread not started (yet).
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=5)
        if self.view.status in ("estimate", "loading"):
            try:
                state = load_state(self.client.models(), self.model)
            except LmError:
                state = LoadState("absent")
            if state.state == "loaded":
                self.jit_loaded(state)
            elif failed:
                self.view.failed("The model did not load; the chat below says why.")
            else:
                self.view.interrupted(INTERRUPTED)
        if self.handle is not None:
            self.handle.update(self.view.static())
        self.view.close()


def load_in_view(client: Client, args: argparse.Namespace) -> CommandResult:
    """``%lms load`` in a kernel: the estimate, the progress, then the measured memory. An
    interrupt (Ctrl+C, the kernel's stop button) may land anywhere: it ends the view."""
    try:
        resolve_model(client, args)
        estimate = load_estimate(client, args)
        shown = LoadDisplay(client, args.model, estimate)
    except KeyboardInterrupt:
        return CommandResult(message="Interrupted before the load began.")
    try:
        return _load(shown, client, args)
    except KeyboardInterrupt:
        shown.view.interrupted(INTERRUPTED)
        shown.end()
        return CommandResult()


def _load(shown: LoadDisplay, client: Client, args: argparse.Namespace) -> CommandResult:
    shown.follow(identifier=args.identifier)
    outcome: list[Any] = []
    done = threading.Event()
    started = time.perf_counter()

    def load() -> None:
        try:
            outcome.append(client.load(args.model, **load_options(args)))
        except LmError as exc:
            outcome.append(exc)
        finally:
            done.set()

    threading.Thread(target=load, name="lm_jupyter-load", daemon=True).start()
    done.wait()
    result = outcome[0]
    if isinstance(result, LmError):
        shown.view.failed(for_notebook(" ".join(str(result).split())))
        shown.end()
        return CommandResult()
    identifier = result["instance_id"]
    rows = [row for row in client.loaded() if row["identifier"] == identifier]
    memory = rows[0]["memoryBytes"] if rows else None
    shown.view.loaded(identifier, memory, loaded_message(result, time.perf_counter() - started))
    shown.end()
    return CommandResult(loaded=identifier)


def jit_load_display(client: Client, model: str) -> LoadDisplay | None:
    """A LoadView above a ``%%chat`` whose model is not loaded (its request loads it just in
    time); None when it is loaded, or cannot be estimated (not downloaded, a remote model:
    the chat shows why)."""
    try:
        if load_state(client.models(), model).state == "loaded":
            return None
        estimate = client.estimate(model)
    except LmError:
        return None
    shown = LoadDisplay(client, model, estimate)
    shown.follow(until_loaded=True)
    return shown
