"""``POST /api/v1/models/estimate``: what a load would cost, without loading.

The body is a load request (``model``, ``context_length``, ``gpu``, ``flash_attention``);
the answer is LM Studio's ``{memory, passesGuardrails}`` (``lms load --estimate-only``) plus
the memory the verdict was measured against. See ``engine/guardrail.py``.
"""

from __future__ import annotations

from tornado import web

from ..api.requests import LoadRequest, parse_request
from .handlers import BaseHandler, load_options


class V1EstimateHandler(BaseHandler):
    """Estimate a load's memory and the guardrail's verdict."""

    body_model = LoadRequest

    @web.authenticated
    async def post(self) -> None:
        request = parse_request(LoadRequest, self.request.body)
        plan = await self.manager.estimate(request.model, load_options(request))
        self.write_json(plan.to_json())


ROUTES: list[tuple[str, type[BaseHandler]]] = [
    (r"/api/v1/models/estimate", V1EstimateHandler),
]
