"""lm_jupyter API tokens end to end: `lmj token`, the official openai client, Jupyter's routes,
and every route the extension registers refusing a request without valid credentials."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from jupyter_server.base.handlers import APIHandler

from lm_jupyter.server.app import ROUTES
from tests.e2e.isolated_server import IsolatedServer, isolated_server

CHAT = "test/tiny-chat"
MSGS = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def own(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedServer]:
    with isolated_server(tmp_path_factory.mktemp("tokens"), models_dir) as server:
        yield server


def create(own: IsolatedServer, name: str, *args: str) -> str:
    result = own.lmj("token", "create", name, *args)
    token = result.stdout.strip()
    assert re.fullmatch(r"sk-lmj-[A-Za-z0-9_-]{43}", token), result.stdout
    assert f'Created API token "{name}"' in result.stderr and "will not be shown again" in result.stderr
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_invalid_api_key(response: httpx.Response) -> dict:
    assert response.status_code == 401, (response.request.method, response.request.url, response.text)
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_api_key"
    assert error["param"] is None and error["message"]
    return error


def test_token_lifecycle_with_openai_client(own: IsolatedServer) -> None:
    token = create(own, "ide", "--expires", "30")
    client = openai.OpenAI(base_url=own.info.v1, api_key=token, max_retries=0, timeout=120)
    reply = client.chat.completions.create(model=CHAT, messages=MSGS, max_tokens=3)
    assert reply.usage is not None and reply.usage.completion_tokens <= 3
    chunks = list(client.chat.completions.create(model=CHAT, messages=MSGS, max_tokens=3, stream=True))
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")
    assert any(m.id == CHAT for m in client.models.list().data)

    # The listing never shows a token, and the file holds only its hash.
    listing = own.lmj("token", "ls")
    assert "ide" in listing.stdout and "ACTIVE" in listing.stdout and token not in listing.stdout
    rows = json.loads(own.lmj("token", "ls", "--json").stdout)
    ide = next(row for row in rows if row["name"] == "ide")
    assert set(ide) == {"name", "created_at", "expires_at", "status"} and ide["status"] == "active"
    assert 29.9 * 86400 < ide["expires_at"] - ide["created_at"] <= 30 * 86400
    text = own.tokens_file.read_text()
    assert token not in text and token.removeprefix("sk-lmj-") not in text
    assert own.tokens_file.stat().st_mode & 0o777 == 0o600

    revoked = own.lmj("token", "revoke", "ide")
    assert 'Revoked API token "ide".' in revoked.stderr
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model=CHAT, messages=MSGS, max_tokens=3)
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
    assert "revoked" in str(caught.value)
    assert "REVOKED" in own.lmj("token", "ls").stdout


def test_api_token_as_anthropic_x_api_key(own: IsolatedServer) -> None:
    token = create(own, "claude-code")
    client = anthropic.Anthropic(base_url=own.info.url, api_key=token, max_retries=0, timeout=120)
    reply = client.messages.create(model=CHAT, max_tokens=2, messages=MSGS)
    assert reply.type == "message" and reply.usage.output_tokens <= 2
    assert client.messages.count_tokens(model=CHAT, messages=MSGS).input_tokens > 0  # type: ignore[arg-type]
    bearer_client = anthropic.Anthropic(base_url=own.info.url, auth_token=token, max_retries=0, timeout=120)
    assert bearer_client.messages.create(model=CHAT, max_tokens=2, messages=MSGS).type == "message"
    # x-api-key is Anthropic's header: other routes do not take it.
    assert httpx.get(own.info.url + "v1/models", headers={"x-api-key": token}).status_code == 401
    own.lmj("token", "revoke", "claude-code")
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(model=CHAT, max_tokens=2, messages=MSGS)
    error = caught.value.body["error"]  # type: ignore[index]
    assert error["type"] == "authentication_error" and "revoked" in error["message"]


def test_api_token_passes_the_xsrf_path_without_a_cookie(own: IsolatedServer) -> None:
    """A plain POST with only the Bearer header, as any script sends it; no login cookie back."""
    token = create(own, "script")
    for route, body in (
        ("v1/chat/completions", {"model": CHAT, "messages": MSGS, "max_tokens": 2}),
        ("api/v0/completions", {"model": CHAT, "prompt": "a", "max_tokens": 2}),
        ("api/v1/models/load", {"model": CHAT, "identifier": "by-token", "context_length": 256}),
        ("api/v1/models/unload", {"instance_id": "by-token"}),
    ):
        response = httpx.post(own.info.url + route, headers=bearer(token), json=body, timeout=120)
        assert response.status_code == 200, (route, response.text)
        assert "set-cookie" not in response.headers  # never a Jupyter login cookie
    # Cross-origin: the same CORS answer Jupyter gives its own token (the Origin echoed).
    origin = {"Origin": "http://elsewhere.example"}
    for credentials in (token, own.info.token):
        response = httpx.get(own.info.url + "v1/models", headers={**bearer(credentials), **origin})
        assert response.status_code == 200
        assert response.headers.get("access-control-allow-origin") == "http://elsewhere.example"


def test_api_token_gets_nothing_from_jupyter_routes(own: IsolatedServer) -> None:
    token = create(own, "no-jupyter")
    for path in ("api/kernels", "api/contents", "api/sessions", "api/terminals", "api/kernelspecs"):
        jupyter = httpx.get(own.info.url + path, headers=bearer(own.info.token))
        response = httpx.get(own.info.url + path, headers=bearer(token))
        if jupyter.status_code == 404:  # not served here (e.g. terminals without terminado)
            assert response.status_code == 404
            continue
        assert jupyter.status_code == 200, (path, jupyter.text)
        assert response.status_code in (401, 403), (path, response.status_code)
        assert "set-cookie" not in response.headers
    started = httpx.post(own.info.url + "api/kernels", headers=bearer(token), json={"name": "python3"})
    assert started.status_code in (401, 403)
    assert httpx.get(own.info.url + "api/kernels", headers=bearer(own.info.token)).json() == []


def test_api_token_cannot_manage_tokens(own: IsolatedServer) -> None:
    token = create(own, "limited")
    for method, path, body in (
        ("GET", "api/v1/tokens", None),
        ("POST", "api/v1/tokens", {"name": "escalated"}),
        ("DELETE", "api/v1/tokens/limited", None),
    ):
        response = httpx.request(method, own.info.url + path, headers=bearer(token), json=body)
        assert response.status_code == 403, (method, path, response.text)
        error = response.json()["error"]
        assert error["code"] == "insufficient_permissions" and "Jupyter server's token" in error["message"]
    names = [row["name"] for row in json.loads(own.lmj("token", "ls", "--json").stdout)]
    assert "escalated" not in names and "limited" in names


def test_expired_token_is_refused(own: IsolatedServer) -> None:
    token = create(own, "brief", "--expires", "0.00002")  # 1.7 seconds
    rows = json.loads(own.lmj("token", "create", "brief-json", "--json").stdout)
    assert rows["name"] == "brief-json" and rows["token"].startswith("sk-lmj-")
    time.sleep(2)
    error = assert_invalid_api_key(httpx.get(own.info.url + "v1/models", headers=bearer(token)))
    assert "'brief' expired at" in error["message"]
    status = {row["name"]: row["status"] for row in json.loads(own.lmj("token", "ls", "--json").stdout)}
    assert status["brief"] == "expired" and status["brief-json"] == "active"
    # An expired (or revoked) name can be taken again: that is how a token is rotated.
    fresh = create(own, "brief")
    assert httpx.get(own.info.url + "v1/models", headers=bearer(fresh)).status_code == 200
    assert_invalid_api_key(httpx.get(own.info.url + "v1/models", headers=bearer(token)))


def test_cli_errors_are_one_line(own: IsolatedServer) -> None:
    create(own, "twice")
    again = own.lmj("token", "create", "twice", check=False)
    assert again.returncode == 1 and again.stderr.count("\n") == 1
    assert "already exists" in again.stderr and "lmj token revoke twice" in again.stderr
    bad = own.lmj("token", "create", "no/slashes", check=False)
    assert bad.returncode == 1 and "Invalid token name" in bad.stderr
    missing = own.lmj("token", "revoke", "nobody", check=False)
    assert missing.returncode == 1 and "no API token named 'nobody'" in missing.stderr
    never = own.lmj("token", "create", "never", "--expires", "0", check=False)
    assert never.returncode == 1 and "expires_in_days" in never.stderr
    for command in ("create", "ls", "revoke"):
        assert "usage: lmj token " + command in own.lmj("token", command, "--help").stdout


def _every_route() -> list[tuple[str, str]]:
    """(verb, path) for each verb each registered handler implements; path parameters filled in."""
    calls = []
    for pattern, handler in ROUTES:
        path = re.sub(r"\([^)]*\)", "dummy", pattern).lstrip("/")
        for verb in ("get", "post", "put", "patch", "delete"):
            if getattr(handler, verb) is not getattr(APIHandler, verb):
                calls.append((verb.upper(), path))
    return calls


def test_every_route_refuses_requests_without_valid_credentials(own: IsolatedServer) -> None:
    calls = _every_route()
    # The list is the real one: model routes, the v0 twins, tokens and presets, all verbs.
    for expected in (
        ("POST", "v1/chat/completions"),
        ("GET", "api/v0/models/dummy"),
        ("POST", "api/v1/models/unload"),
        ("POST", "api/v1/tokens"),
        ("DELETE", "api/v1/tokens/dummy"),
        ("PUT", "api/v1/presets/dummy"),
    ):
        assert expected in calls
    revoked = create(own, "revoked-for-enumeration")
    own.lmj("token", "revoke", "revoked-for-enumeration")
    credentials = {
        "none": {},
        "unknown token": bearer("wrong-token"),
        "unknown API token": bearer("sk-lmj-" + secrets.token_urlsafe(32)),
        "revoked API token": bearer(revoked),
        "not Bearer": {"Authorization": f"Basic {own.info.token}"},
        "unknown x-api-key": {"x-api-key": "wrong-token"},
        "revoked x-api-key": {"x-api-key": revoked},
    }
    with httpx.Client(base_url=own.info.url) as http:
        for label, headers in credentials.items():
            for method, path in calls:
                response = http.request(method, path, headers=headers, json={"model": CHAT, "messages": MSGS})
                assert response.status_code == 401, (label, method, path, response.status_code)
                if path.startswith("v1/messages"):  # Anthropic's routes answer in its shape
                    error = response.json()
                    assert error["type"] == "error" and error["error"]["type"] == "authentication_error"
                elif path == "api/v1/chat":  # LM Studio's REST v1 shape
                    error = response.json()["error"]
                    assert error["type"] == "invalid_request" and error["code"] == "invalid_api_key"
                else:
                    assert_invalid_api_key(response)


def test_authentication_can_be_switched_off_for_the_model_routes(own: IsolatedServer) -> None:
    """``require_auth`` off (LM Studio's "Require Authentication" off): a client with no key or
    a placeholder key uses the models with an API token's rights, never the server's controls
    or Jupyter's routes; a browser page from another site is still refused; on again, refused."""
    jupyter = {"Authorization": f"Bearer {own.info.token}"}
    # Two clients: Jupyter answers its token with a login cookie, which would make a shared
    # client the Jupyter identity (a browser's session) for every later request.
    with (
        httpx.Client(base_url=own.info.url, timeout=120) as http,
        httpx.Client(base_url=own.info.url, headers=jupyter, timeout=120) as owner,
    ):
        assert http.get("v1/models").status_code == 401
        assert "require_auth" in owner.get("api/v1/settings").json()["settings"]
        own.lmj("server", "settings", "--set", "require_auth=false")
        try:
            assert owner.get("api/v1/settings").json()["settings"]["require_auth"] is False
            placeholder = openai.OpenAI(base_url=own.info.v1, api_key="lm-studio", max_retries=0, timeout=120)
            reply = placeholder.chat.completions.create(model=CHAT, messages=MSGS, max_tokens=3)
            assert reply.usage is not None and reply.usage.completion_tokens <= 3
            bare = http.post("v1/chat/completions", json={"model": CHAT, "messages": MSGS, "max_tokens": 2})
            assert bare.status_code == 200, bare.text
            assert http.get("v1/models").status_code == 200
            # An API token's rights: no settings, no tokens, nothing of Jupyter's.
            refused = http.patch("api/v1/settings", json={"require_auth": True})
            assert refused.status_code == 403 and "without credentials" in refused.json()["error"]["message"]
            assert http.post("api/v1/tokens", json={"name": "x"}).status_code == 403
            assert http.get("api/contents").status_code in (401, 403)
            assert http.get("api/kernels").status_code in (401, 403)
            # A page on another site cannot use a visitor's browser to reach the models.
            foreign = http.post(
                "v1/chat/completions",
                headers={"Origin": "https://evil.example"},
                json={"model": CHAT, "messages": MSGS, "max_tokens": 2},
            )
            assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "origin_not_allowed"
            # The Jupyter token is still the Jupyter identity.
            assert owner.get("api/v1/tokens").status_code == 200
        finally:
            own.lmj("server", "settings", "--set", "require_auth=true")
        assert http.get("v1/models").status_code == 401
        assert http.get("v1/models", headers={"Authorization": "Bearer lm-studio"}).status_code == 401
