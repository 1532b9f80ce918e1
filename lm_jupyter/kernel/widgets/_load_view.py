"""LoadView: a model load in a notebook, from the estimate to the memory it really took.

Before the load it shows the estimate as the model manager's memory bars (GPU only where the
server reports GPU memory, and the total), where the model will run and whether it fits; while
it loads, a progress bar (the server's ``load_progress``, followed by ``client/load_follow.py``);
after, the instance's measured memory (the figure ``ps`` shows) beside the estimate. When the
cell is done with it, ``static()`` is the Markdown copy that replaces it, so a saved notebook
keeps the load's result after a reopen (``_markdown.py``). ``%lms load`` shows one, and so does
a ``%%chat`` whose model loads just in time (``kernel/load_display.py``).

The kernel side sets every trait; the browser only draws. All figures are ``format_size``'s.
"""

from __future__ import annotations

from typing import Any

import anywidget
import traitlets

from ...client.estimate_view import estimate_bars, verdict_text, where_text
from ...client.tables import format_size
from ._assets import joined
from ._markdown import StaticOutput, escape_html

# estimate: before the load | loading | loaded | error | interrupted
STATUSES = ("estimate", "loading", "loaded", "error", "interrupted")


class LoadView(anywidget.AnyWidget):
    """One load; :meth:`progress`, :meth:`loaded`, :meth:`failed` and :meth:`interrupted` move it."""

    _esm = joined("memory_bars.js", "load_view.js")
    _css = joined("model_panel.css", "load_view.css")

    model = traitlets.Unicode("").tag(sync=True)
    bars = traitlets.List(traitlets.Dict()).tag(sync=True)  # client/estimate_view.estimate_bars
    where = traitlets.Unicode("").tag(sync=True)
    verdict = traitlets.Unicode("").tag(sync=True)
    fits = traitlets.Bool(True).tag(sync=True)
    estimated = traitlets.Unicode("").tag(sync=True)  # the estimate's total, format_size'd
    status = traitlets.Enum(STATUSES, default_value="estimate").tag(sync=True)
    progress = traitlets.Float(0.0).tag(sync=True)  # 0..1 of the weights read
    identifier = traitlets.Unicode("").tag(sync=True)
    measured = traitlets.Unicode("").tag(sync=True)  # the loaded instance's memory, as ps shows it
    message = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(self, model: str, estimate: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(
            model=model,
            bars=estimate_bars(estimate),
            where=where_text(estimate),
            verdict=verdict_text(estimate),
            fits=bool(estimate["passesGuardrails"]),
            estimated=format_size(estimate["memory"]["totalBytes"]),
            **kwargs,
        )

    def show_progress(self, progress: float, identifier: str = "") -> None:
        with self.hold_sync():
            self.status, self.progress = "loading", max(self.progress, min(1.0, progress))
            self.identifier = identifier or self.identifier

    def loaded(self, identifier: str, memory_bytes: int | None, message: str) -> None:
        with self.hold_sync():
            self.status, self.progress, self.identifier = "loaded", 1.0, identifier
            self.measured = format_size(memory_bytes) if memory_bytes else ""
            self.message = message

    def failed(self, error: str) -> None:
        self.status, self.error = "error", error

    def interrupted(self, note: str) -> None:
        self.status, self.message = "interrupted", note

    def progress_text(self) -> str:
        """``45%``, then ``100%, warming up…`` while the loaded model decodes once."""
        percent = f"{self.progress * 100:.0f}%"
        return f"{percent}, warming up…" if self.progress >= 1 else percent

    def markdown(self) -> str:
        """The load as Markdown: its outcome, then the memory table (estimate, measured)."""
        name = f"`{self.identifier or self.model}`"
        if self.status == "loaded":
            head = f"**Loaded {name}** {self.where}. {escape_html(self.message)}"
        elif self.status == "error":
            head = f"**Load of `{self.model}` failed:** *{escape_html(self.error)}*"
        elif self.status == "interrupted":
            head = f"**Load of `{self.model}` interrupted.** *{escape_html(self.message)}*"
        else:
            head = f"**Loading `{self.model}`** {self.where}: {self.progress_text()}"
        rows = ["| Memory | Estimate | Free | Measured |", "| --- | --- | --- | --- |"]
        for bar in self.bars:
            measured = self.measured if bar["label"] == "Total" else ""
            rows.append(f"| {bar['label']} | {bar['need']} | {bar['room']} | {measured} |")
        return "\n\n".join([head.strip(), "\n".join(rows), self.verdict])

    def static(self) -> StaticOutput:
        """What the saved notebook keeps of the load."""
        text = self.markdown()
        return StaticOutput("lmj-load-static", text, text, self.status)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        return {**data, "text/plain": self.markdown()}, metadata
