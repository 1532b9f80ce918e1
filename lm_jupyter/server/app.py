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
from traitlets import Bool, Dict, Float, Integer, List, Unicode, default

from .._version import __version__
from ..engine.manager import ModelManager
from ..engine.remote.routing import RoutedManager
from ..engine.remote.upstreams import Remotes
from ..hub.store import models_dir_from_env
from . import (
    admin_handlers,
    anthropic_handlers,
    download_handlers,
    estimate_handlers,
    fallback,
    handlers,
    listing_handlers,
    lmstudio_chat_handlers,
    log_handlers,
    metrics,
    openapi,
    remote_handlers,
    rerank_handlers,
    responses_handlers,
    settings_handlers,
    tokenizer_handlers,
)
from .auth import REQUIRE_AUTH_SETTING
from .downloads import DOWNLOADS_SETTING, Downloads
from .load_progress import LOAD_PROGRESS_SETTING, LoadProgress
from .log_bus import LOG_BUS_SETTING, LogBus
from .presets import PRESETS_SETTING, PresetStore, presets_dir_from_env
from .remote_config import RemoteConfig, default_remotes_file
from .response_store import RESPONSES_SETTING, ResponseStore, default_responses_db
from .tokens import TOKENS_SETTING, TokenStore, default_tokens_file

# Every route the extension serves (tests enumerate this list to check that each one is authenticated).
ROUTES = [
    *handlers.ROUTES,
    *listing_handlers.ROUTES,
    *admin_handlers.ROUTES,
    *estimate_handlers.ROUTES,
    *download_handlers.ROUTES,
    *log_handlers.ROUTES,
    *responses_handlers.ROUTES,
    *lmstudio_chat_handlers.ROUTES,
    *settings_handlers.ROUTES,
    *anthropic_handlers.ROUTES,
    *tokenizer_handlers.ROUTES,
    *rerank_handlers.ROUTES,
    *remote_handlers.ROUTES,
    *openapi.ROUTES,
]


class LmJupyterApp(ExtensionApp):
    name = "lm_jupyter"
    description = "LM Studio-compatible local LLM server inside Jupyter"
    version = __version__
    load_other_extensions = False
    open_browser = False
    classes = [ModelManager]  # its settings (ModelManager.*) show in --help-all

    models_dir = Unicode(
        help="Folder of models in LM Studio's publisher/repo/file.gguf layout "
        "(default: $LM_JUPYTER_MODELS_DIR or ~/.lm_jupyter/models).",
        config=True,
    )
    max_request_bytes = Integer(
        16 * 1024 * 1024,
        help="Largest request body the extension's routes accept, in bytes; larger ones get a 413 "
        "(the limits on what one request may ask of a model are ModelManager settings).",
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
    require_auth = Bool(
        True,
        help="Require credentials (the Jupyter token or an lm_jupyter API token) on the model API "
        "routes. False answers requests that carry no credentials at all, as LM Studio does with "
        "'Require Authentication' off, with an API token's rights: models and chats, never the "
        "server's settings, tokens or Jupyter's own routes; browsers from other origins are still refused.",
        config=True,
    )

    remotes = List(
        Dict(),
        help="Remote OpenAI-compatible upstreams (vLLM, llama-server, another lm_jupyter) whose models "
        "this server lists and proxies: [{'name': 'cluster', 'url': 'http://vllm:8000/v1', "
        "'api_key_env': 'VLLM_API_KEY', 'models': ['Qwen/Qwen3-8B']}]. 'api_key_env' names an "
        "environment variable, never the key; 'models' is optional (default: what the upstream "
        "lists). `lmj remote add` adds more, kept in remotes_file. See docs/scale-out.md.",
        config=True,
    )
    remotes_file = Unicode(
        help="JSON file of the remote upstreams added with `lmj remote add` (default: "
        "<jupyter data dir>/lm_jupyter/remotes.json).",
        config=True,
    )
    remote_timeout = Float(
        300,
        help="Seconds a remote upstream may stay silent (before its answer or between chunks).",
        config=True,
    )
    remote_connect_timeout = Float(10, help="Seconds to connect to a remote upstream.", config=True)
    remote_listing_ttl = Float(
        10, help="Seconds a remote upstream's model listing is reused before it is read again.", config=True
    )
    remote_retry_seconds = Float(
        30,
        help="Seconds a remote upstream that failed is skipped while another serves the same model.",
        config=True,
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

    @default("remotes_file")
    def _remotes_file_default(self) -> str:
        return str(default_remotes_file(jupyter_data_dir()))

    @default("presets_dir")
    def _presets_dir_default(self) -> str:
        return str(presets_dir_from_env())

    def initialize_settings(self) -> None:
        remote_config = RemoteConfig.load(Path(self.remotes_file).expanduser(), self.remotes)
        remotes = Remotes(
            lambda: remote_config.upstreams,
            timeout=self.remote_timeout,
            connect_timeout=self.remote_connect_timeout,
            listing_ttl=self.remote_listing_ttl,
            cooldown=self.remote_retry_seconds,
        )
        self.manager = RoutedManager(Path(self.models_dir).expanduser(), remotes, parent=self)
        metrics.watch(self.manager)
        self.log_bus = LogBus()
        self.log_bus.secrets.add(getattr(self.serverapp.identity_provider, "token", "") or "")
        self.manager.listeners.append(self.log_bus.manager_event)
        load_progress = LoadProgress()
        self.manager.listeners.append(load_progress.manager_event)
        self.settings.update(
            {
                LOG_BUS_SETTING: self.log_bus,
                LOAD_PROGRESS_SETTING: load_progress,
                TOKENS_SETTING: TokenStore(Path(self.tokens_file).expanduser()),
                PRESETS_SETTING: PresetStore(Path(self.presets_dir).expanduser()),
                DOWNLOADS_SETTING: Downloads(self.manager),
                RESPONSES_SETTING: ResponseStore(Path(self.responses_db).expanduser()),
                remote_handlers.REMOTES_SETTING: remote_config,
                handlers.MAX_BODY_SETTING: self.max_request_bytes,
                openapi.OPENAPI_SETTING: openapi.build(ROUTES),
                responses_handlers.REMOTE_MCP_SETTING: self.enable_remote_mcp,
                responses_handlers.MCP_TIMEOUT_SETTING: self.mcp_timeout,
                REQUIRE_AUTH_SETTING: self.require_auth,
                settings_handlers.APP_SETTING: self,
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
        # Last, so the catch-all 404s can never shadow a route registered before them.
        self.handlers.extend((pattern, handler, kwargs) for pattern, handler in fallback.FALLBACK_ROUTES)

    async def stop_extension(self) -> None:
        self.log_bus.log("lm_jupyter is stopping", event="shutdown")
        self.log_bus.close()
        await self.log_bus.wait_closed(timeout=2)
        await self.settings[DOWNLOADS_SETTING].shutdown()
        await self.manager.shutdown()
        self.settings[RESPONSES_SETTING].close()
