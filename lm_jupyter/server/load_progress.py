"""Each loading instance's latest load progress, for ``GET /api/v1/models``.

The worker reports how much of the weights llama.cpp has read (``load_progress`` events, which
the ModelManager passes to its listeners). ``/api/v1/chat`` relays them to the client whose
request triggered the load; keeping the latest one here lets *any* client follow *any* load by
polling the listing: a notebook's ``%lms load``, and a ``%%chat`` whose model loads just in
time, whichever request started it (``client/load_follow.py``).
"""

from __future__ import annotations

from typing import Any

LOAD_PROGRESS_SETTING = "lm_jupyter_load_progress"


class LoadProgress:
    """The latest progress (0..1) per loading instance; forgotten when its load ends."""

    def __init__(self) -> None:
        self.progress: dict[str, float] = {}

    def manager_event(self, event: str, fields: dict[str, Any]) -> None:
        """The ModelManager's observer (``ModelManager.listeners``)."""
        identifier = fields.get("identifier")
        if not isinstance(identifier, str):
            return
        if event == "load_progress":
            self.progress[identifier] = float(fields["progress"])
        elif event in ("loaded", "load_failed", "unloaded"):
            self.progress.pop(identifier, None)

    def annotate(self, models: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``load_progress`` on every instance of the listing that is still loading: 0 until
        the worker's first report; 1 while the loaded model decodes once to warm up."""
        for model in models:
            for instance in model.get("loaded_instances") or []:
                if instance.get("status") == "loading":
                    instance["load_progress"] = self.progress.get(instance["id"], 0.0)
        return models
