"""``python -m lm_jupyter.server``: the headless server (a Jupyter server with only lm_jupyter)."""

from .app import LmJupyterApp

LmJupyterApp.launch_instance()
