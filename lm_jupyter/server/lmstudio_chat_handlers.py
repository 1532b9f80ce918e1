"""``POST /api/v1/chat``: LM Studio 0.4's native chat, run as a ``/v1/responses`` run.

The chat is stateful through the same stored responses (its ``response_id`` is the stored
response's id), and its events are the run's, renamed (``api/lmstudio_chat_events.py``). What
only this route has: a just-in-time load announced on the stream (``model_load.start``/``end``)
and prompt-processing progress, which the worker reports per prompt chunk.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tornado import web
from tornado.iostream import StreamClosedError

from ..api.completions import PromptProgress
from ..api.errors import APIError
from ..api.lmstudio_chat import V1ChatRequest, check_reasoning, responses_body
from ..api.lmstudio_chat_events import V1ChatEvents, error_json, result
from ..api.requests import parse_request
from ..api.responses_chat import not_found
from ..engine.instance import Instance
from .handlers import BaseHandler
from .responses_handlers import _StoredHandler
from .responses_runner import ResponseRun


class V1ChatHandler(_StoredHandler):
    body_model = V1ChatRequest
    error_format = "lmstudio"

    chat = V1ChatEvents(hide_reasoning=False)
    started = False  # whether chat.start went out: later errors are events

    @web.authenticated
    async def post(self) -> None:
        request = parse_request(V1ChatRequest, self.request.body)
        body = responses_body(request, json.loads(self.request.body))
        run = self.new_run(json.dumps(body).encode(), tools_param="integrations")
        # Errors a client should get as a plain HTTP error come first: nothing is sent yet.
        previous = request.previous_response_id
        if previous is not None and await self.store.get(previous, self.owner) is None:
            raise not_found(previous, "previous_response_id")
        model = await self.manager.find(request.model)
        check_reasoning(request, request.model, model.facts.reasoning)
        loaded = self.manager.instances.get(request.model) or next(
            iter(self.manager.instances_of(model, request.model)), None
        )
        self.response_run = run
        self.chat = V1ChatEvents(hide_reasoning=request.reasoning == "off")
        self.started = False
        if not request.stream:
            instance = loaded or await self._load(request)
            await run.run(None)
            self.write_json(self._result(run, None if loaded else instance))
            return
        run.on_progress = self._progress
        try:
            instance = loaded
            if instance is None:
                await self.send_events([{"type": "chat.start", "model_instance_id": request.model}])
                self.started = True
                await self.send_events([{"type": "model_load.start", "model_instance_id": request.model}])
                instance = await self._load_with_progress(request, model.facts.key)
                end = {"model_instance_id": instance.identifier, "load_time_seconds": instance.load_time}
                await self.send_events([{"type": "model_load.end", **end}])
            await run.run(self._relay)
        except StreamClosedError:
            run.cancel()
            return
        except APIError as exc:  # after the stream began; a run's own later errors are events
            if not self.started:
                raise
            await self.send_events([{"type": "error", "error": error_json(exc)}])
        await self.send_events(
            [{"type": "chat.end", "result": self._result(run, None if loaded else instance)}]
        )
        self.finish(set_content_type="text/event-stream")

    async def _load_with_progress(self, request: V1ChatRequest, key: str) -> Instance:
        """The load, with the worker's ``load_progress`` for this model relayed as LM Studio's
        ``model_load.progress`` events while it runs (in order, before ``model_load.end``)."""
        progress: asyncio.Queue[float] = asyncio.Queue()

        def listener(event: str, fields: dict[str, Any]) -> None:
            if event == "load_progress" and fields.get("key") == key:
                progress.put_nowait(fields["progress"])

        self.manager.listeners.append(listener)
        loading = asyncio.ensure_future(self._load(request))
        try:
            while not loading.done() or not progress.empty():
                waiting = asyncio.ensure_future(progress.get())
                await asyncio.wait({loading, waiting}, return_when=asyncio.FIRST_COMPLETED)
                if not waiting.done():
                    waiting.cancel()
                    continue
                event = {"model_instance_id": request.model, "progress": waiting.result()}
                await self.send_events([{"type": "model_load.progress", **event}])
        finally:
            self.manager.listeners.remove(listener)
            if not loading.done():  # the client left: the load goes on for the next request
                loading.add_done_callback(lambda task: task.cancelled() or task.exception())
        return await loading

    async def _load(self, request: V1ChatRequest) -> Instance:
        return await self.manager.instance_for(
            request.model, ttl=request.ttl, context_length=request.context_length
        )

    def _result(self, run: ResponseRun, loaded_now: Instance | None) -> dict[str, Any]:
        return result(
            run.events.response,
            run.outcomes,
            run.instance_id,
            load_time=loaded_now.load_time if loaded_now is not None else None,
            hide_reasoning=self.chat.hide_reasoning,
        )

    async def _relay(self, events: list[dict[str, Any]]) -> None:
        """The run's events as LM Studio's; ``chat.start`` goes first once the instance is known."""
        out = []
        if not self.started:
            self.started = True
            assert self.response_run is not None
            out.append({"type": "chat.start", "model_instance_id": self.response_run.instance_id})
        for event in events:
            out += self.chat.translate(event)
        await self.send_events(out)

    async def _progress(self, progress: PromptProgress) -> None:
        await self._relay([])
        await self.send_events(self.chat.progress(progress))


ROUTES: list[tuple[str, type[BaseHandler]]] = [(r"/api/v1/chat", V1ChatHandler)]
