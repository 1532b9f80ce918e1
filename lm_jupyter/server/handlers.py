"""Thin Tornado handlers: parse the request, call the ModelManager, write the wire format.

Every verb is ``@web.authenticated``: by an lm_jupyter API token (``server/auth.py``) or
through Jupyter's own auth, so the Jupyter token works as an OpenAI ``api_key``
(``Authorization: Bearer <token>``) too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from pydantic import BaseModel
from tornado import web
from tornado.iostream import StreamClosedError

from ..api import completions as shapes
from ..api import models as model_shapes
from ..api.anthropic import error_body as anthropic_error_body
from ..api.errors import APIError
from ..api.lmstudio_chat_events import error_body as lmstudio_error_body
from ..api.logprobs import ChoiceLogprobs
from ..api.presets import Preset, parse_with_preset
from ..api.requests import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    InfillRequest,
    LoadRequest,
    SamplingRequest,
    UnloadRequest,
    parse_request,
)
from ..api.sse import DONE, sse_data
from ..engine.catalog import sole_llm
from ..engine.instance import Instance, LoadOptions
from ..engine.manager import ModelManager
from ..engine.remote.turn import RemoteTarget, RemoteTurn
from ..engine.turn import Turn
from . import metrics
from .auth import ApiTokenAuthHandler
from .log_bus import LOG_BUS_SETTING
from .presets import PRESETS_SETTING
from .turn_output import drain, entries, fresh_entries, model_card

log = logging.getLogger("lm_jupyter")

# The most bytes a request body may have (LmJupyterApp.max_request_bytes), in the Tornado settings.
MAX_BODY_SETTING = "lm_jupyter_max_request_bytes"


class BaseHandler(ApiTokenAuthHandler):
    """Errors in OpenAI's format whichever layer raised them."""

    manager: ModelManager
    # The pydantic model a POST/PUT body is validated with, which the OpenAPI description
    # (server/openapi.py) publishes; None for routes without a JSON body.
    body_model: ClassVar[type[BaseModel] | None] = None
    error_format: ClassVar[str] = "openai"  # the error body's shape (ERROR_BODIES), also in OpenAPI
    credentials_hint: ClassVar[str] = "'Authorization: Bearer <token>'"

    def initialize(self, manager: ModelManager) -> None:
        self.manager = manager
        self.generation: Turn | RemoteTurn | None = None
        self.starting: asyncio.Future[Any] | None = None  # a generation being set up
        self.client_gone = False

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        limit = self.settings.get(MAX_BODY_SETTING, 0)
        if limit and len(self.request.body) > limit:
            raise APIError(
                f"The request body is {len(self.request.body)} bytes, more than this server accepts "
                f"({limit}, LmJupyterApp.max_request_bytes).",
                status=413,
                code="request_too_large",
            )

    def get_login_url(self) -> str:
        raise web.HTTPError(401)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, APIError):
            level = logging.ERROR if value.status >= 500 else logging.INFO
            log.log(
                level, "%s %s -> %d: %s", self.request.method, self.request.path, value.status, value.message
            )
        else:
            super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = self.error_for(status_code, kwargs.get("exc_info", (None, None, None))[1])
        if error.retry_after is not None:
            self.set_header("Retry-After", str(error.retry_after))
        self.set_status(error.status)
        self.finish(json.dumps(ERROR_BODIES[self.error_format](error)))

    def error_for(self, status_code: int, exc: BaseException | None) -> APIError:
        if isinstance(exc, APIError):
            return exc
        if (refusal := self._jupyter_refusal(status_code)) is not None:
            return refusal
        if status_code in (401, 403) and not self.current_user:
            # Jupyter's XSRF check answers 403 to a POST with no known token; for API clients
            # both mean "no valid credentials", which OpenAI SDKs expect as a 401.
            return APIError(
                "Authentication required: send the Jupyter server's token (or an lm_jupyter API "
                f"token) as {self.credentials_hint}.",
                status=401,
                code="invalid_api_key",
            )
        if isinstance(exc, web.HTTPError) and status_code < 500:
            return APIError(exc.log_message or exc.reason or "Bad request", status=status_code)
        return APIError("Internal server error; see the Jupyter server log.", status=500, type="server_error")

    def write_json(self, body: dict[str, Any]) -> None:
        self.finish(json.dumps(body, ensure_ascii=False))

    def on_connection_close(self) -> None:
        self.client_gone = True
        if self.starting is not None and not self.starting.done():
            log.info("Client disconnected before its generation started. Cancelling it...")
            self.starting.cancel()  # the manager cancels whatever it has sent to the worker
        elif self.generation is not None:
            log.info("Client disconnected. Stopping generation...")
            self._cancel_task = asyncio.ensure_future(self.generation.cancel())

    def on_finish(self) -> None:
        """Every request to our routes goes to the live log (``lmj log stream --source server``)."""
        bus = self.settings.get(LOG_BUS_SETTING)
        if bus is not None:
            request = self.request
            bus.request(request.method or "", request.uri or "", self.get_status(), request.request_time())
        super().on_finish()


