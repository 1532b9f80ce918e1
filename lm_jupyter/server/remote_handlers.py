"""``/api/v1/remotes``: list, add and remove remote upstreams (``lmj remote``, ``%lms remote``).

Only the Jupyter identity may call them, as for tokens: an upstream entry decides where this
server sends prompts, and listing shows internal URLs. The entries hold no secret, only the name
of the environment variable with the upstream's key.
"""

from __future__ import annotations

import json

from tornado import web

from ..api.errors import APIError
from ..engine.remote.routing import RoutedManager
from .handlers import BaseHandler
from .remote_config import RemoteConfig

REMOTES_SETTING = "lm_jupyter_remotes"  # the RemoteConfig, in the Tornado application's settings


class _RemotesBase(BaseHandler):
    @property
    def config(self) -> RemoteConfig:
        return self.settings[REMOTES_SETTING]

    async def listing(self) -> list[dict[str, object]]:
        assert isinstance(self.manager, RoutedManager)
        await self.manager.remotes.refresh()
        return self.manager.remotes.status()


class RemotesHandler(_RemotesBase):
    """Remote upstreams: list them with their state (GET) or add one (POST); Jupyter identity only."""

    @web.authenticated
    async def get(self) -> None:
        self.require_jupyter_identity("list remote upstreams")
        self.write_json({"object": "list", "data": await self.listing()})

    @web.authenticated
    async def post(self) -> None:
        self.require_jupyter_identity("add remote upstreams")
        try:
            entry = json.loads(self.request.body or b"null")
        except ValueError:
            raise APIError("The request body is not valid JSON.", code="invalid_json") from None
        upstream = self.config.add(entry)
        rows = [row for row in await self.listing() if row["name"] == upstream.name]
        self.set_status(201)
        self.write_json(rows[0])


class RemoteHandler(_RemotesBase):
    """Remove a remote upstream added with `lmj remote add`; Jupyter identity only."""

    @web.authenticated
    async def delete(self, name: str) -> None:
        self.require_jupyter_identity("remove remote upstreams")
        removed = self.config.remove(name)
        self.write_json({**removed.public(), "deleted": True})


ROUTES: list[tuple[str, type[BaseHandler]]] = [
    (r"/api/v1/remotes", RemotesHandler),
    (r"/api/v1/remotes/([^/]+)", RemoteHandler),
]
