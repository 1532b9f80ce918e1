"""One remote upstream: where it is and which environment variable holds its key (never the key)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from ...api.errors import APIError


@dataclass(frozen=True)
class Upstream:
    name: str
    url: str  # the base URL clients would use: it ends with /v1 (added when missing)
    api_key_env: str | None = None
    models: tuple[str, ...] = ()  # the models it serves; empty: whatever its /v1/models lists
    source: str = "file"  # "config" (the extension's setting, read-only here) or "file"

    def api_key(self) -> str | None:
        """The key from the server's environment; a 503 that names the variable if it is unset."""
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise APIError(
                f"Remote upstream '{self.name}' needs the API key in ${self.api_key_env}, which is not "
                "set in the Jupyter server's environment. Set it and restart the server.",
                status=503,
                type="server_error",
                code="upstream_api_key_missing",
            )
        return value

    def public(self) -> dict[str, Any]:
        body = asdict(self)
        body["models"] = list(self.models)
        return body


def base_url(url: str) -> str:
    """``http://host:8000`` and ``http://host:8000/v1/`` both mean ``http://host:8000/v1``."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"