class _GenerationHandler(BaseHandler):
    """Shared streaming and non-streaming paths of chat completions and completions."""

    lmstudio = False  # the /api/v0 twins add stats, model_info and runtime
    infill = False  # llama-server's /infill answers in its own shape, streamed without [DONE]

    def find_preset(self, name: str) -> Preset:
        """The preset a request's ``preset`` field names (applied by ``parse_with_preset``)."""
        return self.settings[PRESETS_SETTING].for_request(name)

    async def run(
        self,
        start: Callable[[], Awaitable[tuple[Instance | RemoteTarget, Turn | RemoteTurn]]],
        request: SamplingRequest,
        *,
        chat: bool,
    ) -> None:
        if self.client_gone:  # it went away while the body was being parsed
            return
        self.starting = asyncio.ensure_future(start())
        try:
            instance, self.generation = await self.starting
        except asyncio.CancelledError:
            if self.client_gone:  # nobody is left to answer
                return
            raise
        if self.client_gone:  # it went away just as the generation started
            await self.generation.cancel()
            await drain(aiter(self.generation))
            return
        env = shapes.Envelope(shapes.new_id("chatcmpl-" if chat else "cmpl-"), instance.identifier)
        card = model_card(instance) if self.lmstudio else None
        logprobs = ChoiceLogprobs(chat=chat, wanted=request.top_logprobs_count() is not None)
        echo = await _echo_text(instance, request)
        if not isinstance(self.generation, Turn) and echo is not None:
            await self.generation.cancel()
            await drain(aiter(self.generation))
            raise APIError(
                f"'{instance.identifier}' is a remote upstream: echo (the prompt's logprobs) is not "
                "relayed from remote upstreams; ask the upstream directly.",
                param="echo",
                code="unsupported_parameter",
            )
        if not request.stream:
            turn = self.generation
            async for _delta in turn:
                pass
            assert turn.outcome is not None
            metrics.record(instance.identifier, "chat" if chat else "completion", turn.outcome)
            if chat:
                message = turn.message.message()
                lp = logprobs.of(entries(turn, False))
                body = shapes.chat_completion(env, message, turn.outcome, lmstudio=card, logprobs=lp)
            elif self.infill:
                body = shapes.infill_chunk(env, turn.text(), turn.outcome)
            else:
                text = (echo or "") + turn.text()
                lp = logprobs.of((entries(turn, True) if echo is not None else []) + entries(turn, False))
                body = shapes.text_completion(env, text, turn.outcome, lmstudio=card, logprobs=lp)
            self.write_json(body)
            return
        await self.stream(
            env, chat=chat, include_usage=request.include_usage(), card=card, logprobs=logprobs, echo=echo
        )
        if self.generation.outcome is not None:
            metrics.record(instance.identifier, "chat" if chat else "completion", self.generation.outcome)

    async def stream(
        self,
        env: shapes.Envelope,
        *,
        chat: bool,
        include_usage: bool,
        card: shapes.ModelCard | None,
        logprobs: ChoiceLogprobs,
        echo: str | None,
    ) -> None:
        """``echo``: the prompt, sent first (with its logprobs) on completions with ``echo``."""
        assert self.generation is not None
        fresh = fresh_entries(self.generation)
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        obj = "chat.completion.chunk" if chat else "text_completion"
        # Held, not re-created: after a disconnect drain() reads this same stream to its end
        # (a dropped iterator would be finalized, forgetting the request before its `done`).
        deltas = aiter(self.generation)
        try:
            if chat:  # the role arrives at once, before the first token, as OpenAI does
                await self.send(shapes.chat_chunk(env, {"role": "assistant", "content": ""}))
            async for delta in deltas:
                if "prompt_progress" in delta:  # return_progress: before the first token
                    if not self.infill:
                        await self.send(shapes.progress_chunk(env, delta["prompt_progress"], chat=chat))
                    continue
                if echo is not None:  # the prompt's scores have all arrived before its first token
                    prompt = logprobs.of(entries(self.generation, True))
                    await self.send(shapes.completion_chunk(env, echo, logprobs=prompt))
                    echo = None
                await self.send(self._chunk(env, delta, chat=chat, logprobs=logprobs.of_some(fresh())))
            if echo is not None:  # max_tokens 0: the prompt is the whole answer
                prompt = logprobs.of(entries(self.generation, True))
                await self.send(shapes.completion_chunk(env, echo, logprobs=prompt))
            outcome = self.generation.outcome
            assert outcome is not None
            if self.infill:
                await self.send(shapes.infill_chunk(env, "", outcome))
                self.finish(set_content_type="text/event-stream")
                return
            rest = logprobs.of_some(fresh())
            final = (
                shapes.chat_chunk(env, {}, outcome.finish_reason, logprobs=rest)
                if chat
                else shapes.completion_chunk(env, "", outcome.finish_reason, logprobs=rest)
            )
            # /api/v0 puts its stats on the finish chunk; /v1 its draft counters on the last chunk.
            stats = shapes.stream_stats(outcome, lmstudio=card is not None)
            on_usage = include_usage and card is None
            if stats and not on_usage:
                final["stats"] = stats
            await self.send(final)
            if include_usage:
                await self.send(shapes.usage_chunk(env, obj, outcome, stats=stats if on_usage else None))
        except StreamClosedError:
            await self.generation.cancel()
            await drain(deltas)
            return
        except APIError as exc:
            log.warning("Error after streaming began: %s", exc.message)
            await self._send_quietly(exc.body())
        try:
            self.write(DONE)
            await self.flush()
        except StreamClosedError:
            return
        self.finish(set_content_type="text/event-stream")

    def _chunk(
        self, env: shapes.Envelope, delta: dict[str, Any], *, chat: bool, logprobs: dict[str, Any] | None
    ) -> dict[str, Any]:
        if chat:
            return shapes.chat_chunk(env, delta, logprobs=logprobs)
        if self.infill:
            return shapes.infill_chunk(env, delta["content"])
        return shapes.completion_chunk(env, delta["content"], logprobs=logprobs)

    async def send(self, payload: dict[str, Any]) -> None:
        self.write(sse_data(payload))
        await self.flush()

    async def _send_quietly(self, payload: dict[str, Any]) -> None:
        with contextlib.suppress(StreamClosedError):
            await self.send(payload)


