"""A loaded model instance and the generations running on it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ..api.errors import APIError
from ..api.models import LoadedInstance
from ..api.responses import Outcome
from .process import WorkerProcess
from .registry import LocalModel


@dataclass
class Instance:
    identifier: str
    model: LocalModel
    worker: WorkerProcess
    context_length: int
    n_vocab: int
    jit: bool
    load_time: float
    active: int = 0
    last_used: float = field(default_factory=time.time)

    @property
    def status(self) -> str:
        return "generating" if self.active else "idle"

    def describe(self) -> LoadedInstance:
        return LoadedInstance(
            identifier=self.identifier,
            key=self.model.facts.key,
            context_length=self.context_length,
            status=self.status,
            queued=self.active,
        )

    async def generate(self, params: dict[str, Any]) -> Generation:
        request_id, events = await self.worker.request("generate", params=params)
        return Generation(self, request_id, events)

    async def embed(self, texts: list[str]) -> dict[str, Any]:
        request_id, events = await self.worker.request("embed", input=texts)
        self.active += 1
        try:
            event = await events.get()
        finally:
            self.active -= 1
            self.last_used = time.time()
            self.worker.finished(request_id)
        _raise_if_error(self, event, param="input")
        return event


class Generation:
    """One streamed generation: ``start()`` surfaces errors before any byte is sent, then
    iterating yields text deltas and leaves the final :class:`Outcome` in ``outcome``."""

    def __init__(self, instance: Instance, request_id: str, events: Any) -> None:
        self.instance = instance
        self.request_id = request_id
        self.events = events
        self.outcome: Outcome | None = None
        self.prompt_tokens = 0
        self._closed = False
        instance.active += 1

    async def start(self, prompt_param: str) -> None:
        event = await self.events.get()
        if event["ev"] == "error":
            self.close()
        _raise_if_error(self.instance, event, param=prompt_param)
        if event["ev"] == "done":  # cancelled while it was still queued
            self.close()
            raise APIError("The request was cancelled.", status=499, code="cancelled")
        self.prompt_tokens = event["prompt_tokens"]

    async def __aiter__(self) -> AsyncIterator[str]:
        try:
            while True:
                event = await self.events.get()
                kind = event["ev"]
                if kind == "text":
                    yield event["text"]
                elif kind == "done":
                    self.outcome = Outcome(
                        stop_reason=event["stop_reason"],
                        prompt_tokens=event["prompt_tokens"],
                        completion_tokens=event["completion_tokens"],
                        time_to_first_token=event["time_to_first_token"],
                        generation_time=event["generation_time"],
                    )
                    return
                else:
                    _raise_if_error(self.instance, event, param=None)
        finally:
            self.close()

    async def cancel(self) -> None:
        if not self._closed:
            await self.instance.worker.cancel(self.request_id)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.instance.active -= 1
            self.instance.last_used = time.time()
            self.instance.worker.finished(self.request_id)


def _raise_if_error(instance: Instance, event: dict[str, Any], param: str | None) -> None:
    if event["ev"] != "error":
        return
    if event.get("died"):
        assert instance.worker.dead
        raise instance.worker.dead
    status = event.get("status", 500)
    raise APIError(
        event.get("message", "unknown error"),
        status=status,
        type="invalid_request_error" if status < 500 else "server_error",
        param=param if status < 500 else None,
        code=event.get("code"),
    )
