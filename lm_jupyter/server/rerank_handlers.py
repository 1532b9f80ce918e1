"""Thin handler for reranking: ``/v1/rerank`` and ``/v2/rerank`` (Jina/Cohere shape), and
llama-server's bare ``/rerank``."""

from __future__ import annotations

from tornado import web

from ..api.requests import parse_request
from ..api.rerank import RerankRequest, rerank_body
from ..engine.reranking import rerank
from .handlers import BaseHandler


class RerankHandler(BaseHandler):
    """Jina's and Cohere's rerank API."""

    body_model = RerankRequest

    @web.authenticated
    async def post(self) -> None:
        request = parse_request(RerankRequest, self.request.body)
        instance, result = await rerank(
            self.manager,
            request.model,
            request.query,
            request.documents,
            cosine=request.cosine_fallback,
            ttl=request.ttl,
        )
        self.write_json(rerank_body(request, instance.identifier, result["scores"], result["prompt_tokens"]))


ROUTES: list[tuple[str, type[BaseHandler]]] = [
    (r"/v1/rerank", RerankHandler),
    (r"/v2/rerank", RerankHandler),
    (r"/rerank", RerankHandler),
]
