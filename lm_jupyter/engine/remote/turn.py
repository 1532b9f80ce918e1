"""One proxied generation, shaped like a local ``Turn`` so handlers and ``/v1/responses`` use both.

The upstream exchange runs in a task of its own that hands each SSE payload over as it arrives
(nothing is collected first), so ``cancel()`` can stop it at any await: cancelling the task
closes the upstream connection, and vLLM, llama-server and lm_jupyter all stop generating when
their client goes away. The payloads are read into the typed chat events the local parsers
produce, and ``AssistantMessage`` turns them into the client's deltas, with reasoning under the
client's chosen field, and into the whole message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from ...api.completions import Outcome
from ...api.errors import APIError
from ...api.remote import parse_embeddings, upstream_body
from ...api.requests import SamplingRequest
from ...chat.families import FALLBACK, FAMILIES, Family
from ...chat.output import AssistantMessage
from ...chat.upstream_output import ChunkReader, UpstreamStreamError
from .upstream import Upstream
from .upstreams import Notify, Remotes, RemoteTarget

log = logging.getLogger("lm_jupyter")

_END = object()  # the upstream finished
_STOPPED = object()  # cancel() stopped it


class RemoteTurn:
    def __init__(
        self,
        remotes: Remotes,
        target: RemoteTarget,
        path: str,
        body: dict[str, Any],
        *,
        chat: bool,
        reasoning_field: str | None,
        notify: Notify,
    ) -> None:
        self.remotes = remotes
        self.target = target
        self.path = path
        self.body = body
        self.notify = notify
        self.reader = ChunkReader(chat)
        self.message = AssistantMessage(reasoning_field)
        self.outcome: Outcome | None = None
        self.raw: list[str] = []
        self.upstream: Upstream | None = None
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._began = time.perf_counter()
        self._first: float | None = None
        self._sent_logprobs = 0  # entries new_logprobs() has handed out

    async def start(self) -> None:
        """Wait until an upstream has started answering (failover happens before this returns),
        so an upstream error is still a real HTTP error for the client."""
        self._task = asyncio.create_task(self._pump())
        try:
            first = await self._queue.get()
        except asyncio.CancelledError:  # the client left while the upstream was being asked
            self._task.cancel()
            raise
        if isinstance(first, BaseException):
            raise first
        if first is _END:
            raise self._broken("it answered with an empty stream")
        self._queue.put_nowait(first)  # read again by __aiter__, in order (the queue was empty)
        assert self.upstream is not None
        self.target = RemoteTarget(self.target.identifier, self.upstream.name, self.target.context_length)
        self.notify(
            "prediction_input",
            identifier=self.target.identifier,
            path=f"{self.upstream.name}:{self.target.identifier}",
            prompt=json.dumps(self.body.get("messages", self.body.get("prompt")), ensure_ascii=False),
        )

    async def _pump(self) -> None:
        try:
            async for payload in self.remotes.stream(
                self.target.identifier, self.path, self.body, self._started
            ):
                self._queue.put_nowait(payload)
        except asyncio.CancelledError:
            self._queue.put_nowait(_STOPPED)
        except APIError as exc:
            self._queue.put_nowait(exc)
        except Exception as exc:  # never leave the reader waiting on an empty queue
            log.exception("Proxying to a remote upstream failed")
            self._queue.put_nowait(self._broken(f"{type(exc).__name__}: {exc}"))
        else:
            self._queue.put_nowait(_END)

    def _started(self, upstream: Upstream) -> None:
        self.upstream = upstream

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        stopped = False
        while True:
            item = await self._queue.get()
            if item is _END or item is _STOPPED:
                stopped = item is _STOPPED
                break
            if isinstance(item, APIError):
                raise item
            for delta in self._deltas(item):
                yield delta
        if not stopped and not self.reader.done and self.reader.finish_reason is None:
            raise self._broken("the upstream ended its stream without finishing the answer")
        now = time.perf_counter()
        first = self._first if self._first is not None else now
        self.outcome = self.reader.outcome(first - self._began, now - self._began, stopped=stopped)
        self.notify(
            "prediction_output",
            identifier=self.target.identifier,
            text="".join(self.raw),
            outcome=self.outcome,
        )

    def _deltas(self, payload: str) -> list[dict[str, Any]]:
        try:
            events = self.reader.feed(payload)
        except UpstreamStreamError as exc:
            raise self._broken(f"it sent an error: {exc}") from None
        except ValueError as exc:
            raise self._broken(f"it sent a chunk that is not OpenAI's format ({exc})") from None
        deltas = []
        for event in events:
            if self._first is None:
                self._first = time.perf_counter()
            text = getattr(event, "text", None)
            if isinstance(text, str):
                self.raw.append(text)
            delta = self.message.add(event)
            if delta:
                deltas.append(delta)
        return deltas

    def _broken(self, why: str) -> APIError:
        name = self.upstream.name if self.upstream else self.target.upstream
        return APIError(
            f"The answer from remote upstream '{name}' broke off: {why}.",
            status=502,
            type="server_error",
            code="upstream_failed",
        )

    def text(self) -> str:
        return "".join(self.message.content)

    def new_logprobs(self) -> list[dict[str, Any]]:
        """The upstream's logprob entries that arrived since the last call (a stream's chunk)."""
        fresh = self.reader.logprobs[self._sent_logprobs :]
        self._sent_logprobs = len(self.reader.logprobs)
        return fresh

    async def cancel(self) -> None:
        """Stop the upstream exchange and wait until its connection is closed. Handlers may call
        this twice (the disconnect callback and the failed write both do): the task is cancelled
        once, since a second cancel landing while the first unwinds would cut short the closing
        of the upstream connection, which then stays open and the upstream keeps generating.
        Waiting is shielded for the same reason: a waiter cancelled in turn cancels nothing."""
        if self._task is None or self._task.done():
            return
        if not self._task.cancelling():
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._task)


async def proxy_generation(
    remotes: Remotes,
    target: RemoteTarget,
    request: SamplingRequest,
    *,
    chat: bool,
    reasoning_field: str | None,
    notify: Notify,
) -> RemoteTurn:
    """A chat completion or completion served by an upstream, started (see ``RemoteTurn.start``).

    The fields the client set are sent on (ours left out, see ``api/remote.upstream_body``)."""
    body = upstream_body(request.model_dump(mode="json", by_alias=True, exclude_unset=True))
    path = "/chat/completions" if chat else "/completions"
    turn = RemoteTurn(remotes, target, path, body, chat=chat, reasoning_field=reasoning_field, notify=notify)
    await turn.start()
    return turn


async def proxy_embeddings(
    remotes: Remotes, target: RemoteTarget, texts: list[str]
) -> tuple[RemoteTarget, dict[str, Any]]:
    """Embeddings from an upstream, in the shape a local worker returns them."""
    body = {"model": target.identifier, "input": texts, "encoding_format": "float"}
    upstream, answer = await remotes.post(target.identifier, "/embeddings", body)
    try:
        vectors, prompt_tokens = parse_embeddings(answer, len(texts))
    except ValueError as exc:
        raise APIError(
            f"Remote upstream '{upstream.name}' answered /v1/embeddings in a shape that is not "
            f"OpenAI's: {exc}.",
            status=502,
            type="server_error",
            code="upstream_failed",
        ) from None
    served = RemoteTarget(target.identifier, upstream.name, target.context_length)
    return served, {"vectors": vectors, "prompt_tokens": prompt_tokens}


def reasoning_family(model: str) -> Family:
    """The family whose reasoning rule applies (gpt-oss answers in ``reasoning``), by the model's
    name: a remote model's chat template is not ours to read."""
    return FAMILIES["gpt_oss"] if "gpt-oss" in model.lower() else FALLBACK
