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
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from tornado import web
from tornado.iostream import StreamClosedError

from ..api import models as model_shapes
from ..api import responses as shapes
from ..api.errors import APIError, error_body
from ..api.presets import Preset, parse_with_preset
from ..api.requests import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    LoadRequest,
    SamplingRequest,
    UnloadRequest,
    parse_request,
)
from ..api.sse import DONE, sse_data
from ..engine.instance import Instance, LoadOptions
from ..engine.manager import ModelManager
from ..engine.turn import Turn
from . import metrics
from .auth import ApiTokenAuthHandler
from .log_bus import LOG_BUS_SETTING
from .presets import PRESETS_SETTING

log = logging.getLogger("lm_jupyter")


class BaseHandler(ApiTokenAuthHandler):
    """Errors in OpenAI's format whichever layer raised them."""

    manager: ModelManager

    def initialize(self, manager: ModelManager) -> None:
        self.manager = manager
        self.generation: Turn | None = None

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
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, APIError):
            if exc.retry_after is not None:
                self.set_header("Retry-After", str(exc.retry_after))
            status, body = exc.status, exc.body()
        elif status_code in (401, 403) and not self.current_user:
            # Jupyter's XSRF check answers 403 to a POST with no known token; for API clients
            # both mean "no valid credentials", which OpenAI SDKs expect as a 401.
            status = 401
            body = error_body(
                "Authentication required: send the Jupyter server's token (or an lm_jupyter API "
                "token) as 'Authorization: Bearer <token>'.",
                code="invalid_api_key",
            )
        elif isinstance(exc, web.HTTPError) and status_code < 500:
            status = status_code
            body = error_body(exc.log_message or exc.reason or "Bad request")
        else:
            status = 500
            body = error_body("Internal server error; see the Jupyter server log.", type="server_error")
        self.set_status(status)
        self.finish(json.dumps(body))

    def write_json(self, body: dict[str, Any]) -> None:
        self.finish(json.dumps(body, ensure_ascii=False))

    def on_connection_close(self) -> None:
        if self.generation is not None:
            log.info("Client disconnected. Stopping generation...")
            self._cancel_task = asyncio.ensure_future(self.generation.cancel())

    def on_finish(self) -> None:
        """Every request to our routes goes to the live log (``lmj log stream --source server``)."""
        bus = self.settings.get(LOG_BUS_SETTING)
        if bus is not None:
            request = self.request
            bus.request(request.method or "", request.uri or "", self.get_status(), request.request_time())
        super().on_finish()


class ModelsHandler(BaseHandler):
    @web.authenticated
    async def get(self) -> None:
        ids: list[str] = []
        for group in await self.manager.catalog():
            ids.append(group.key)
            if len(group.variants) > 1:
                ids += [variant.facts.key for variant in group.variants]
        ids += [ident for ident in self.manager.instances if ident not in ids]
        self.write_json(model_shapes.openai_models(ids))


