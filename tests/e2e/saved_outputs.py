"""A saved notebook read as a style-stripping viewer reads it (GitHub's notebook preview).

Such a viewer has no kernel and no widget manager: it shows nothing for a widget view, drops
``<style>`` and ``<script>`` and every attribute that styles (``class``, ``style``), and renders
Markdown and sanitized HTML. A notebook's outputs stay readable there only if every widget
output has text beside it (its own bundle's, or the static twin output that follows it, as the
ModelPanel's) and every styled output still carries its text once its styles are gone.

``readable_text`` is what such a viewer shows of one output; ``problems`` lists the outputs of a
saved notebook that it would show as nothing. The notebook tests apply it to every notebook
they save (``test_notebook.py``, and the file JupyterLab saved in ``test_browser.py``).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import nbformat

WIDGET = "application/vnd.jupyter.widget-view+json"
_STRIPPED = re.compile(r"<(style|script)\b[^>]*>.*?</\1\s*>", re.DOTALL | re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")
_TWIN = "lmj-static"  # the class of every static copy (kernel/widgets/_markdown.StaticOutput)


def readable_text(output: dict[str, Any]) -> str:
    """The text a style-stripping viewer shows of ``output`` ("" for nothing)."""
    kind = output.get("output_type")
    if kind == "stream":
        return str(output.get("text", "")).strip()
    if kind == "error":
        return f"{output.get('ename', '')}: {output.get('evalue', '')}".strip()
    data = output.get("data", {})
    # a viewer picks the richest type it can render; a widget view is not one of them
    for mime in ("text/html", "text/markdown", "text/plain"):
        if mime in data:
            text = _STRIPPED.sub("", _joined(data[mime]))
            text = html.unescape(_TAG.sub(" ", text)) if mime != "text/plain" else text
            if text.strip() or mime == "text/plain":
                return " ".join(text.split())
    return ""


def _joined(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def problems(notebook: Any) -> list[str]:
    """Outputs a style-stripping viewer would show as nothing: a widget view with no text and
    no static twin right after it, or a styled output whose text is all style."""
    found = []
    for index, cell in enumerate(notebook.cells):
        outputs = cell.get("outputs") or []
        for position, output in enumerate(outputs):
            data = output.get("data", {})
            if readable_text(output):
                continue
            where = f"cell {index}, output {position}"
            if WIDGET in data:
                following = outputs[position + 1] if position + 1 < len(outputs) else {}
                twin = _TWIN in _joined(following.get("data", {}).get("text/markdown", ""))
                if not (twin and readable_text(following)):
                    found.append(f"{where}: a widget view with no text and no static copy after it")
            elif any("<style" in _joined(value) for value in data.values()):
                found.append(f"{where}: only style, no text")
            elif data:
                found.append(f"{where}: nothing to show ({', '.join(sorted(data))})")
    return found


def check_saved(path: Path) -> None:
    """Assert that the notebook saved at ``path`` reads in a style-stripping viewer."""
    found = problems(nbformat.read(path, as_version=4))
    assert not found, f"{path.name}: " + "; ".join(found)