class ChatCompletionsHandler(_GenerationHandler):
    """OpenAI chat completions."""

    body_model = ChatCompletionRequest

    @web.authenticated
    async def post(self) -> None:
        request = parse_with_preset(ChatCompletionRequest, self.request.body, self.find_preset)
        await self.run(lambda: self.manager.chat(request), request, chat=True)


class CompletionsHandler(_GenerationHandler):
    """OpenAI (legacy) text completions."""

    body_model = CompletionRequest

    @web.authenticated
    async def post(self) -> None:
        request = parse_with_preset(CompletionRequest, self.request.body, self.find_preset)
        await self.run(lambda: self.manager.complete(request), request, chat=False)


class InfillHandler(_GenerationHandler):
    """llama-server's ``/infill``, for editor plugins written against it (llama.vim, llama.vscode)."""

    body_model = InfillRequest
    infill = True

    @web.authenticated
    async def post(self) -> None:
        request = parse_request(InfillRequest, self.request.body)
        if not request.model:
            request.model = sole_llm(self.manager.instances.values())
        await self.run(lambda: self.manager.complete(request), request, chat=False)


class EmbeddingsHandler(BaseHandler):
    """OpenAI embeddings."""

    body_model = EmbeddingRequest

    @web.authenticated
    async def post(self) -> None:
        request = parse_request(EmbeddingRequest, self.request.body)
        instance, result = await self.manager.embed(request.model, request.inputs(), ttl=request.ttl)
        self.write_json(
            shapes.embeddings(
                instance.identifier, result["vectors"], result["prompt_tokens"], request.encoding_format
            )
        )


