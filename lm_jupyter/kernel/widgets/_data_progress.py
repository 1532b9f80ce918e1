"""DataProgress: the progress bar of ``llm.map``/``classify``/``embed`` in a notebook.

The run's calling thread sets every field at once (``set_state``), at most 10 times a second
(``data/progress.py``). There is no Stop button: the call runs synchronously in the cell, and a
kernel only reads widget messages between cells, so the notebook's interrupt is the stop (the
rows already done are returned).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import traitlets

_STATIC = Path(__file__).parent / "_static"


class DataProgress(anywidget.AnyWidget):
    _esm = _STATIC / "data_progress.js"
    _css = _STATIC / "data_progress.css"

    title = traitlets.Unicode("").tag(sync=True)
    done = traitlets.Int(0).tag(sync=True)
    total = traitlets.Int(0).tag(sync=True)
    errors = traitlets.Int(0).tag(sync=True)
    cached = traitlets.Int(0).tag(sync=True)
    rate = traitlets.Unicode("").tag(sync=True)
    eta = traitlets.Unicode("").tag(sync=True)
    status = traitlets.Unicode("running").tag(sync=True)  # running | done | interrupted | failed

    def __repr__(self) -> str:
        """The text a notebook saved without widget state shows (the display is re-sent when
        the run ends, so it is the final line)."""
        parts = [f"{self.title} {self.done}/{self.total} rows", self.rate]
        parts += [f"{self.cached} cached"] if self.cached else []
        parts += [f"{self.errors} errors"] if self.errors else []
        return " | ".join([*parts, self.status])

    def set_state(self, parts: dict[str, Any]) -> None:
        with self.hold_sync():  # one comm message per update
            for name, value in parts.items():
                setattr(self, name, value)
