"""The server's live log: typed events, published once, fanned out to ``lmj log stream`` clients.

Events have LM Studio's diagnostics shape (reference/lmstudio-api.md §8, ``lms log stream
--json``): ``{"timestamp": <ms>, "data": {...}}`` where ``data`` is

- ``{"type": "server.log", "level", "content", "details"}``: startup, each request (method,
  path, status, time), loads, unloads (with the reason: requested, ttl, evicted, worker
  exited) and errors. ``details`` is ours: the same facts as fields, for scripts;
- ``{"type": "llm.prediction.input", "input", "modelPath", "modelIdentifier"}``: the formatted
  prompt, as the model sees it;
- ``{"type": "llm.prediction.output", "output", "stats", "modelIdentifier"}``: the text, once
  the prediction ends (also when the client stopped it: ``stats.stopReason == "userStopped"``).

Everything runs on the server's event loop: publishing is a few list appends, never a wait.
Each subscriber has a bounded queue; when a client reads too slowly its oldest events are
dropped (and it is told how many), so a slow client can neither block the server nor grow its
memory. Secrets are redacted once, at publish time, before any event is stored or sent.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..api.completions import Outcome
from ..api.errors import APIError

LOG_BUS_SETTING = "lm_jupyter_log_bus"
SOURCES = ("server", "model")
FILTERS = ("input", "output")
REDACTED = "[redacted]"

_API_TOKEN = re.compile(r"sk-lmj-[A-Za-z0-9_-]+")
_QUERY_SECRET = re.compile(r"(?i)([?&;](?:token|api_key|api-key|apikey|access_token|_xsrf)=)[^&#\s]*")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s\"',]+")

Event = dict[str, Any]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask lm_jupyter API tokens, token-like query parameters, Bearer credentials and the
    literal ``secrets`` (the Jupyter token), wherever they appear in ``text``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = _API_TOKEN.sub("sk-lmj-" + REDACTED, text)
    text = _QUERY_SECRET.sub(r"\1" + REDACTED, text)
    return _BEARER.sub(r"\1" + REDACTED, text)


def _redact_all(value: Any, secrets: Iterable[str]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {key: _redact_all(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact_all(item, secrets) for item in value]
    return value


def source_of(data: Event) -> str:
    return "model" if str(data.get("type", "")).startswith("llm.") else "server"


@dataclass(frozen=True)
class Selection:
    """Which events a subscriber wants: sources, and for model events the directions."""

    sources: frozenset[str] = frozenset({"model"})
    filters: frozenset[str] = frozenset(FILTERS)

    def matches(self, data: Event) -> bool:
        source = source_of(data)
        if source not in self.sources:
            return False
        if source == "model":
            return data["type"].rsplit(".", 1)[-1] in self.filters
        return True


def _names(value: str | None, allowed: tuple[str, ...], param: str, default: Iterable[str]) -> frozenset[str]:
    if value is None:
        return frozenset(default)
    names = [name.strip() for name in value.split(",")]
    unknown = [name for name in names if name not in allowed]
    if not names or unknown:
        raise APIError(
            f"Invalid '{param}': {', '.join(repr(n) for n in unknown) or 'empty'}; "
            f"use one or more of {', '.join(allowed)}, separated by commas.",
            param=param,
            code="invalid_value",
        )
    return frozenset(names)


def parse_selection(source: str | None, filter: str | None) -> Selection:
    """``?source=server,model&filter=input,output`` (defaults: model, both), or a 400."""
    return Selection(
        _names(source, SOURCES, "source", {"model"}),
        _names(filter, FILTERS, "filter", FILTERS),
    )


class Subscription:
    """One client's bounded queue of the events it selected."""

    def __init__(self, selection: Selection, maxsize: int) -> None:
        self.selection = selection
        self.queue: deque[Event] = deque()
        self.maxsize = maxsize
        self.dropped = 0
        self.closed = False
        self._ready = asyncio.Event()

    def offer(self, event: Event) -> None:
        if self.closed or not self.selection.matches(event["data"]):
            return
        if len(self.queue) >= self.maxsize:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(event)
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def get(self, timeout: float) -> Event | None:
        """The next event; None after ``timeout`` seconds without one, or once closed and empty
        (what was queued before the close, such as the server's last words, still comes)."""
        if self.dropped:
            dropped, self.dropped = self.dropped, 0
            return stamp(
                server_log(
                    f"{dropped} log event{'s were' if dropped != 1 else ' was'} dropped: this client "
                    "reads more slowly than events arrive.",
                    "warn",
                    event="dropped",
                    count=dropped,
                )
            )
        if not self.queue and not self.closed:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return None
        return self.queue.popleft() if self.queue else None


