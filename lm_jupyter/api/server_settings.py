"""Which server settings take effect at once, by their traitlets class (pure): shared by the
settings route (``server/settings_handlers.py``) and ``lmj server start --set``."""

from __future__ import annotations

# ModelManager traits read on every use, so a change applies to the next request or load.
MANAGER_SETTINGS = (
    "jit_loading",
    "jit_ttl",
    "auto_evict",
    "max_jit_instances",
    "default_context_length",
    "reasoning_format",
    "max_queued_requests",
    "threads",
)
# LmJupyterApp traits the handlers read from the Tornado settings.
APP_SETTINGS = ("enable_remote_mcp", "mcp_timeout", "require_auth")


def config_option(name: str, value: str) -> str:
    """The server's command-line option for ``NAME=VALUE``: a live setting by its name, or any
    other trait as ``Class.name`` (``ModelManager.guardrails``)."""
    if "." in name:
        return f"--{name}={value}"
    if name in MANAGER_SETTINGS:
        return f"--ModelManager.{name}={value}"
    if name in APP_SETTINGS:
        return f"--LmJupyterApp.{name}={value}"
    known = ", ".join([*MANAGER_SETTINGS, *APP_SETTINGS])
    raise ValueError(f"unknown setting '{name}': use one of {known}, or a trait as Class.name")
