"""Make a tiny random model "reason" in a kernel the test did not start itself (nbclient,
JupyterLab): an IPython startup file wraps the kernel's client so that requests to
``test/tiny-think`` carry a grammar spelling out a ``<think>`` block and an answer, and requests
to ``test/tiny-code`` one that spells out a fenced code block and then goes on with words (an
endless model: the chat is still running while a browser clicks the block's buttons), and
requests to ``test/tiny-maths`` one that spells out reasoning and an answer with inline and
display maths, and then goes on with words (the live widget is checked while it streams).

A random-weight model cannot be asked to think; forcing its output with a grammar (a request
field the server supports) is the only deterministic way to stream real reasoning deltas
through the real server, SSE stream, ChatView and Markdown copy.
"""

from __future__ import annotations

from pathlib import Path

THINK_MODEL = "test/tiny-think"
REASONING = "Compare the powers."
ANSWER = "Yes: 1024 > 1000."
CODE_MODEL = "test/tiny-code"
CODE = "total = 1 + 2  # three"
CODE_TEXT = f"Here:\n```python\n{CODE}\n```\n"
MATHS_MODEL = "test/tiny-maths"
MATHS_REASONING = r"Sum $\sum_{k=1}^{n} k$ first."
# inline ($..$, \(..\), one with `*` that is not emphasis), display ($$..$$, \[..\], one with
# `<` that is not HTML), and `$x$` in a code span, which is not maths
MATHS_ANSWER = (
    "Inline $e^{i\\pi} + 1 = 0$ and \\(a*b*c\\), code `$x$`, then\n"
    "$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$\nand \\[\\sqrt{2} < 2\\] done. "
)

STARTUP = f"""
import json as _json

from lm_jupyter.client.client import Client

_original_chat_stream = Client.chat_stream


def _forced_chat_stream(self, body):
    if body.get("model") == {THINK_MODEL!r} and "grammar" not in body:
        grammar = "root ::= " + {("<think>" + REASONING + "</think>" + ANSWER)!r}.join('""')
        body = {{**body, "grammar": grammar}}
    if body.get("model") == {CODE_MODEL!r} and "grammar" not in body:
        grammar = "root ::= " + _json.dumps({CODE_TEXT!r}) + " [a-z ]*"
        body = {{**body, "grammar": grammar}}
    if body.get("model") == {MATHS_MODEL!r} and "grammar" not in body:
        forced = "<think>" + {MATHS_REASONING!r} + "</think>" + {MATHS_ANSWER!r}
        body = {{**body, "grammar": "root ::= " + _json.dumps(forced) + " [a-z ]*"}}
    return _original_chat_stream(self, body)


Client.chat_stream = _forced_chat_stream
"""


def write_ipython_dir(root: Path) -> Path:
    """An IPYTHONDIR whose default profile installs the wrapper at kernel start."""
    startup = root / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-lm-jupyter-forced-reasoning.py").write_text(STARTUP)
    return root