def stamp(data: Event) -> Event:
    return {"timestamp": int(time.time() * 1000), "data": data}


def server_log(content: str, level: str = "info", **details: Any) -> Event:
    return {"type": "server.log", "level": level, "content": content, "details": details}


class LogBus:
    """Publish/subscribe of log events, with a short history for clients that ask for it."""

    def __init__(self, *, history: int = 200, queue_size: int = 1000) -> None:
        self.history: deque[Event] = deque(maxlen=history)
        self.queue_size = queue_size
        self.secrets: set[str] = set()  # literal strings never to show (the Jupyter token)
        self.subscribers: set[Subscription] = set()

    def publish(self, data: Event) -> None:
        event = stamp(_redact_all(data, self.secrets))
        self.history.append(event)
        for subscriber in list(self.subscribers):
            subscriber.offer(event)

    def subscribe(self, selection: Selection, history: int = 0) -> Subscription:
        """A new subscriber, first given up to ``history`` recent events it selected."""
        subscription = Subscription(selection, self.queue_size)
        if history > 0:
            for event in [e for e in self.history if selection.matches(e["data"])][-history:]:
                subscription.offer(event)
        self.subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.close()
        self.subscribers.discard(subscription)

    def close(self) -> None:
        """The server is stopping: every stream ends, after the events it has queued."""
        for subscription in self.subscribers:
            subscription.close()

    async def wait_closed(self, timeout: float) -> None:
        """Give the streams up to ``timeout`` seconds to send their last events and finish
        (each unsubscribes when its response is complete), before the server stops its loop."""
        deadline = time.monotonic() + timeout
        while self.subscribers and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    # -- the server's events ------------------------------------------------------------------

    def log(self, content: str, level: str = "info", **details: Any) -> None:
        self.publish(server_log(content, level, **details))

    def request(self, method: str, uri: str, status: int, seconds: float) -> None:
        level = "error" if status >= 500 else "warn" if status >= 400 else "info"
        ms = round(seconds * 1000, 2)
        self.log(
            f"{method} {uri} {status} {ms:.2f}ms",
            level,
            event="request",
            method=method,
            path=uri,
            status=status,
            durationMs=ms,
        )

    def manager_event(self, event: str, fields: dict[str, Any]) -> None:
        """The ModelManager's observer (``ModelManager.listeners``)."""
        if event == "prediction_input":
            self.publish(
                {
                    "type": "llm.prediction.input",
                    "input": fields["prompt"],
                    "modelPath": fields["path"],
                    "modelIdentifier": fields["identifier"],
                }
            )
        elif event == "prediction_output":
            outcome: Outcome | None = fields["outcome"]
            data: Event = {"type": "llm.prediction.output", "output": fields["text"]}
            if outcome is not None:
                data["stats"] = prediction_stats(outcome)
            data["modelIdentifier"] = fields["identifier"]
            self.publish(data)
        elif event == "loaded":
            how = " (JIT)" if fields["jit"] else ""
            self.log(
                f"Loaded {fields['key']} as '{fields['identifier']}'{how} in {fields['load_time']:.2f}s, "
                f"context {fields['context_length']}",
                event="load",
                **fields,
            )
        elif event == "load_failed":
            content = f"Failed to load {fields['key']}: {fields['message']}"
            self.log(content, "error", event="load_failed", **fields)
        elif event == "unloaded":
            level = "warn" if fields["reason"] == "worker exited" else "info"
            self.log(_UNLOADED[fields["reason"]].format(**fields), level, event="unload", **fields)


_UNLOADED = {
    "requested": "Unloaded '{identifier}'",
    "ttl": "Unloaded '{identifier}': idle for its TTL",
    "evicted": "Auto-evicted JIT-loaded '{identifier}' to make room",
    "worker exited": "Unloaded '{identifier}': {message}",
}


def prediction_stats(outcome: Outcome) -> dict[str, Any]:
    """LM Studio's ``LLMPredictionStats`` (camelCase) for an output event."""
    return {
        "stopReason": outcome.stop_reason,
        "tokensPerSecond": round(outcome.tokens_per_second, 3),
        "timeToFirstTokenSec": round(outcome.time_to_first_token, 4),
        "totalTimeSec": round(outcome.generation_time, 4),
        "promptTokensCount": outcome.prompt_tokens,
        "predictedTokensCount": outcome.completion_tokens,
        "totalTokensCount": outcome.prompt_tokens + outcome.completion_tokens,
        "cachedPromptTokensCount": outcome.cached_tokens,
    }
