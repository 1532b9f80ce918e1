"""A small synchronous client of lm_jupyter's public HTTP routes (used by magics and ``lmj``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from .discovery import DEFAULT_PORT, ServerInfo, find_server, free_port, start_headless


class LmError(Exception):
    """An error the server reported, carrying its one-line message."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after  # seconds, from a 503's Retry-After


class Client:
    def __init__(self, server: ServerInfo, timeout: float = 600) -> None:
        self.server = server
        self.http = httpx.Client(
            base_url=server.url,
            headers={"Authorization": f"Bearer {server.token}"} if server.token else {},
            timeout=httpx.Timeout(timeout, connect=10),
        )

    @classmethod
    def discover(cls, *, start: bool = True) -> Client:
        server = find_server()
        if server is None:
            if not start:
                raise LmError("No lm_jupyter server is running. Start one with `lmj server start`.")
            # Another server (LM Studio itself, say) may hold 1234: take the next free port.
            server = start_headless(port=free_port("127.0.0.1", DEFAULT_PORT))
        return cls(server)

    def close(self) -> None:
        self.http.close()

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self.http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise LmError(f"Cannot reach the lm_jupyter server at {self.server.url}: {exc}") from None
        if response.status_code >= 400:
            raise _error_from(response.status_code, response.content, response.headers)
        return response.json()

    def models(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "api/v1/models")["models"])

    def load(self, model: str, **options: Any) -> Any:
        """``options``: context_length, identifier, ttl, gpu, parallel, flash_attention, draft_model
        (None: default)."""
        body = {"model": model, **{k: v for k, v in options.items() if v is not None}}
        return self._request("POST", "api/v1/models/load", body)

    def estimate(self, model: str, **options: Any) -> dict[str, Any]:
        """What loading would cost (``lms load --estimate-only``); options as for :meth:`load`."""
        body = {"model": model, **{k: v for k, v in options.items() if v is not None}}
        return dict(self._request("POST", "api/v1/models/estimate", body))

    def unload(self, instance_id: str) -> Any:
        return self._request("POST", "api/v1/models/unload", {"instance_id": instance_id})

    def loaded(self, models: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Loaded instances, each with its model's key and type, like ``lms ps --json``;
        ``models``: a listing already read (``ps`` shows this and :meth:`crashed` from one)."""
        rows = []
        for model in self.models() if models is None else models:
            for inst in model["loaded_instances"]:
                ttl, remaining = inst["ttl_seconds"], inst["ttl_remaining_seconds"]
                rows.append(
                    {
                        "identifier": inst["id"],
                        "modelKey": model["key"],
                        "type": model["type"],
                        "status": inst["status"],
                        "queued": inst["queued"],
                        "contextLength": inst["config"]["context_length"],
                        "parallel": inst["config"]["parallel"],
                        "device": inst.get("device"),
                        "sizeBytes": model["size_bytes"],
                        "memoryBytes": inst["memory_bytes"],
                        "ttlMs": None if ttl is None else int(ttl * 1000),
                        "ttlRemainingMs": None if remaining is None else int(remaining * 1000),
                        "loadedBy": inst["loaded_by"],
                    }
                )
        return rows

    def crashed(self, models: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Models that are not loaded because their worker died, with the named cause."""
        return [
            {
                "modelKey": model["key"],
                "type": model["type"],
                "status": "crashed",
                "error": model["last_error"],
            }
            for model in (self.models() if models is None else models)
            if model.get("last_error")
        ]

    # API tokens and presets belong to the server: these call its routes, never its files.

    def tokens(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "api/v1/tokens")["data"])

    def create_token(self, name: str, expires_in_days: float | None = None) -> dict[str, Any]:
        """A new API token: the reply holds the secret (``token``), which is never shown again."""
        body: dict[str, Any] = {"name": name, "expires_in_days": expires_in_days}
        return dict(self._request("POST", "api/v1/tokens", body))

    def revoke_token(self, name: str) -> dict[str, Any]:
        return dict(self._request("DELETE", f"api/v1/tokens/{quote(name, safe='')}"))

    def presets(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "api/v1/presets")["data"])

    def preset(self, name: str) -> dict[str, Any]:
        return dict(self._request("GET", f"api/v1/presets/{quote(name, safe='')}"))

    def save_preset(self, name: str, preset: dict[str, Any]) -> dict[str, Any]:
        return dict(self._request("PUT", f"api/v1/presets/{quote(name, safe='')}", preset))

    def delete_preset(self, name: str) -> dict[str, Any]:
        return dict(self._request("DELETE", f"api/v1/presets/{quote(name, safe='')}"))

    # Remote upstreams (server/remote_handlers.py): the server keeps them and proxies to them.

    def settings(self) -> dict[str, Any]:
        return dict(self._request("GET", "api/v1/settings"))

    def change_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        return dict(self._request("PATCH", "api/v1/settings", changes))

    def remotes(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "api/v1/remotes")["data"])

    def add_remote(
        self, name: str, url: str, api_key_env: str | None = None, models: list[str] | None = None
    ) -> dict[str, Any]:
        body = {"name": name, "url": url, "api_key_env": api_key_env, "models": models or []}
        return dict(self._request("POST", "api/v1/remotes", body))

    def remove_remote(self, name: str) -> dict[str, Any]:
        return dict(self._request("DELETE", f"api/v1/remotes/{quote(name, safe='')}"))

    # Hub downloads (server/download_handlers.py): the server searches and downloads.

    def search_hub(self, query: str, formats: str = "gguf", limit: int = 10) -> dict[str, Any]:
        params = urlencode({"query": query, "format": formats, "limit": limit})
        return dict(self._request("GET", f"api/v1/models/search?{params}"))

    def download_options(
        self, model: str, quantization: str | None = None, formats: str = "gguf"
    ) -> dict[str, Any]:
        """A repo's variants with their fit on the server's machine and the recommended one."""
        fields = {"model": model, "format": formats}
        if quantization:
            fields["quantization"] = quantization
        return dict(self._request("GET", f"api/v1/models/download/options?{urlencode(fields)}"))

    def download(self, model: str, quantization: str | None = None) -> dict[str, Any]:
        body = {"model": model, **({"quantization": quantization} if quantization else {})}
        return dict(self._request("POST", "api/v1/models/download", body))

    def download_status(self, job_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"api/v1/models/download/status/{quote(job_id, safe='')}"))

    def downloads(self) -> list[dict[str, Any]]:
        """Every download job the server has run, oldest first, wherever it was started."""
        return list(self._request("GET", "api/v1/models/download")["data"])

    def pause_download(self, job_id: str) -> dict[str, Any]:
        return dict(self._request("DELETE", f"api/v1/models/download/{quote(job_id, safe='')}"))

    def embeddings(self, model: str, texts: list[str]) -> dict[str, Any]:
        """``/v1/embeddings`` for a batch of texts (OpenAI's answer: ``data[i].embedding``)."""
        return dict(self._request("POST", "v1/embeddings", {"model": model, "input": texts}))

    def chat_stream(self, body: dict[str, Any], *, stats: bool = False) -> Iterator[dict[str, Any]]:
        """Stream ``/v1/chat/completions`` chunks; closing the iterator cancels the generation.
        ``stats``: use the ``/api/v0`` twin, whose last chunk adds LM Studio's ``stats``."""
        payload = {**body, "stream": True, "stream_options": {"include_usage": True}}
        path = "api/v0/chat/completions" if stats else "v1/chat/completions"
        try:
            with self.http.stream("POST", path, json=payload) as response:
                if response.status_code >= 400:
                    raise _error_from(response.status_code, response.read(), response.headers)
                for line in response.iter_lines():
                    if not line.startswith("data: "):
                        continue
                    data = line[6:]
                    if data == "[DONE]":
                        return
                    chunk = json.loads(data)
                    if "error" in chunk:
                        raise LmError(chunk["error"]["message"], code=chunk["error"].get("code"))
                    yield chunk
        except httpx.HTTPError as exc:
            raise LmError(f"Lost the connection to {self.server.url}: {exc}") from None

    def log_stream(
        self,
        sources: list[str],
        filters: list[str] | None = None,
        history: int = 0,
        on_connected: Callable[[], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The server's live log events (``GET /api/v1/logs/stream``), until the server stops
        or the iterator is closed; ``history``: first up to that many recent events.
        ``on_connected`` runs once the server has subscribed us: later events will arrive."""
        params: dict[str, Any] = {"source": ",".join(sources)}
        if filters:
            params["filter"] = ",".join(filters)
        if history:
            params["history"] = history
        # The server sends a keep-alive every 15 s: a minute of silence is a dead connection.
        timeout = httpx.Timeout(60, connect=10)
        try:
            with self.http.stream("GET", "api/v1/logs/stream", params=params, timeout=timeout) as response:
                if response.status_code >= 400:
                    raise _error_from(response.status_code, response.read())
                if on_connected is not None:
                    on_connected()
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        yield json.loads(line[6:])
        except httpx.HTTPError as exc:
            raise LmError(f"Lost the connection to {self.server.url}: {exc}") from None


def _error_from(status: int, content: bytes, headers: httpx.Headers | None = None) -> LmError:
    retry_after = _seconds((headers or {}).get("retry-after"))
    try:
        error = json.loads(content)["error"]
        return LmError(error["message"], status, error.get("code"), retry_after)
    except (ValueError, KeyError, TypeError):
        return LmError(
            f"HTTP {status}: {content[:200].decode(errors='replace')}", status, retry_after=retry_after
        )


def _seconds(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is not used by these servers)."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
