"""The one place data work touches lm_jupyter's client side (HTTP client, discovery, text
helpers), so moving those modules means changing these imports only."""

from __future__ import annotations

from ..client.client import Client, LmError
from ..client.discovery import ServerInfo
from ..client.download_view import bar, clock

__all__ = ["Client", "LmError", "ServerInfo", "bar", "clock"]
