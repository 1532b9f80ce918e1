"""Notebook widgets (anywidget): :class:`ChatView` for ``%%chat`` and :class:`ModelManager`.

The front-end code is plain ES modules and CSS shipped in ``_static/``: no JupyterLab build.
"""

from __future__ import annotations

from ._chat_view import ChatView
from ._model_manager import ModelManager

__all__ = ["ChatView", "ModelManager"]
