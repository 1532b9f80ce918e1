"""The remote upstreams as the manager sees them: their models, and requests with failover.

Everything here is asynchronous (one ``httpx.AsyncClient``), so a slow or dead upstream never
blocks the Jupyter server's event loop. Listings are cached for ``listing_ttl`` seconds and
refreshed together, each bounded by ``listing_timeout``; a refresh that fails marks the upstream
down (this is the health check). Several upstreams may serve one
model name: they are tried in order (up ones first, see ``health.py``) until one has started
streaming; after the first byte there is no going back, and a failure is an error mid-stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from ...api.completions import ModelCard
from ...api.errors import APIError
from ...api.remote import ListedModel, RemoteModel, error_fields, error_message, parse_listing, sse_payload
from .health import Health
from .upstream import Upstream

# Answers after which the next upstream is tried: the upstream is failing, not the request.
RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})

Notify = Callable[..., None]


@dataclass(frozen=True)
class RemoteTarget:
    """What a proxied request reports as its model, like a loaded ``Instance`` does."""

    identifier: str
    upstream: str
    context_length: int | None

    def card(self) -> ModelCard:
        return ModelCard(
            arch="remote", quant="unknown", format="remote", context_length=self.context_length or 0
        )


@dataclass
class _Listing:
    fetched_at: float = float("-inf")
    models: dict[str, ListedModel] = field(default_factory=dict)
    ok: bool = False  # the last refresh answered


class UpstreamFailed(Exception):
    """One attempt failed in a way the next upstream may not (the client saw nothing yet)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class Remotes:
    def __init__(
        self,
        upstreams: Callable[[], list[Upstream]],
        *,
        timeout: float = 300.0,
        connect_timeout: float = 10.0,
        listing_ttl: float = 10.0,
        listing_timeout: float = 5.0,
        cooldown: float = 30.0,
    ) -> None:
        self.upstreams = upstreams
        self.timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self.listing_ttl = listing_ttl
        self.listing_timeout = listing_timeout
        self.health = Health(cooldown)
        self._listings: dict[str, _Listing] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:  # created on the event loop that uses it
            self._client = httpx.AsyncClient(timeout=self.timeout)
        return self._client

    async def close(self) -> None:
        for task in self._refreshing.values():
            task.cancel()
        if self._client is not None:
            await self._client.aclose()

    # -- listings --------------------------------------------------------------------------

    async def refresh(self, *, wait: bool = True) -> None:
        """Re-read the listings older than ``listing_ttl`` (concurrent callers share one read).

        With ``wait=False`` (routing a request, model listings) only listings never read are
        waited for; stale ones are refreshed in the background, so a slow upstream never delays
        other requests. ``lmj remote ls`` and ``add`` wait, to show the upstream as it is now.
        """
        now = time.monotonic()
        waited = []
        for upstream in self.upstreams():
            listing = self._listings.setdefault(upstream.name, _Listing())
            if now - listing.fetched_at < self.listing_ttl:
                continue
            task = self._refreshing.get(upstream.name)
            if task is None or task.done():
                task = self._refreshing[upstream.name] = asyncio.create_task(self._read_listing(upstream))
            if wait or listing.fetched_at == float("-inf"):
                waited.append(task)
        if waited:
            await asyncio.gather(*(asyncio.shield(task) for task in waited))

    async def _read_listing(self, upstream: Upstream) -> None:
        listing = self._listings.setdefault(upstream.name, _Listing())
        try:
            response = await self.client.get(
                upstream.url + "/models", headers=_headers(upstream), timeout=self.listing_timeout
            )
            if response.status_code >= 400:
                raise refusal(upstream, response)
            models = parse_listing(response.json())
        except (httpx.HTTPError, UpstreamFailed, ValueError, APIError) as exc:
            listing.ok = False
            self.health.failed(upstream.name, describe(upstream, exc))
        else:
            listing.models = {model.id: model for model in models}
            listing.ok = True
        listing.fetched_at = time.monotonic()

    def serves(self, upstream: Upstream, model: str) -> bool:
        listing = self._listings.get(upstream.name)
        return model in upstream.models if upstream.models else bool(listing and model in listing.models)

    async def models(self) -> list[RemoteModel]:
        """One entry per model name, reported by the upstream that would be tried first (from the
        cached listings: the widget polls this, and a hanging upstream must not slow it down)."""
        await self.refresh(wait=False)
        names: list[str] = []
        for upstream in self.upstreams():
            listing = self._listings.get(upstream.name, _Listing())
            for name in upstream.models or list(listing.models):
                if name not in names:
                    names.append(name)
        return [self._entry(name) for name in names]

    def _entry(self, name: str) -> RemoteModel:
        upstream = self.candidates_known(name)[0]
        listing = self._listings.get(upstream.name, _Listing())
        listed = listing.models.get(name)
        if not listing.ok:
            state = "unreachable"
        elif self.health.is_down(upstream.name):
            state = "failing"
        else:
            state = "loaded" if listed is not None else "not-loaded"
        return RemoteModel(
            name,
            upstream.name,
            state,
            listed.context_length if listed else None,
            self.health.state(upstream.name).last_error if state in ("unreachable", "failing") else None,
        )

    def candidates_known(self, model: str) -> list[Upstream]:
        serving = [up for up in self.upstreams() if self.serves(up, model)]
        return self.health.order(serving, lambda up: up.name)

    async def target(self, model: str) -> RemoteTarget | None:
        """The model as served remotely, or None when no upstream serves that name."""
        if not self.upstreams():
            return None
        await self.refresh(wait=False)
        serving = self.candidates_known(model)
        if not serving:
            return None
        listed = self._listings.get(serving[0].name, _Listing()).models.get(model)
        return RemoteTarget(model, serving[0].name, listed.context_length if listed else None)

    def status(self) -> list[dict[str, Any]]:
        """``lmj remote ls``: each upstream with its health and the models it listed."""
        rows = []
        for upstream in self.upstreams():
            listing = self._listings.get(upstream.name, _Listing())
            state = self.health.state(upstream.name)
            rows.append(
                {
                    **upstream.public(),
                    "state": "down"
                    if self.health.is_down(upstream.name)
                    else "up"
                    if listing.ok
                    else "unknown",
                    "last_error": state.last_error,
                    "listed_models": list(listing.models),
                }
            )
        return rows

    # -- requests --------------------------------------------------------------------------

    async def stream(
        self, model: str, path: str, body: dict[str, Any], started: Callable[[Upstream], None]
    ) -> AsyncIterator[str]:
        """The SSE payloads of the first upstream that starts answering ``body``.

        ``started`` is called with the upstream before its first payload is yielded; from then
        on a failure is an ``APIError`` (502) that names it, because the client has data already.
        """
        failures: list[UpstreamFailed] = []
        for upstream in self.candidates_known(model):
            yielded = False
            try:
                async with self.client.stream(
                    "POST", upstream.url + path, json=body, headers=_headers(upstream)
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise refusal(upstream, response)
                    async for line in response.aiter_lines():
                        payload = sse_payload(line)
                        if payload is None:
                            continue
                        if not yielded:
                            started(upstream)
                            yielded = True
                        yield payload
                        if payload == "[DONE]":
                            break
                self.health.succeeded(upstream.name)
                return
            except (httpx.HTTPError, UpstreamFailed) as exc:
                failure = as_failure(upstream, exc)
                self.health.failed(upstream.name, failure.message)
                if yielded:
                    raise APIError(
                        f"The answer broke off: {failure.message}",
                        status=502,
                        type="server_error",
                        code="upstream_failed",
                    ) from None
                failures.append(failure)
        raise no_upstream(model, failures)

    async def post(self, model: str, path: str, body: dict[str, Any]) -> tuple[Upstream, dict[str, Any]]:
        """A non-streamed request (embeddings), with the same failover."""
        failures: list[UpstreamFailed] = []
        for upstream in self.candidates_known(model):
            try:
                response = await self.client.post(upstream.url + path, json=body, headers=_headers(upstream))
                if response.status_code >= 400:
                    raise refusal(upstream, response)
                answer = response.json()
            except (httpx.HTTPError, UpstreamFailed, ValueError) as exc:
                failure = as_failure(upstream, exc)
                self.health.failed(upstream.name, failure.message)
                failures.append(failure)
                continue
            self.health.succeeded(upstream.name)
            return upstream, answer
        raise no_upstream(model, failures)


def _headers(upstream: Upstream) -> dict[str, str]:
    key = upstream.api_key()
    return {"Authorization": f"Bearer {key}"} if key else {}


def refusal(upstream: Upstream, response: httpx.Response) -> Exception:
    """An upstream's error answer: a 4xx is the request's fault and reaches the client as the
    upstream worded it; a 5xx (or 408/429) lets the next upstream try."""
    status = response.status_code
    message = error_message(status, response.content)
    if status in RETRYABLE:
        return UpstreamFailed(
            502, "upstream_error", f"upstream '{upstream.name}' answered {status}: {message}"
        )
    fields = error_fields(response.content)
    return APIError(
        message,
        status=status,
        type=fields.get("type") or "invalid_request_error",
        param=fields.get("param"),
        code=fields.get("code"),
    )


def as_failure(upstream: Upstream, exc: Exception) -> UpstreamFailed:
    if isinstance(exc, UpstreamFailed):
        return exc
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamFailed(504, "upstream_timeout", describe(upstream, exc))
    if isinstance(exc, httpx.ConnectError):
        return UpstreamFailed(503, "upstream_unreachable", describe(upstream, exc))
    return UpstreamFailed(502, "upstream_error", describe(upstream, exc))


def describe(upstream: Upstream, exc: Exception) -> str:
    """One line about a failed exchange that names the upstream, for errors and listings."""
    if isinstance(exc, UpstreamFailed):
        return exc.message
    where = f"upstream '{upstream.name}' ({upstream.url})"
    if isinstance(exc, APIError):  # a refusal (a wrong API key) or a missing key variable
        return f"{where} refused: {exc.message}"
    if isinstance(exc, httpx.TimeoutException):
        return f"{where} did not answer in time ({type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError):
        return f"{where} is unreachable: {exc or type(exc).__name__}"
    if isinstance(exc, ValueError):
        return f"{where} did not answer in OpenAI's format: {exc}"
    return f"{where} failed: {type(exc).__name__}: {exc}"


def no_upstream(model: str, failures: list[UpstreamFailed]) -> APIError:
    if not failures:  # every upstream was removed meanwhile
        return APIError(
            f"No remote upstream serves '{model}' any more. Run `lmj remote ls`.",
            status=404,
            param="model",
            code="model_not_found",
        )
    names = "; ".join(failure.message for failure in failures)
    last = failures[-1]
    return APIError(
        f"No remote upstream could serve '{model}': {names}",
        status=last.status,
        type="server_error",
        code=last.code,
    )
