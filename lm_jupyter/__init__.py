"""lm_jupyter: LM Studio's local server experience inside Jupyter.

This module only declares extension points; everything heavy (llama.cpp, the server app,
the magics) is imported when Jupyter or IPython actually asks for it.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__

__all__ = ["__version__"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .server.app import LmJupyterApp

    return [{"module": "lm_jupyter", "app": LmJupyterApp}]


def load_ipython_extension(ipython: Any) -> None:
    from .kernel.llm_magics import LlmMagics
    from .kernel.magics import load_ipython_extension as load

    load(ipython)
    ipython.register_magics(LlmMagics)
