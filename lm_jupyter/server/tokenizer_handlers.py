"""Thin handlers for llama-server's ``/tokenize`` and ``/detokenize`` (llama-server serves them
at the root, not under ``/v1``, and so do we)."""

from __future__ import annotations

from tornado import web

from ..api.requests import parse_request
from ..api.tokenizer import DetokenizeRequest, TokenizeRequest, tokenize_body
from ..engine import tokenizing
from .handlers import BaseHandler


class TokenizeHandler(BaseHandler):
    """llama-server's tokenizer route."""

    body_model = TokenizeRequest

    @web.authenticated
    async def post(self) -> None:
        request = parse_request(TokenizeRequest, self.request.body)
        result = await tokenizing.tokenize(
            self.manager,
            request.model,
            request.content,
            add_special=request.add_special,
            parse_special=request.parse_special,
            with_pieces=request.with_pieces,
        )
        self.write_json(tokenize_body(result["tokens"], result.get("pieces")))


class DetokenizeHandler(BaseHandler):
    """llama-server's detokenizer route."""

    body_model = DetokenizeRequest

    @web.authenticated
    async def post(self) -> None:
        request = parse_request(DetokenizeRequest, self.request.body)
        content = await tokenizing.detokenize(self.manager, request.model, request.tokens)
        self.write_json({"content": content})


ROUTES: list[tuple[str, type[BaseHandler]]] = [
    (r"/tokenize", TokenizeHandler),
    (r"/detokenize", DetokenizeHandler),
]
