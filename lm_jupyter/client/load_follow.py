"""Following a model load from the listing the server keeps (``server/load_progress.py``).

``GET /api/v1/models`` lists a loading instance with ``status: "loading"`` and its
``load_progress`` (0..1); once loaded it is ``idle`` with its measured ``memory_bytes``. Polling
that listing lets a client follow any load, whoever started it: ``%lms load`` (whose own
request blocks until the load ends) and the just-in-time load a ``%%chat`` request triggers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .client import Client, LmError

POLL_SECONDS = 0.25  # 4 Hz: llama.cpp reports whole percents, a bar needs no more


@dataclass(frozen=True)
class LoadState:
    """One look at a load: ``loading`` (with ``progress``), ``loaded`` (with the instance's
    measured memory, the figure ``ps`` shows) or ``absent`` (not listed: not started yet, or
    it failed)."""

    state: str
    identifier: str = ""
    progress: float = 0.0
    memory_bytes: int | None = None


def load_state(models: list[dict[str, Any]], model: str, identifier: str | None = None) -> LoadState:
    """Where the load of ``model`` (a model or variant key, or an instance identifier) stands
    in one listing. ``identifier``: that instance only (a second copy of a loaded model)."""
    name = model.lower()
    found: LoadState | None = None
    for entry in models:
        variants = {entry["key"].lower(), *(v.lower() for v in entry.get("variants") or [])}
        for instance in entry.get("loaded_instances") or []:
            if identifier is not None and instance["id"] != identifier:
                continue
            if identifier is None and name not in variants and instance["id"].lower() != name:
                continue
            if instance["status"] == "loading":  # a loading instance is the one being followed
                return LoadState("loading", instance["id"], float(instance.get("load_progress") or 0.0))
            found = found or LoadState("loaded", instance["id"], 1.0, instance.get("memory_bytes"))
    return found or LoadState("absent")


def follow(
    client: Client, model: str, stop: threading.Event, identifier: str | None = None
) -> Iterator[LoadState]:
    """Every :data:`POLL_SECONDS`, where the load stands, until ``stop`` is set. A listing the
    server cannot give (it went away) ends the following, not the load."""
    while not stop.is_set():
        try:
            models = client.models()
        except LmError:
            return
        yield load_state(models, model, identifier)
        stop.wait(POLL_SECONDS)
