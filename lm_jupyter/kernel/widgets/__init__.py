"""Notebook widgets (anywidget): :class:`ChatView` for ``%%chat``, :class:`ModelPanel`,
:class:`LoadView` for ``%lms load`` (and a ``%%chat``'s just-in-time load), and
:class:`DataProgress` for ``llm.map``/``classify``/``embed``.

The front-end code is plain ES modules and CSS shipped in ``_static/``: no JupyterLab build.
"""

from __future__ import annotations

from ._chat_view import ChatView
from ._data_progress import DataProgress
from ._load_view import LoadView
from ._model_panel import ModelPanel

__all__ = ["ChatView", "DataProgress", "LoadView", "ModelPanel"]
