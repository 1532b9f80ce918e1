"""``GET /api/v1/logs/stream``: the live log (``server/log_bus.py``) as server-sent events.

Query: ``source=server,model`` (default ``model``), ``filter=input,output`` (model events;
default both), ``history=N`` (first replay up to N recent events, e.g. the server's startup).
Each event is one ``data: {"timestamp": ..., "data": {...}}`` frame. A comment line goes out
every ``HEARTBEAT`` seconds, so a client can tell a quiet server from a dead connection and the
server notices a client that went away. The stream ends when the client disconnects or the
server stops. Only the Jupyter identity may read it: the log shows every client's prompts and
answers, and an API token must see only its own requests (it gets a 403).
"""

from __future__ import annotations

from tornado import web
from tornado.iostream import StreamClosedError

from ..api.errors import APIError
from ..api.sse import sse_data
from .handlers import BaseHandler
from .log_bus import LOG_BUS_SETTING, LogBus, Subscription, parse_selection

HEARTBEAT = 15.0


class LogStreamHandler(BaseHandler):
    subscription: Subscription | None = None

    @web.authenticated
    async def get(self) -> None:
        # The log carries every client's prompts and answers: only the server's owner reads it.
        self.require_jupyter_identity("read the server's log stream (it shows every client's requests)")
        bus: LogBus = self.settings[LOG_BUS_SETTING]
        selection = parse_selection(self.get_argument("source", None), self.get_argument("filter", None))
        history = self.get_argument("history", "0")
        if not history.isdigit():
            raise APIError("Invalid 'history': a number of events (0 or more).", param="history")
        self.subscription = subscription = bus.subscribe(selection, int(history))
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        try:
            self.write(b": streaming logs\n\n")  # headers out now: the client knows it is subscribed
            await self.flush()
            while True:
                event = await subscription.get(HEARTBEAT)
                if event is None and subscription.closed:
                    break
                self.write(sse_data(event) if event is not None else b": keep-alive\n\n")
                await self.flush()
            await self.finish()  # the server is stopping: end the response properly
        except StreamClosedError:
            return
        finally:
            bus.unsubscribe(subscription)

    def on_connection_close(self) -> None:
        if self.subscription is not None:
            self.subscription.close()  # wakes get(): the loop ends
        super().on_connection_close()


ROUTES: list[tuple[str, type[BaseHandler]]] = [(r"/api/v1/logs/stream", LogStreamHandler)]
