"""The static copies of widget outputs: Markdown that stays readable once the widget is gone.

A saved notebook keeps only what its outputs' bundles hold. A live widget's view needs its model
in a running kernel, so after a reopen JupyterLab and Notebook 7 would show "Error displaying
widget: model not found" where the output was; the finished ``%%chat`` output is therefore
replaced by this Markdown (``WidgetView.finish``), and the ModelPanel carries a twin output of
it. JupyterLab renders Markdown outputs with code highlighting and maths, and so do nbconvert and
GitHub. Model text is untrusted: its raw HTML is escaped (outside code) so an answer cannot put
live HTML or script into the user's page; only our own wrapper tags stay HTML.
"""

from __future__ import annotations

import re
from typing import Any

_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
# Maths as models write it: $$..$$ and \[..\] (display), \(..\) and $..$ (inline; a $ that
# opens is not followed by a space, one that closes follows no space and precedes no digit, so
# "$5 and $10" stays text).
_MATH = re.compile(
    r"\$\$(?P<dd>.+?)\$\$|\\\[(?P<db>.+?)\\\]|\\\((?P<ib>.+?)\\\)|\$(?P<id>[^\s$](?:[^$\n]*?[^\s$])?)\$(?!\d)",
    re.DOTALL,
)


def escape_html(text: str) -> str:
    r"""Model text made safe and faithful as Markdown: outside fenced code and code spans, ``<``
    becomes ``&lt;`` (Markdown renders it as text, not HTML) and a backslash is doubled
    (CommonMark eats one before punctuation, so ``\(`` would show as ``(``); maths keeps its
    backslashes, with ``\(..\)``/``\[..\]`` written as ``$..$``/``$$..$$`` (the delimiters
    JupyterLab, nbconvert and GitHub all typeset) and ``<`` as ``\lt``."""
    out: list[str] = []
    fence = ""
    prose: list[str] = []

    def flush() -> None:
        if prose:
            chunk = "".join(prose)
            pieces, last = [], 0
            for match in _CODE_SPAN.finditer(chunk):
                pieces.append(_prose(chunk[last : match.start()]))
                pieces.append(match.group(0))
                last = match.end()
            pieces.append(_prose(chunk[last:]))
            out.append("".join(pieces))
            prose.clear()

    for line in text.splitlines(keepends=True):
        match = _FENCE.match(line)
        if fence:
            out.append(line)
            if match and match.group(2).startswith(fence):
                fence = ""
        elif match:
            flush()
            fence = match.group(2)
            out.append(line)
        else:
            prose.append(line)
    flush()
    return "".join(out)


def _prose(text: str) -> str:
    """Text outside code: maths kept for the typesetter, the rest escaped."""
    pieces, last = [], 0
    for match in _MATH.finditer(text):
        pieces.append(_plain(text[last : match.start()]))
        display = match.group("dd") is not None or match.group("db") is not None
        maths = next(group for group in match.group("dd", "db", "ib", "id") if group is not None)
        maths = re.sub(r"<\s*", r"\\lt ", maths)
        pieces.append(f"$${maths}$$" if display else f"${maths.strip()}$")
        last = match.end()
    pieces.append(_plain(text[last:]))
    return "".join(pieces)


def _plain(text: str) -> str:
    return text.replace("\\", "\\\\").replace("<", "&lt;")


def exchange_markdown(
    prompt: str,
    blocks: list[dict[str, Any]],
    footer: str,
    error: str = "",
    reasoning_mode: str = "collapse",
    escape: bool = False,
) -> str:
    """The exchange as Markdown; ``escape`` for a rendered copy (model text may hold HTML)."""
    clean = escape_html if escape else (lambda text: text)
    parts = [f"> {line}" if line else ">" for line in clean(prompt).splitlines()] if prompt else []
    out = ["\n".join(parts)] if parts else []
    for block in blocks:
        kind = block.get("type")
        if kind == "reasoning" and block.get("text") and reasoning_mode != "hide":
            # a foldable section, open with --reasoning show (as the live view shows it)
            opened = " open" if reasoning_mode == "show" else ""
            text = clean(block["text"].strip())
            out.append(f"<details{opened}><summary>Reasoning</summary>\n\n{text}\n\n</details>")
        elif kind == "text" and block.get("text"):
            out.append(clean(block["text"]))
        elif kind == "tool":
            call = f"**Tool call** `{block.get('name', '')}({block.get('arguments', '')})`"
            status = block.get("status")
            if block.get("result") is not None:
                out.append(f"{call}\n\n```\n{block['result']}\n```")
            elif status == "denied":
                out.append(f"{call}: *not allowed*")
            else:
                out.append(call)
    if error:
        out.append(f"*{clean(error)}*")
    if footer:
        out.append(f"<sub>{clean(footer)}</sub>")
    return "\n\n".join(out)


class StaticOutput:
    """A display object for a widget's static copy: Markdown wrapped in a ``div`` whose class
    names what it copies (browsers, CSS and tests find it by that), and the plain text.
    ``style``: CSS that goes with it (JupyterLab applies a trusted output's ``<style>``)."""

    def __init__(self, css_class: str, markdown: str, plain: str, status: str = "", style: str = "") -> None:
        self.css_class, self.markdown, self.plain, self.status = css_class, markdown, plain, status
        self.style = style

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        status = f' data-status="{self.status}"' if self.status else ""
        style = f"<style>{self.style}</style>\n\n" if self.style else ""
        wrapped = f'{style}<div class="lmj-static {self.css_class}"{status}>\n\n{self.markdown}\n\n</div>'
        return {"text/markdown": wrapped, "text/plain": self.plain}


def twin_style(live: str, static: str) -> str:
    """CSS for a live widget followed by its static twin output (JupyterLab, Notebook 7).

    While the widget's view is live (its root has class ``live``), the twin is hidden; when the
    view cannot be shown (no kernel after a reopen: "model not found", or closed), the widget's
    output is hidden and the twin shows. Pure CSS: it works with no kernel and no extension.
    """
    child = ".jp-OutputArea-child"
    return (
        f"{child}:has(.{live}) + {child}:has(.{static}) {{ display: none; }}"
        f" {child}:has(+ {child} .{static}):not(:has(.{live})) {{ display: none; }}"
    )
