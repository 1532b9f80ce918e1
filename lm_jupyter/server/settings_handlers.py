"""``/api/v1/settings``: the server settings that take effect at once, read and changed without a
browser (``lmj server settings``, LM Studio's server settings page).

``GET`` lists them with their values and help; ``PATCH {name: value, ...}`` changes them in the
running server (the Jupyter identity only: API tokens grant model access, not control of the
server). A change lasts until the server stops; for a lasting one start it with the setting
(``lmj server start --set NAME=VALUE`` or ``c.ModelManager.NAME`` / ``c.LmJupyterApp.NAME`` in
``jupyter_server_config.py``). Settings that size things at startup (memory guardrails, request
limits) are not here: they need a restart anyway.
"""

from __future__ import annotations

import json
from typing import Any

from tornado import web
from traitlets import Bool, Float, Integer, TraitError, Unicode

from ..api.errors import APIError
from ..api.server_settings import APP_SETTINGS, MANAGER_SETTINGS
from .auth import REQUIRE_AUTH_SETTING
from .handlers import BaseHandler
from .responses_handlers import MCP_TIMEOUT_SETTING, REMOTE_MCP_SETTING

# LmJupyterApp settings the handlers read from the Tornado settings, by those settings' keys.
APP_KEYS = {
    "enable_remote_mcp": REMOTE_MCP_SETTING,
    "mcp_timeout": MCP_TIMEOUT_SETTING,
    "require_auth": REQUIRE_AUTH_SETTING,
}
_AT_LEAST_ONE = ("max_jit_instances", "default_context_length")
_CHOICES = {"reasoning_format": ("auto", "reasoning_content", "reasoning", "none")}
APP_SETTING = "lm_jupyter_app"  # the LmJupyterApp, whose traits describe APP_SETTINGS


class SettingsHandler(BaseHandler):
    """The server's live settings."""

    @web.authenticated
    async def get(self) -> None:
        self.write_json(self._listing())

    @web.authenticated
    async def patch(self) -> None:
        self.require_jupyter_identity("change server settings")
        try:
            changes = json.loads(self.request.body or b"null")
        except ValueError:
            raise APIError("The request body is not valid JSON.", code="invalid_json") from None
        if not isinstance(changes, dict) or not changes:
            raise APIError(
                'Send a JSON object of settings to change, e.g. {"jit_ttl": 600}.', code="invalid_json"
            )
        checked = {name: self._checked(name, value) for name, value in changes.items()}
        for name, value in checked.items():  # all valid: apply them together
            if name in APP_SETTINGS:
                self.settings[APP_KEYS[name]] = value
            else:
                setattr(self.manager, name, value)
        self.write_json(self._listing())

    def _checked(self, name: str, value: Any) -> Any:
        trait = self._trait(name)
        if trait is None:
            known = ", ".join([*MANAGER_SETTINGS, *APP_SETTINGS])
            raise APIError(f"Unknown setting '{name}'; the settings are: {known}.", param=name)
        expected = _JSON_TYPES[type(trait)]
        if isinstance(value, bool) != (expected is bool) or not isinstance(value, expected):
            raise APIError(f"'{name}' must be {_NAMES[type(trait)]}.", param=name, code="invalid_type")
        if expected is not bool and expected is not str and value < (1 if name in _AT_LEAST_ONE else 0):
            raise APIError(f"'{name}' must not be below {1 if name in _AT_LEAST_ONE else 0}.", param=name)
        if name in _CHOICES and value not in _CHOICES[name]:
            raise APIError(f"'{name}' must be one of {', '.join(_CHOICES[name])}.", param=name)
        if name in MANAGER_SETTINGS:
            try:
                trait.validate(self.manager, value)
            except TraitError as exc:
                raise APIError(f"Invalid '{name}': {exc}", param=name, code="invalid_value") from None
        return float(value) if isinstance(trait, Float) else value

    def _trait(self, name: str) -> Any:
        if name in MANAGER_SETTINGS:
            return self.manager.traits()[name]
        if name in APP_SETTINGS:
            return self.settings[APP_SETTING].traits()[name]
        return None

    def _value(self, name: str) -> Any:
        if name in APP_SETTINGS:
            return self.settings.get(APP_KEYS[name])
        return getattr(self.manager, name)

    def _listing(self) -> dict[str, Any]:
        names = [*MANAGER_SETTINGS, *APP_SETTINGS]
        return {
            "settings": {name: self._value(name) for name in names},
            "help": {name: self._trait(name).help for name in names},
        }


_JSON_TYPES: dict[type, type | tuple[type, ...]] = {
    Bool: bool,
    Integer: int,
    Float: (int, float),
    Unicode: str,
}
_NAMES = {Bool: "true or false", Integer: "an integer", Float: "a number", Unicode: "a string"}

ROUTES: list[tuple[str, type[BaseHandler]]] = [(r"/api/v1/settings", SettingsHandler)]
