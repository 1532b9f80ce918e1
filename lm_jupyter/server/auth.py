"""Authentication of lm_jupyter's routes: an lm_jupyter API token, else Jupyter's own auth.

Jupyter's ``JupyterHandler.prepare()`` asks the IdentityProvider for the user. A Bearer token
it does not know leaves the request unauthenticated, so a POST then fails the XSRF check (403)
before any handler code runs (DESIGN §3). So our base handler looks at the ``Authorization`` header
first. A valid ``sk-lmj-…`` token authenticates the request here, through the same steps as
Jupyter's ``prepare()`` with our user in place of the IdentityProvider's:

- the Host check (``check_host``) still applies;
- the XSRF check is skipped and the Origin check passes, exactly as Jupyter does for a request
  authenticated by its own token (``token_authenticated``): a Bearer header is not ambient
  like a cookie, so a foreign page cannot make a browser send it;
- CORS headers follow Jupyter's rules for token-authenticated requests;
- no login cookie is set. A cookie would be Jupyter's, and would open Jupyter's own routes
  (kernels, files) to the token's holder.

Everything else, including an ``sk-lmj-`` string that is not in the store (the Jupyter token
could be configured to look like one), goes to Jupyter's ``prepare()`` unchanged. Jupyter
never learns about API tokens, which is why they get nothing from ``/api/kernels``,
``/api/contents`` and the other Jupyter routes.
"""

from __future__ import annotations

from jupyter_server.auth.identity import User
from jupyter_server.base.call_context import CallContext
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..api.errors import APIError
from .tokens import TOKEN_PREFIX, TOKENS_SETTING, TokenRecord, TokenStore


def bearer_token(authorization: str) -> str | None:
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


class ApiTokenAuthHandler(APIHandler):
    """Base of every lm_jupyter handler: API tokens first, then Jupyter's auth."""

    api_token: TokenRecord | None = None  # set when an lm_jupyter API token authenticated us

    async def prepare(self) -> None:  # type: ignore[override]
        token = bearer_token(self.request.headers.get("Authorization", ""))
        store: TokenStore | None = self.settings.get(TOKENS_SETTING)
        record = None
        if token is not None and token.startswith(TOKEN_PREFIX) and store is not None:
            # No user yet: an error below must not make `current_user` ask Jupyter, which
            # refuses to answer before its own prepare() ran.
            self.current_user = self._jupyter_current_user = None
            record = store.verify(token)  # a revoked or expired token raises its own 401
        if record is None:
            await super().prepare()
            return
        # JupyterHandler.prepare() + APIHandler.prepare(), with our user (see module doc).
        CallContext.set(CallContext.JUPYTER_HANDLER, self)
        if not self.check_host():
            raise web.HTTPError(403)
        self.api_token = record
        user = User(username=f"lm_jupyter-token:{record.name}", name=record.name)
        self.current_user = self._jupyter_current_user = user
        self.set_cors_headers()
        if not self.check_origin():
            raise web.HTTPError(404)

    @property
    def token_authenticated(self) -> bool:
        return self.api_token is not None or super().token_authenticated

    def skip_check_origin(self) -> bool:
        return self.api_token is not None or super().skip_check_origin()

    def require_jupyter_identity(self, action: str) -> None:
        """Refuse API tokens for what only the server's owner may do (manage tokens, presets)."""
        if self.api_token is not None:
            raise APIError(
                f"An lm_jupyter API token cannot {action}. Use the Jupyter server's token "
                "(`lmj` and the notebook magics use it).",
                status=403,
                code="insufficient_permissions",
            )
