"""Thin handlers for Anthropic's Messages API: ``/v1/messages`` and ``/v1/messages/count_tokens``.

A Messages request is generated as a chat completion (``api/anthropic.py`` builds it, the
manager runs it) and written back as a message or Anthropic's event stream
(``api/anthropic_events.py``). Keys come as ``x-api-key`` or Bearer; errors are in Anthropic's
shape, also mid-stream as an ``error`` event.
"""

from __future__ import annotations

import contextlib
import json
import logging

from tornado import web
from tornado.iostream import StreamClosedError

from ..api import anthropic
from ..api.anthropic import MessagesInput, MessagesRequest
from ..api.anthropic_events import MessageEvents
from ..api.errors import APIError
from ..api.presets import parse_with_preset
from ..api.requests import ChatCompletionRequest, parse_request
from ..api.sse import sse_event
from ..engine.tokenizing import count_chat_tokens
from . import metrics
from .handlers import BaseHandler
from .presets import PRESETS_SETTING
from .turn_output import drain

log = logging.getLogger("lm_jupyter")


class _AnthropicHandler(BaseHandler):
    accepts_x_api_key = True
    error_format = "anthropic"
    credentials_hint = "'x-api-key: <token>' or 'Authorization: Bearer <token>'"

    def chat_request(self, request: MessagesInput) -> ChatCompletionRequest:
        body = anthropic.chat_request(request, json.loads(self.request.body))
        return parse_with_preset(
            ChatCompletionRequest, json.dumps(body).encode(), self.settings[PRESETS_SETTING].for_request
        )


class MessagesHandler(_AnthropicHandler):
    """Anthropic's Messages API."""

    body_model = MessagesRequest

    @web.authenticated
    async def post(self) -> None:
        request = parse_request(MessagesRequest, self.request.body)
        instance, turn = await self.manager.chat(self.chat_request(request))
        self.generation = turn
        events = MessageEvents(instance.identifier, thinking=request.thinking_display())
        events.start(turn.generation.prompt_tokens)
        if request.stream:
            await self.stream(events)
        else:
            async for delta in turn:
                events.delta(delta)
            assert turn.outcome is not None
            events.finish(turn.outcome, turn.outcome.stop_string)
            self.write_json(events.message)
        if turn.outcome is not None:
            metrics.record(instance.identifier, "messages", turn.outcome)

    async def stream(self, events: MessageEvents) -> None:
        turn = self.generation
        assert turn is not None
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        deltas = aiter(turn)  # held: after a disconnect, drained to its end (see handlers.py)
        try:
            await self.send(events)
            async for delta in deltas:
                events.delta(delta)
                await self.send(events)
            assert turn.outcome is not None
            events.finish(turn.outcome, turn.outcome.stop_string)
            await self.send(events)
        except StreamClosedError:
            await turn.cancel()
            await drain(deltas)
            return
        except APIError as exc:
            log.warning("Error after streaming began: %s", exc.message)
            events.fail(anthropic.error_body(exc))
            with contextlib.suppress(StreamClosedError):
                await self.send(events)
        self.finish()

    async def send(self, events: MessageEvents) -> None:
        for name, payload in events.drain():
            self.write(sse_event(name, payload))
        await self.flush()


class CountTokensHandler(_AnthropicHandler):
    """Anthropic's token count of a Messages request."""

    body_model = MessagesInput

    @web.authenticated
    async def post(self) -> None:
        request = parse_request(MessagesInput, self.request.body)
        _instance, count = await count_chat_tokens(self.manager, self.chat_request(request))
        self.write_json({"input_tokens": count})


ROUTES: list[tuple[str, type[BaseHandler]]] = [
    (r"/v1/messages", MessagesHandler),
    (r"/v1/messages/count_tokens", CountTokensHandler),
]
