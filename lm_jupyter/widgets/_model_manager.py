"""ModelManager: downloaded models, memory estimates as you move the sliders, load and unload,
and the loaded instances with status, queue and TTL, refreshed from the server.

The server owns model state (DESIGN §1): this widget is one more client of its routes, so a
model loaded from ``lmj`` or another notebook shows up at the next refresh. Refreshing and
loading run on background threads and only set traits (reference/jupyter.md §4.3), so the
kernel stays free; button clicks arrive as custom messages whenever the kernel is idle.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..kernel.client import Client, LmError

_STATIC = Path(__file__).parent / "_static"


def model_rows(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``GET /api/v1/models`` as the table shows it (LLMs and embedding models)."""
    rows = []
    for model in models:
        capabilities = sorted(
            "tool use" if name == "trained_for_tool_use" else name
            for name, value in (model.get("capabilities") or {}).items()
            if value
        )
        rows.append(
            {
                "key": model["key"],
                "name": model.get("display_name") or model["key"],
                "type": model.get("type", "llm"),
                "architecture": model.get("architecture") or "",
                "params": model.get("params_string") or "",
                "quantization": (model.get("quantization") or {}).get("name") or "",
                "size_bytes": int(model.get("size_bytes") or 0),
                "max_context_length": int(model.get("max_context_length") or 0),
                "capabilities": capabilities,
                "variants": [
                    {
                        "key": v["key"],
                        "quantization": v.get("quantization") or "",
                        "size_bytes": v["size_bytes"],
                    }
                    for v in model.get("variant_details") or []
                ],
                "loaded": len(model.get("loaded_instances") or []),
            }
        )
    return rows


class ModelManager(anywidget.AnyWidget):
    """Manage the server's models from a notebook: ``%lms`` with no arguments shows one."""

    _esm = _STATIC / "model_manager.js"
    _css = _STATIC / "model_manager.css"

    models = traitlets.List(traitlets.Dict()).tag(sync=True)
    loaded = traitlets.List(traitlets.Dict()).tag(sync=True)
    refreshed_at = traitlets.Float(0.0).tag(sync=True)  # epoch ms: the browser counts TTLs down from it
    selected = traitlets.Unicode("").tag(sync=True)  # a model (or variant) key
    context_length = traitlets.Int(4096).tag(sync=True)
    gpu = traitlets.Float(0.0).tag(sync=True)  # 0 (off) .. 1 (max)
    estimate = traitlets.Dict().tag(sync=True)  # POST /api/v1/models/estimate for the selection
    busy = traitlets.Unicode("").tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(self, client: Client | None = None, refresh_seconds: float = 3.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client or Client.discover()
        self.refresh_seconds = refresh_seconds
        self._closed = threading.Event()
        self._estimate_lock = threading.Lock()
        self.on_msg(self._on_frontend_msg)
        self.refresh()
        self._poller: threading.Thread | None = None
        if refresh_seconds > 0:
            self._poller = threading.Thread(target=self._poll, name="lm_jupyter-models", daemon=True)
            self._poller.start()

    # -- server state --------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read downloaded and loaded models (also runs every ``refresh_seconds``)."""
        try:
            models = self.client.models()
            loaded = self.client.loaded()
        except LmError as exc:
            self.error = str(exc)
            return
        with self.hold_sync():
            self.models = model_rows(models)
            self.loaded = loaded
            self.refreshed_at = time.time() * 1000
            if self.error.startswith("Cannot reach"):
                self.error = ""

    def _poll(self) -> None:
        while not self._closed.wait(self.refresh_seconds):
            self.refresh()

    @traitlets.observe("selected", "context_length", "gpu")
    def _selection_changed(self, _change: Any) -> None:
        self.update_estimate()

    def update_estimate(self) -> None:
        """What loading the selection with the sliders' settings would take, against free memory."""
        if not self.selected:
            self.estimate = {}
            return
        with self._estimate_lock:
            try:
                estimate = self.client.estimate(
                    self.selected, context_length=self.context_length, gpu=round(self.gpu, 3)
                )
            except LmError as exc:
                self.estimate, self.error = {}, str(exc)
                return
            self.estimate, self.error = estimate, ""

    # -- actions -------------------------------------------------------------------------

    def load(self, model: str | None = None, **options: Any) -> threading.Thread:
        """Load ``model`` (default: the selection with the sliders' settings) in the background."""
        model = model or self.selected
        options = {"context_length": self.context_length, "gpu": round(self.gpu, 3), **options}
        return self._background(
            f"Loading {model}…",
            lambda: self.client.load(model, **options),
            lambda result: f"Loaded {result['instance_id']} in {result['load_time_seconds']:.1f}s.",
        )

    def unload(self, identifier: str) -> threading.Thread:
        return self._background(
            f"Unloading {identifier}…",
            lambda: self.client.unload(identifier),
            lambda _: f"Unloaded {identifier}.",
        )

    def _background(self, busy: str, action: Any, done: Any) -> threading.Thread:
        def run() -> None:
            try:
                result = action()
            except LmError as exc:
                self.message, self.error = "", str(exc)
            else:
                self.message, self.error = done(result), ""
            finally:
                self.busy = ""
                self.refresh()

        self.busy, self.error = busy, ""
        thread = threading.Thread(target=run, name="lm_jupyter-model-action", daemon=True)
        thread.start()
        return thread

    def _on_frontend_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "load" and isinstance(content.get("model"), str):
            self.load(content["model"])
        elif kind == "unload" and isinstance(content.get("id"), str):
            self.unload(content["id"])
        elif kind == "refresh":
            self.refresh()

    def close(self) -> None:
        self._closed.set()
        super().close()
