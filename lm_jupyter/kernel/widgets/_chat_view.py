"""ChatView: one ``%%chat`` exchange, live: Markdown answer, reasoning, tool-call cards, footer.

The kernel side holds the whole exchange as a list of blocks (``reasoning``, ``text``,
``tool``) in a synced trait, replaced by the chat runner at most 20 times a second (traits are
the state a reloaded page restores; per-token messages would flood the comm). The browser sends
three kinds of messages back: ``{"type": "stop"}``, ``{"type": "decide", "id", "allow"}``
(tool approval) and ``{"type": "insert", "code"}`` (a code block's "Insert as cell"). They
arrive on the shell channel, which the kernel only reads while the cell is *awaiting*, which is
why ``%%chat`` runs as an async cell (``kernel/chat_runner.py``). An insert becomes IPython's
``set_next_input`` payload of the running cell: JupyterLab and Notebook 7 add the code as a new
cell below it when it finishes.

Maths in the answer, the reasoning and the prompt is typeset live by the page's own MathJax
where lm_jupyter's JupyterLab extension lends it (JupyterLab 4 and Notebook 7: ``maths.js``
and ``labextension/src/maths.ts``); elsewhere (VS Code, Colab) it shows as TeX source.

The view lives while the cell runs. When the exchange ends, ``WidgetView.finish`` replaces the
output with ``static()``, its Markdown copy, and closes the widget: a saved notebook then shows
the chat in every front end, after a reopen too, where a widget view would show "model not
found" once its kernel is gone (``_markdown.py``).
"""

from __future__ import annotations

import threading
from typing import Any

import anywidget
import traitlets

from ._assets import STATIC, joined
from ._markdown import StaticOutput, exchange_markdown


class ChatView(anywidget.AnyWidget):
    """A streamed chat exchange; the chat runner drives its traits."""

    # the Markdown subset, then maths typesetting (the page's MathJax where lm_jupyter's Lab
    # extension lends it: JupyterLab 4, Notebook 7), then the view
    _esm = joined("chat_markdown.js", "maths.js", "chat_view.js")
    _css = STATIC / "chat_view.css"

    prompt = traitlets.Unicode("").tag(sync=True)
    model = traitlets.Unicode("").tag(sync=True)
    blocks = traitlets.List(traitlets.Dict()).tag(sync=True)
    # waiting | processing | thinking | answering | calling | approval | running | done | stopped | error
    status = traitlets.Unicode("waiting").tag(sync=True)
    # {processed, total} prompt tokens while a prompt longer than one batch is processed; else {}
    prefill = traitlets.Dict().tag(sync=True)
    stats = traitlets.Dict().tag(sync=True)
    footer = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    reasoning_mode = traitlets.Enum(("show", "hide", "collapse"), default_value="collapse").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stop_requested = threading.Event()
        self._decisions: dict[str, bool] = {}
        self._lock = threading.Lock()
        self.on_msg(self._on_frontend_msg)

    def _on_frontend_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        if content.get("type") == "stop":
            self.stop_requested.set()
        elif content.get("type") == "decide" and isinstance(content.get("id"), str):
            with self._lock:
                self._decisions[content["id"]] = bool(content.get("allow"))
        elif content.get("type") == "insert" and isinstance(content.get("code"), str):
            from IPython import get_ipython

            shell = get_ipython()
            if shell is not None:
                shell.set_next_input(content["code"].rstrip("\n"), replace=False)

    def decision(self, call_id: str) -> bool | None:
        """The user's answer for a tool call (None: not answered yet)."""
        with self._lock:
            return self._decisions.get(call_id)

    def markdown(self) -> str:
        return exchange_markdown(self.prompt, self.blocks, self.footer, self.error, self.reasoning_mode)

    def static(self) -> StaticOutput:
        """The finished exchange as rendered Markdown: what the saved notebook keeps."""
        rendered = exchange_markdown(
            self.prompt, self.blocks, self.footer, self.error, self.reasoning_mode, escape=True
        )
        return StaticOutput("lmj-chat-static", rendered, self.markdown(), self.status)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        copy = self.markdown()
        return {**data, "text/plain": copy, "text/markdown": copy}, metadata
