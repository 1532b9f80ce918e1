"""The widgets' front-end files (``_static/``), joined where two widgets share a part.

anywidget loads one ES module per widget, from a blob URL, so a module cannot import a sibling
file; the memory bars that the model manager and the ``%lms load`` view both draw are one file
put in front of each widget's own module (and one stylesheet likewise).
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).parent / "_static"


def joined(*names: str) -> str:
    """The named ``_static`` files, in order, as one text."""
    return "\n".join((STATIC / name).read_text(encoding="utf-8") for name in names)
