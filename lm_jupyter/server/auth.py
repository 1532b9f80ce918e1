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

With ``LmJupyterApp.require_auth`` off (LM Studio's "Require Authentication" off), a request
without the Jupyter identity's credentials (any other key, or none) is let in the same way as
an anonymous API token: API-token rights only, and the Origin check still applies, so a page on
another site cannot drive the models through a visitor's browser.

Everything else, including an ``sk-lmj-`` string that is not in the store (the Jupyter token
could be configured to look like one), goes to Jupyter's ``prepare()`` unchanged. Jupyter
never learns about API tokens, which is why they get nothing from ``/api/kernels``,
``/api/contents`` and the other Jupyter routes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from jupyter_server.auth.identity import User
from jupyter_server.base.call_context import CallContext
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..api.errors import APIError
from .tokens import TOKEN_PREFIX, TOKENS_SETTING, TokenRecord, TokenStore

REQUIRE_AUTH_SETTING = "lm_jupyter_require_auth"  # LmJupyterApp.require_auth, changeable live
ANONYMOUS = User(username="lm_jupyter-anonymous", name="anonymous")


def bearer_token(authorization: str) -> str | None:
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


class ApiTokenAuthHandler(APIHandler):
    """Base of every lm_jupyter handler: API tokens first, then Jupyter's auth."""

    api_token: TokenRecord | None = None  # set when an lm_jupyter API token authenticated us
    anonymous = False  # let in without credentials (require_auth off)
    # Anthropic's clients send their key as `x-api-key`; routes of its API take it like Bearer.
    accepts_x_api_key = False

    async def prepare(self) -> None:  # type: ignore[override]
        headers = self.request.headers
        if self.accepts_x_api_key and "x-api-key" in headers and "Authorization" not in headers:
            # As a Bearer header for both kinds of token (Jupyter's auth reads only that one).
            # Like Bearer, it is a header a browser never adds by itself, so no XSRF check is lost.
            headers["Authorization"] = f"Bearer {headers['x-api-key']}"
        token = bearer_token(headers.get("Authorization", ""))
        store: TokenStore | None = self.settings.get(TOKENS_SETTING)
        record = None
        if token is not None and token.startswith(TOKEN_PREFIX) and store is not None:
            # No user yet: an error below must not make `current_user` ask Jupyter, which
            # refuses to answer before its own prepare() ran.
            self.current_user = self._jupyter_current_user = None
            record = store.verify(token)  # a revoked or expired token raises its own 401
        if record is not None:
            self.api_token = record
            self._let_in(User(username=f"lm_jupyter-token:{record.name}", name=record.name))
        elif self._open_to_anonymous(token):
            self.anonymous = True
            self._let_in(ANONYMOUS)
        else:
            await super().prepare()

    def _open_to_anonymous(self, token: str | None) -> bool:
        """require_auth off: anything but the Jupyter identity's own credentials (its cookie,
        its token in the header or the query) is anonymous, so OpenAI clients configured with a
        placeholder key (``api_key="lm-studio"``) work, as with LM Studio's authentication off."""
        if self.settings.get(REQUIRE_AUTH_SETTING, True) or self.get_cookie(self.cookie_name):
            return False  # a browser logged in to Jupyter stays the Jupyter identity
        if self.get_query_argument("token", None) is not None:
            return False
        jupyter = self.identity_provider.token or ""
        return token is None or not (jupyter and secrets.compare_digest(token, jupyter))

    def _let_in(self, user: User) -> None:
        """JupyterHandler.prepare() + APIHandler.prepare(), with our user (see module doc)."""
        CallContext.set(CallContext.JUPYTER_HANDLER, self)
        if not self.check_host():
            raise web.HTTPError(403)
        self.current_user = self._jupyter_current_user = user
        self.set_cors_headers()
        if not self.check_origin():
            raise web.HTTPError(404)

    @property
    def token_authenticated(self) -> bool:
        # No ambient credential (cookie) let these in, so there is no XSRF to check.
        return self.api_token is not None or self.anonymous or super().token_authenticated

    def skip_check_origin(self) -> bool:
        return self.api_token is not None or super().skip_check_origin()

    @property
    def owner(self) -> str | None:
        """Whose data this request may see: an API token's own (named by its hash, so a new
        token that reuses a revoked one's name starts empty), or None for the Jupyter identity,
        which owns the server and sees everything."""
        if self.anonymous:
            return "anonymous"
        return None if self.api_token is None else f"token:{self.api_token.sha256}"

    def require_jupyter_identity(self, action: str) -> None:
        """Refuse API tokens for what only the server's owner may do (manage tokens, presets)."""
        if self.anonymous:
            raise APIError(
                f"A request without credentials cannot {action}. Use the Jupyter server's token.",
                status=403,
                code="insufficient_permissions",
            )
        if self.api_token is not None:
            raise APIError(
                f"An lm_jupyter API token cannot {action}. Use the Jupyter server's token "
                "(`lmj` and the notebook magics use it).",
                status=403,
                code="insufficient_permissions",
            )

    def _jupyter_refusal(self, status_code: int) -> APIError | None:
        """What Jupyter's prepare() refused, in words: a Host it does not serve (its DNS
        rebinding protection, a 403), or a cross-origin request that relies on the login
        cookie (which Jupyter answers with a bare 404)."""
        if status_code == 403 and not _passes(self.check_host):
            code, message = (
                "host_not_allowed",
                (
                    f"The Host header '{self.request.host}' is not one this server answers to. Use the "
                    "address the server listens on, or allow the name with "
                    "--ServerApp.local_hostnames / --ServerApp.allow_remote_access."
                ),
            )
        elif status_code == 404 and not _passes(self.check_origin):
            code, message = (
                "origin_not_allowed",
                (
                    f"Cross-origin request from '{self.request.headers.get('Origin')}' refused: a browser "
                    "page from another origin may not use this server's login cookie. Send a token as "
                    "'Authorization: Bearer <token>', or allow the origin with --ServerApp.allow_origin."
                ),
            )
        else:
            return None
        return APIError(message, status=403, code=code)


def _passes(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:  # a header Jupyter cannot even parse does not pass either
        return False
