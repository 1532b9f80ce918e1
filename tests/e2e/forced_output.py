"""Make a tiny random model "reason" in a kernel the test did not start itself (nbclient,
JupyterLab): an IPython startup file wraps the kernel's client so that requests to
``test/tiny-think`` carry a grammar spelling out a ``<think>`` block and an answer, and requests
to ``test/tiny-code`` one that spells out a fenced code block and then goes on with words (an
endless model: the chat is still running while a browser clicks the block's buttons).

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
    return _original_chat_stream(self, body)


Client.chat_stream = _forced_chat_stream
"""


def write_ipython_dir(root: Path) -> Path:
    """An IPYTHONDIR whose default profile installs the wrapper at kernel start."""
    startup = root / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-lm-jupyter-forced-reasoning.py").write_text(STARTUP)
    return root
