"""Every path under the extension's prefixes that no route takes: a JSON 404 in OpenAI's format.

Without these, Tornado answers with Jupyter's HTML 404 page, which embeds the caller's Jupyter
token; SDKs put that page into exception messages, so the token would end up in tracebacks and
logs. ``app.initialize_handlers`` registers ``FALLBACK_ROUTES`` after every route in
``app.ROUTES`` and Tornado takes the first pattern that matches, so a route added to
``ROUTES`` (by any module, on any branch) is never shadowed by them.
"""

from __future__ import annotations

from tornado import web

from ..api.errors import APIError
from .handlers import BaseHandler


class NotFoundHandler(BaseHandler):
    """An unknown route (see the module doc)."""

    @web.authenticated
    async def get(self, *_args: str) -> None:
        raise APIError(
            f"There is no route {self.request.method} {self.request.path} on this server. "
            "GET /v1/openapi.json lists every route.",
            status=404,
            code="not_found",
        )

    post = put = patch = delete = get


# The prefixes the extension owns.
FALLBACK_ROUTES: list[tuple[str, type[BaseHandler]]] = [
    (r"/v1(/.*)?", NotFoundHandler),
    (r"/api/v0(/.*)?", NotFoundHandler),
    (r"/api/v1(/.*)?", NotFoundHandler),
]
