"""Routes that manage the server's own files: API tokens and presets.

Who may do what (docs/architecture.md, "Auth and presets"):

- tokens (list, create, revoke): the Jupyter identity only. An API token that could mint or
  list tokens would be a way to keep access after being revoked, so API tokens get a 403.
- presets: anyone authenticated may list, read and *use* them (they are part of using the
  models); only the Jupyter identity may save or delete them, because that writes files on
  the server, and API tokens grant model access only (DESIGN §3).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from tornado import web

from ..api.presets import Preset, parse_preset
from ..api.requests import parse_request
from .handlers import BaseHandler
from .presets import PRESETS_SETTING, PresetStore
from .tokens import TOKENS_SETTING, TokenStore


class CreateTokenRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    name: str = Field(min_length=1)
    expires_in_days: float | None = None  # checked by TokenStore.create


class _AdminHandler(BaseHandler):
    @property
    def tokens(self) -> TokenStore:
        return self.settings[TOKENS_SETTING]

    @property
    def presets(self) -> PresetStore:
        return self.settings[PRESETS_SETTING]


class TokensHandler(_AdminHandler):
    """List and create API tokens (Jupyter identity only)."""

    body_model = CreateTokenRequest

    @web.authenticated
    async def get(self) -> None:
        self.require_jupyter_identity("list API tokens")
        self.write_json({"object": "list", "data": self.tokens.listing()})

    @web.authenticated
    async def post(self) -> None:
        self.require_jupyter_identity("create API tokens")
        request = parse_request(CreateTokenRequest, self.request.body)
        token, entry = self.tokens.create(request.name, request.expires_in_days)
        self.set_status(201)
        self.write_json({**entry, "token": token})


class TokenHandler(_AdminHandler):
    @web.authenticated
    async def delete(self, name: str) -> None:
        self.require_jupyter_identity("revoke API tokens")
        self.write_json(self.tokens.revoke(name))


class PresetsHandler(_AdminHandler):
    @web.authenticated
    async def get(self) -> None:
        self.write_json({"object": "list", "data": self.presets.listing()})


class PresetHandler(_AdminHandler):
    """Read, save and delete one preset."""

    body_model = Preset

    @web.authenticated
    async def get(self, name: str) -> None:
        self.write_json({"name": name, **self.presets.require(name).to_json()})

    @web.authenticated
    async def put(self, name: str) -> None:
        self.require_jupyter_identity("save presets")
        self.write_json(self.presets.save(name, parse_preset(self.request.body)))

    @web.authenticated
    async def delete(self, name: str) -> None:
        self.require_jupyter_identity("delete presets")
        self.presets.delete(name)
        self.write_json({"name": name, "deleted": True})


ROUTES: list[tuple[str, type[BaseHandler]]] = [
    (r"/api/v1/tokens", TokensHandler),
    (r"/api/v1/tokens/([^/]+)", TokenHandler),
    (r"/api/v1/presets", PresetsHandler),
    (r"/api/v1/presets/([^/]+)", PresetHandler),
]