class _GenerationHandler(BaseHandler):
    """Shared streaming and non-streaming paths of chat completions and completions."""

    lmstudio = False  # the /api/v0 twins add stats, model_info and runtime

    def find_preset(self, name: str) -> Preset:
        """The preset a request's ``preset`` field names (applied by ``parse_with_preset``)."""
        return self.settings[PRESETS_SETTING].for_request(name)

    async def run(
        self,
        start: Callable[[], Awaitable[tuple[Instance, Turn]]],
        request: SamplingRequest,
        *,
        chat: bool,
    ) -> None:
        instance, self.generation = await start()
        env = shapes.Envelope(shapes.new_id("chatcmpl-" if chat else "cmpl-"), instance.identifier)
        card = _model_card(instance) if self.lmstudio else None
        if not request.stream:
            turn = self.generation
            async for _delta in turn:
                pass
            assert turn.outcome is not None
            metrics.record(instance.identifier, "chat" if chat else "completion", turn.outcome)
            if chat:
                body = shapes.chat_completion(env, turn.message.message(), turn.outcome, lmstudio=card)
            else:
                body = shapes.text_completion(env, turn.text(), turn.outcome, lmstudio=card)
            self.write_json(body)
            return
        await self.stream(env, chat=chat, include_usage=request.include_usage(), card=card)
        if self.generation.outcome is not None:
            metrics.record(instance.identifier, "chat" if chat else "completion", self.generation.outcome)

    async def stream(
        self, env: shapes.Envelope, *, chat: bool, include_usage: bool, card: shapes.ModelCard | None
    ) -> None:
        assert self.generation is not None
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        obj = "chat.completion.chunk" if chat else "text_completion"
        # Held, not re-created: after a disconnect _drain() reads this same stream to its end
        # (a dropped iterator would be finalized, forgetting the request before its `done`).
        deltas = aiter(self.generation)
        try:
            if chat:  # the role arrives at once, before the first token, as OpenAI does
                await self.send(shapes.chat_chunk(env, {"role": "assistant", "content": ""}))
            async for delta in deltas:
                await self.send(
                    shapes.chat_chunk(env, delta) if chat else shapes.completion_chunk(env, delta["content"])
                )
            outcome = self.generation.outcome
            assert outcome is not None
            final = (
                shapes.chat_chunk(env, {}, outcome.finish_reason)
                if chat
                else shapes.completion_chunk(env, "", outcome.finish_reason)
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
            await _drain(deltas)
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

    async def send(self, payload: dict[str, Any]) -> None:
        self.write(sse_data(payload))
        await self.flush()

    async def _send_quietly(self, payload: dict[str, Any]) -> None:
        with contextlib.suppress(StreamClosedError):
            await self.send(payload)


class ChatCompletionsHandler(_GenerationHandler):
    @web.authenticated
    async def post(self) -> None:
        request = parse_with_preset(ChatCompletionRequest, self.request.body, self.find_preset)
        await self.run(lambda: self.manager.chat(request), request, chat=True)


class CompletionsHandler(_GenerationHandler):
    @web.authenticated
    async def post(self) -> None:
        request = parse_with_preset(CompletionRequest, self.request.body, self.find_preset)
        await self.run(lambda: self.manager.complete(request), request, chat=False)


class EmbeddingsHandler(BaseHandler):
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


class V0ModelsHandler(BaseHandler):
    @web.authenticated
    async def get(self, model_id: str | None = None) -> None:
        entries = []
        for group in await self.manager.catalog():
            if not group.instances:
                entries.append(model_shapes.v0_model(group.default.facts, None))
            entries += [model_shapes.v0_model(i.model.facts, i.describe()) for i in group.instances]
        if model_id is None:
            self.write_json({"object": "list", "data": entries})
            return
        for entry in entries:
            if model_id in (entry["id"], entry["id"].split("@", 1)[0]):
                self.write_json(entry)
                return
        raise APIError(
            f"Model '{model_id}' is not downloaded. Run `lmj ls` to see the models you have.",
            status=404,
            param="model",
            code="model_not_found",
        )


class V1ModelsHandler(BaseHandler):
    @web.authenticated
    async def get(self) -> None:
        models = [
            model_shapes.v1_model(
                group.default.facts,
                group.described(),
                variants=[variant.facts for variant in group.variants],
            )
            for group in await self.manager.catalog()
            if self.get_argument("loaded", None) is None or group.described()
        ]
        self.write_json({"models": models})


class V1LoadHandler(BaseHandler):
    @web.authenticated
    async def post(self) -> None:
        request = parse_request(LoadRequest, self.request.body)
        options = load_options(request)
        instance = await self.manager.load(request.model, options, force=request.force)
        body: dict[str, Any] = {
            "type": "embedding" if instance.model.facts.type == "embeddings" else "llm",
            "instance_id": instance.identifier,
            "load_time_seconds": instance.load_time,
            "status": "loaded",
            "device": "gpu" if instance.on_gpu else "cpu",
        }
        if options.gpu > 0 and not instance.on_gpu:
            body["message"] = (
                "No GPU offload is available in this llama.cpp build: the model runs on the CPU."
            )
        if request.echo_load_config:
            body["load_config"] = instance.describe().to_json()["config"]
        body["memory"] = instance.memory  # the estimate and what the worker measured
        self.write_json(body)


class V1UnloadHandler(BaseHandler):
    @web.authenticated
    async def post(self) -> None:
        request = parse_request(UnloadRequest, self.request.body)
        await self.manager.unload(request.instance_id)
        self.write_json({"instance_id": request.instance_id})


async def _drain(deltas: AsyncIterator[dict[str, Any]]) -> None:
    """After a cancel, read the turn to its end (the worker stops within a token), so it
    finishes like any other: instance idle at once, outcome ``userStopped`` in the log."""
    try:
        async for _delta in deltas:
            pass
    except APIError as exc:
        log.info("Stopped generation ended with an error: %s", exc.message)


def load_options(request: LoadRequest) -> LoadOptions:
    return LoadOptions(
        context_length=request.context_length,
        identifier=request.identifier,
        ttl=request.ttl,
        gpu=request.gpu_ratio(),
        parallel=request.parallel,
        flash_attention=request.flash_attention,
        draft_model=request.draft_model,
    )


def _model_card(instance: Instance) -> shapes.ModelCard:
    facts = instance.model.facts
    return shapes.ModelCard(
        arch=facts.arch, quant=facts.quantization, format="gguf", context_length=instance.context_length
    )


ROUTES: list[tuple[str, type[BaseHandler]]] = [
    (r"/v1/models", ModelsHandler),
    (r"/v1/chat/completions", ChatCompletionsHandler),
    (r"/v1/completions", CompletionsHandler),
    (r"/v1/embeddings", EmbeddingsHandler),
    (r"/api/v0/models", V0ModelsHandler),
    (r"/api/v0/models/(.+)", V0ModelsHandler),
    (r"/api/v0/chat/completions", V0ChatCompletionsHandler),
    (r"/api/v0/completions", V0CompletionsHandler),
    (r"/api/v0/embeddings", EmbeddingsHandler),
    (r"/api/v1/models", V1ModelsHandler),
    (r"/api/v1/models/load", V1LoadHandler),
    (r"/api/v1/models/unload", V1UnloadHandler),
]
