"""The lm_jupyter Jupyter server extension.

Runs inside the user's Jupyter server (enabled on install), or alone as the headless server
that ``lmj server start`` launches (``load_other_extensions = False``: no UI, only our
routes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Enum, Float, Integer, Unicode, default

from .._version import __version__
from ..engine.hardware import parse_size
from ..engine.manager import ModelManager
from ..hub.store import models_dir_from_env
from . import (
    admin_handlers,
    download_handlers,
    estimate_handlers,
    handlers,
    log_handlers,
    metrics,
    responses_handlers,
)
from .downloads import DOWNLOADS_SETTING, Downloads
from .log_bus import LOG_BUS_SETTING, LogBus
from .presets import PRESETS_SETTING, PresetStore, presets_dir_from_env
from .response_store import RESPONSES_SETTING, ResponseStore, default_responses_db
from .tokens import TOKENS_SETTING, TokenStore, default_tokens_file

# Every route the extension serves (tests enumerate this list to check that each one is authenticated).
ROUTES = [
    *handlers.ROUTES,
    *admin_handlers.ROUTES,
    *estimate_handlers.ROUTES,
    *download_handlers.ROUTES,
    *log_handlers.ROUTES,
    *responses_handlers.ROUTES,
]


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
    reasoning_format = Unicode(
        "auto",
        help="Where model reasoning goes in chat responses: 'reasoning_content' (DeepSeek style), "
        "'reasoning' (gpt-oss style), 'none' (left in content), or 'auto' (reasoning for gpt-oss "
        "models, reasoning_content otherwise). Requests may override it with `reasoning_format`.",
        config=True,
    )
    max_queued_requests = Integer(
        32,
        help="Requests that may wait for a model instance while it works; more get 503 with Retry-After.",
        config=True,
    )
    threads = Integer(
        0,
        help="CPU threads per model for decoding and prompt processing (0: every core this "
        "process may use; fewer leaves room for other work on small machines).",
        config=True,
    )

    guardrails = Enum(
        ["off", "relaxed", "strict"],
        default_value="relaxed",
        help="Refuse loads whose memory estimate does not fit (a load's `force` overrides): "
        "'strict' counts available RAM and free GPU memory; 'relaxed' adds free swap and lets the "
        "GPU part use the GPU's total memory; 'off' never refuses.",
        config=True,
    )
    max_memory = Unicode(
        "",
        help="Most RAM all loaded models together may take, e.g. '8GB' or '512MiB' (empty: "
        "whatever the machine has available). For shared machines.",
        config=True,
    )

    tokens_file = Unicode(
        help="JSON file of lm_jupyter API tokens (hashes only; default: "
        "<jupyter data dir>/lm_jupyter/tokens.json). Manage them with `lmj token`.",
        config=True,
    )
    presets_dir = Unicode(
        help="Folder of presets, NAME.json (default: $LM_JUPYTER_PRESETS_DIR or ~/.lm_jupyter/presets).",
        config=True,
    )

    responses_db = Unicode(
        help="SQLite file of stored /v1/responses responses, for previous_response_id (default: "
        "<jupyter data dir>/lm_jupyter/responses.sqlite3).",
        config=True,
    )
    enable_remote_mcp = Bool(
        False,
        help="Allow /v1/responses requests to name remote MCP servers (tools of type 'mcp'), which "
        "this server then connects to (LM Studio's 'Allow per-request MCPs').",
        config=True,
    )
    mcp_timeout = Float(
        30, help="Seconds a remote MCP server may take to connect, list tools or run a call.", config=True
    )

    @default("models_dir")
    def _models_dir_default(self) -> str:
        return str(models_dir_from_env())

    @default("tokens_file")
    def _tokens_file_default(self) -> str:
        return str(default_tokens_file(jupyter_data_dir()))

    @default("responses_db")
    def _responses_db_default(self) -> str:
        return str(default_responses_db(jupyter_data_dir()))

    @default("presets_dir")
    def _presets_dir_default(self) -> str:
        return str(presets_dir_from_env())

    def initialize_settings(self) -> None:
        self.manager = ModelManager(
            Path(self.models_dir).expanduser(),
            default_context_length=self.default_context_length,
            threads=self.threads,
            jit_ttl=self.jit_ttl,
            auto_evict=self.auto_evict,
            max_jit_instances=self.max_jit_instances,
            reasoning_format=self.reasoning_format,
            max_queued=self.max_queued_requests,
            guardrails=self.guardrails,
            max_memory=parse_size(self.max_memory) if self.max_memory else 0,
        )
        metrics.watch(self.manager)
        self.log_bus = LogBus()
        self.log_bus.secrets.add(getattr(self.serverapp.identity_provider, "token", "") or "")
        self.manager.listeners.append(self.log_bus.manager_event)
        self.settings.update(
            {
                LOG_BUS_SETTING: self.log_bus,
                TOKENS_SETTING: TokenStore(Path(self.tokens_file).expanduser()),
                PRESETS_SETTING: PresetStore(Path(self.presets_dir).expanduser()),
                DOWNLOADS_SETTING: Downloads(self.manager),
                RESPONSES_SETTING: ResponseStore(Path(self.responses_db).expanduser()),
                responses_handlers.REMOTE_MCP_SETTING: self.enable_remote_mcp,
                responses_handlers.MCP_TIMEOUT_SETTING: self.mcp_timeout,
            }
        )
        self.log.info("lm_jupyter %s serving models from %s", __version__, self.models_dir)
        self.log_bus.log(
            f"lm_jupyter {__version__} started on port {self.serverapp.port}, "
            f"serving models from {self.models_dir}",
            event="startup",
            version=__version__,
            port=self.serverapp.port,
            modelsDir=self.models_dir,
        )

    def initialize_handlers(self) -> None:
        kwargs: dict[str, Any] = {"manager": self.manager}
        self.handlers.extend((pattern, handler, kwargs) for pattern, handler in ROUTES)

    async def stop_extension(self) -> None:
        self.log_bus.log("lm_jupyter is stopping", event="shutdown")
        self.log_bus.close()
        await self.log_bus.wait_closed(timeout=2)
        await self.settings[DOWNLOADS_SETTING].shutdown()
        await self.manager.shutdown()
        self.settings[RESPONSES_SETTING].close()
