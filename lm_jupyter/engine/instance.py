"""A loaded model instance and the generations running on it."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ..api.completions import Outcome, PromptProgress
from ..api.errors import APIError
from ..api.models import LoadedInstance
from .process import WorkerProcess
from .protocol import GenerateParams
from .registry import LocalModel


@dataclass(frozen=True)
class LoadOptions:
    """How to load an instance (``lms load`` flags / ``POST /api/v1/models/load`` fields)."""

    context_length: int | None = None
    identifier: str | None = None
    ttl: float | None = None  # idle seconds before unloading; None: never
    gpu: float | None = None  # fraction of layers to offload: 0 = off, 1 = max, None = as fits
    parallel: int = 4
    # On, as llama-server's ``-fa auto`` is on the CPU: faster decoding, smaller buffers.
    flash_attention: bool = True
    draft_model: str | None = None  # speculative decoding for requests that name no draft
    num_draft_tokens: int | None = None  # and its defaults for requests that set none
    draft_min_probability: float | None = None


@dataclass
class Instance:
    identifier: str
    model: LocalModel
    worker: WorkerProcess
    context_length: int
    n_vocab: int
    jit: bool
    load_time: float
    options: LoadOptions
    gpu_offload: float  # the fraction really offloaded (``options.gpu`` resolved; 0 on a CPU build)
    active: int = 0
    last_used: float = field(default_factory=time.monotonic)
    loaded_at: float = field(default_factory=time.monotonic)
    # The worker's measurements at load (rss_before, rss_after, model_size, llama.cpp's
    # buffers) and the estimate the guardrail judged: see engine/guardrail.py.
    memory: dict[str, Any] = field(default_factory=dict)
    max_token_bytes: int = 0  # the longest token text (engine/limits.py); 0: unknown

    @property
    def on_gpu(self) -> bool:
        return self.gpu_offload > 0

    @property
    def status(self) -> str:
        return "generating" if self.active else "idle"

    def idle_for(self, now: float) -> float:
        return 0.0 if self.active else now - self.last_used

    def ttl_remaining(self, now: float) -> float | None:
        if self.options.ttl is None:
            return None
        return max(0.0, self.options.ttl - self.idle_for(now))

    def describe(self) -> LoadedInstance:
        return LoadedInstance(
            identifier=self.identifier,
            key=self.model.facts.key,
            context_length=self.context_length,
            status=self.status,
            queued=self.active,
            jit=self.jit,
            ttl_seconds=self.options.ttl,
            ttl_remaining_seconds=self.ttl_remaining(time.monotonic()),
            memory_bytes=resident_bytes(self.worker.pid),
            parallel=self.options.parallel,
            gpu_offload=self.gpu_offload,
            flash_attention=self.options.flash_attention,
        )

    async def _generate(self, params: GenerateParams) -> Generation:
        """Send the generation; the ``Generation`` takes over the count its caller took."""
        try:
            request_id, events = await self.worker.request("generate", params=params)
        except BaseException:
            self.active -= 1
            raise
        return Generation(self, request_id, events)

    async def start_generation(self, params: GenerateParams, prompt_param: str) -> Generation:
        """Send a generation and wait until it starts. The client may go away at any await here
        (the handler then cancels the caller): what was sent to the worker is cancelled there
        too, never left generating for nobody.

        The request counts in ``active`` before the first await, so the manager's queue check of
        a request that arrives while this one is being sent already sees it."""
        self.active += 1
        sending = asyncio.ensure_future(self._generate(params))
        try:
            generation = await asyncio.shield(sending)
        except asyncio.CancelledError:
            sending.add_done_callback(_abandon_sent)
            raise
        try:
            await generation.start(prompt_param)
        except asyncio.CancelledError:
            await asyncio.shield(generation.abandon())
            raise
        return generation

    async def embed(self, texts: list[str]) -> dict[str, Any]:
        return await self._ask("embed", "input", input=texts)

    async def rank(self, query: str, documents: list[str]) -> dict[str, Any]:
        return await self._ask("rank", "documents", query=query, documents=documents)

    async def tokenize(self, text: str, **options: bool) -> dict[str, Any]:
        """Tokens (and with ``with_pieces``, pieces) of ``text``, with llama-server's options."""
        return await self._ask("tokenize", "content", text=text, **options)

    async def count_prompt(self, parts: list[tuple[str, bool]]) -> int:
        """The tokens of a chat prompt given as parts, tokenized as a generation's prompt is."""
        return len((await self._ask("tokenize", "messages", parts=parts))["tokens"])

    async def detokenize(self, tokens: list[int]) -> str:
        return (await self._ask("detokenize", "tokens", tokens=tokens))["content"]

    async def _ask(self, op: str, param: str, **fields: Any) -> dict[str, Any]:
        """One command with one answer; the instance counts as busy meanwhile (TTL, eviction)."""
        request_id, events = await self.worker.request(op, **fields)
        self.active += 1
        try:
            event = await events.get()
        finally:
            self.active -= 1
            self.last_used = time.monotonic()
            self.worker.finished(request_id)
        _raise_if_error(self, event, param=param)
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
        # With logprobs: every generated token's entry, and the prompt's with echo.
        self.logprobs: list[dict[str, Any]] = []
        self.prompt_logprobs: list[dict[str, Any]] = []
        self._logprobs_sent = 0
        self._closed = False  # close() gives back the count in instance.active it carries

    async def start(self, prompt_param: str) -> None:
        event = await self.events.get()
        if event["ev"] == "error":
            self.close()
        _raise_if_error(self.instance, event, param=prompt_param)
        if event["ev"] == "done":  # cancelled while it was still queued
            self.close()
            raise APIError("The request was cancelled.", status=499, code="cancelled")
        self.prompt_tokens = event["prompt_tokens"]

    async def __aiter__(self) -> AsyncIterator[str | PromptProgress]:
        try:
            while True:
                event = await self.events.get()
                kind = event["ev"]
                if kind == "text":
                    self.logprobs += event.get("logprobs", ())
                    if event["text"]:
                        yield event["text"]
                elif kind == "prompt_logprobs":
                    self.prompt_logprobs += event["logprobs"]
                elif kind == "prompt_progress":
                    yield PromptProgress(
                        event["processed"], event["total"], event["cached"], event["time_ms"]
                    )
                elif kind == "done":
                    self.outcome = Outcome(
                        stop_reason=event["stop_reason"],
                        prompt_tokens=event["prompt_tokens"],
                        completion_tokens=event["completion_tokens"],
                        time_to_first_token=event["time_to_first_token"],
                        generation_time=event["generation_time"],
                        cached_tokens=event.get("cached_tokens", 0),
                        draft=event.get("draft"),
                        stop_string=event.get("stop_string"),
                    )
                    return
                else:
                    _raise_if_error(self.instance, event, param=None)
        finally:
            self.close()

    def new_logprobs(self) -> list[dict[str, Any]]:
        """The entries that arrived since the last call: a stream sends each with the chunk
        its text went out in."""
        fresh = self.logprobs[self._logprobs_sent :]
        self._logprobs_sent = len(self.logprobs)
        return fresh

    async def cancel(self) -> None:
        if not self._closed:
            await self.instance.worker.cancel(self.request_id)

    async def abandon(self) -> None:
        """Stop a generation nobody will read: the worker skips or stops it, the slot is free."""
        await self.cancel()
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.instance.active -= 1
            self.instance.last_used = time.monotonic()
            self.instance.worker.finished(self.request_id)


def _abandon_sent(sending: asyncio.Future[Generation]) -> None:
    if not sending.cancelled() and sending.exception() is None:
        _abandoning.add(task := asyncio.ensure_future(sending.result().abandon()))
        task.add_done_callback(_abandoning.discard)


_abandoning: set[asyncio.Future[None]] = set()  # strong references until they finish


def resident_bytes(pid: int | None) -> int | None:
    """A worker's resident memory (Linux /proc; None where that is not available)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/statm") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


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
        param=(event.get("param") or param) if status < 500 else None,
        code=event.get("code"),
    )