class V0ChatCompletionsHandler(ChatCompletionsHandler):
    lmstudio = True


class V0CompletionsHandler(CompletionsHandler):
    lmstudio = True


class V1LoadHandler(BaseHandler):
    """Load a model (LM Studio's /api/v1/models/load)."""

    body_model = LoadRequest

    @web.authenticated
    async def post(self) -> None:
        request = parse_request(LoadRequest, self.request.body)
        options = load_options(request)
        instance = await self.manager.load(request.model, options, force=request.force)
        body: dict[str, Any] = {
            "type": model_shapes.V1_TYPES[instance.model.facts.type],
            "instance_id": instance.identifier,
            "load_time_seconds": instance.load_time,
            "status": "loaded",
            "device": model_shapes.device(instance.gpu_offload),
            "gpu_offload": instance.gpu_offload,
        }
        if options.gpu and not instance.on_gpu:
            body["message"] = (
                "No GPU offload is available in this llama.cpp build: the model runs on the CPU."
            )
        if request.echo_load_config:
            body["load_config"] = instance.describe().to_json()["config"]
        body["memory"] = instance.memory  # the estimate and what the worker measured
        self.write_json(body)


class V1UnloadHandler(BaseHandler):
    """Unload a model instance."""

    body_model = UnloadRequest

    @web.authenticated
    async def post(self) -> None:
        request = parse_request(UnloadRequest, self.request.body)
        await self.manager.unload(request.instance_id)
        self.write_json({"instance_id": request.instance_id})


# Error bodies by a handler's ``error_format``: OpenAI's, Anthropic's on the Messages API, LM Studio's
# v1 shape on /api/v1/chat.
ERROR_BODIES: dict[str, Callable[[APIError], dict[str, Any]]] = {
    "openai": APIError.body,
    "anthropic": anthropic_error_body,
    "lmstudio": lmstudio_error_body,
}


async def _echo_text(instance: Instance | RemoteTarget, request: SamplingRequest) -> str | None:
    """With ``echo``: the prompt's text; a prompt of token ids as the model spells them."""
    if not isinstance(request, CompletionRequest) or not request.echo:
        return None
    tokens = request.prompt_tokens()
    if tokens is None or not isinstance(instance, Instance):
        return request.prompt_text()
    return await instance.detokenize(tokens)


def load_options(request: LoadRequest) -> LoadOptions:
    return LoadOptions(
        context_length=request.context_length,
        identifier=request.identifier,
        ttl=request.ttl,
        gpu=request.gpu_ratio(),
        parallel=request.parallel,
        flash_attention=request.flash_attention,
        draft_model=request.draft_model,
        num_draft_tokens=request.num_draft_tokens,
        draft_min_probability=request.draft_min_probability,
    )


ROUTES: list[tuple[str, type[BaseHandler]]] = [
    (r"/v1/chat/completions", ChatCompletionsHandler),
    (r"/v1/completions", CompletionsHandler),
    (r"/v1/embeddings", EmbeddingsHandler),
    (r"/infill", InfillHandler),
    (r"/api/v0/chat/completions", V0ChatCompletionsHandler),
    (r"/api/v0/completions", V0CompletionsHandler),
    (r"/api/v0/embeddings", EmbeddingsHandler),
    (r"/api/v1/models/load", V1LoadHandler),
    (r"/api/v1/models/unload", V1UnloadHandler),
]
