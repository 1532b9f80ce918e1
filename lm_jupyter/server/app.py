"""The lm_jupyter Jupyter server extension.

Runs inside the user's Jupyter server (enabled on install), or alone as the headless server
that ``lmj server start`` launches (``load_other_extensions = False``: no UI, only our
routes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Integer, Unicode, default

from .._version import __version__
from ..engine.manager import ModelManager
from ..hub.store import models_dir_from_env
from . import handlers


class LmJupyterApp(ExtensionApp):
    name = "lm_jupyter"
    description = "LM Studio-compatible local LLM server inside Jupyter"
    version = __version__
    load_other_extensions = False
    open_browser = False

    models_dir = Unicode(
        help="Folder of models in LM Studio's publisher/repo/file.gguf layout "
        "(default: $LM_JUPYTER_MODELS_DIR or ~/.lm_jupyter/models).",
        config=True,
    )
    default_context_length = Integer(
        4096, help="Context length for models loaded without an explicit one.", config=True
    )
    jit_ttl = Float(
        3600,
        help="Idle seconds before a just-in-time loaded model unloads (a request's `ttl` overrides).",
        config=True,
    )
    auto_evict = Bool(
        True,
        help="Before a JIT load, unload earlier JIT-loaded instances (LM Studio's auto-evict).",
        config=True,
    )
    max_jit_instances = Integer(
        1, help="With auto_evict, how many JIT-loaded instances may stay loaded at once.", config=True
    )
    threads = Integer(
        0,
        help="CPU threads per model for decoding and prompt processing (0: every core this "
        "process may use; fewer leaves room for other work on small machines).",
        config=True,
    )

    @default("models_dir")
    def _models_dir_default(self) -> str:
        return str(models_dir_from_env())

    def initialize_settings(self) -> None:
        self.manager = ModelManager(
            Path(self.models_dir).expanduser(),
            default_context_length=self.default_context_length,
            threads=self.threads,
            jit_ttl=self.jit_ttl,
            auto_evict=self.auto_evict,
            max_jit_instances=self.max_jit_instances,
        )
        self.log.info("lm_jupyter %s serving models from %s", __version__, self.models_dir)

    def initialize_handlers(self) -> None:
        kwargs: dict[str, Any] = {"manager": self.manager}
        self.handlers.extend((pattern, handler, kwargs) for pattern, handler in handlers.ROUTES)

    async def stop_extension(self) -> None:
        await self.manager.shutdown()
