"""TokenStore: what is kept (hashes only), how tokens verify, expire and are revoked."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from lm_jupyter.api.errors import APIError
from lm_jupyter.server.auth import bearer_token
from lm_jupyter.server.tokens import TOKEN_PREFIX, TokenStore, hash_token


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> TokenStore:
    return TokenStore(tmp_path / "data" / "lm_jupyter" / "tokens.json", clock=clock)


def test_create_keeps_only_a_hash_in_a_private_file(store: TokenStore) -> None:
    token, entry = store.create("ci")
    assert token.startswith(TOKEN_PREFIX) and len(token) == len(TOKEN_PREFIX) + 43
    assert entry == {"name": "ci", "created_at": 1_800_000_000, "expires_at": None, "status": "active"}
    text = store.path.read_text()
    assert token not in text and token[len(TOKEN_PREFIX) :] not in text
    assert json.loads(text)["tokens"][0]["sha256"] == hash_token(token)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    assert [p.name for p in store.path.parent.iterdir()] == ["tokens.json"]  # no temp files left


def test_tokens_are_random_and_verify_to_their_own_record(store: TokenStore) -> None:
    first, _ = store.create("one")
    second, _ = store.create("two")
    assert first != second
    assert store.verify(first).name == "one"
    assert store.verify(second).name == "two"
    assert store.verify(TOKEN_PREFIX + "x" * 43) is None  # unknown: not ours, Jupyter may know it
    assert store.verify(first + "x") is None


def test_expiry(store: TokenStore, clock: Clock) -> None:
    token, entry = store.create("day", expires_in_days=1)
    assert entry["expires_at"] == 1_800_000_000 + 86400
    clock.now += 86399
    assert store.verify(token) is not None
    clock.now += 1
    with pytest.raises(APIError) as caught:
        store.verify(token)
    assert caught.value.status == 401 and caught.value.code == "invalid_api_key"
    assert "'day' expired at 2027-01-16T08:00:00Z" in caught.value.message
    assert store.listing()[0]["status"] == "expired"


def test_a_record_written_already_expired_is_refused(store: TokenStore) -> None:
    token = TOKEN_PREFIX + "y" * 43
    store.path.parent.mkdir(parents=True)
    record = {
        "name": "old",
        "sha256": hash_token(token),
        "created_at": 1.0,
        "expires_at": 2.0,
        "revoked": False,
    }
    store.path.write_text(json.dumps({"version": 1, "tokens": [record]}))
    with pytest.raises(APIError, match="expired"):
        store.verify(token)


def test_revoke(store: TokenStore) -> None:
    token, _ = store.create("ci")
    assert store.revoke("ci")["status"] == "revoked"
    with pytest.raises(APIError, match="'ci' has been revoked") as caught:
        store.verify(token)
    assert caught.value.status == 401
    assert store.revoke("ci")["status"] == "revoked"  # twice is fine
    with pytest.raises(APIError) as missing:
        store.revoke("nobody")
    assert missing.value.status == 404 and missing.value.code == "token_not_found"


def test_names_and_rotation(store: TokenStore) -> None:
    store.create("ci")
    with pytest.raises(APIError) as taken:
        store.create("ci")
    assert taken.value.status == 409 and "lmj token revoke ci" in taken.value.message
    store.revoke("ci")
    new, _ = store.create("ci")  # a revoked name is free again
    assert store.verify(new).name == "ci" and len(store.listing()) == 1
    for bad in ("", "a/b", "..", ".hidden", "sp ace", "x" * 101):
        with pytest.raises(APIError, match="Invalid token name") as caught:
            store.create(bad)
        assert caught.value.param == "name"
    for days in (0, -1, float("inf"), float("nan")):
        with pytest.raises(APIError) as caught:
            store.create("d", expires_in_days=days)
        assert caught.value.param == "expires_in_days"


def test_changes_on_disk_are_seen(store: TokenStore, tmp_path: Path, clock: Clock) -> None:
    """Another store (another server sharing the file) revokes: this one notices."""
    token, _ = store.create("shared")
    assert store.verify(token) is not None
    TokenStore(store.path, clock=clock).revoke("shared")
    with pytest.raises(APIError, match="revoked"):
        store.verify(token)


def test_a_broken_file_fails_closed(store: TokenStore) -> None:
    token, _ = store.create("ci")
    store.path.write_text("{not json")
    assert store.verify(token) is None  # no API token works until the file is fixed
    with pytest.raises(APIError) as caught:
        store.create("other")
    assert caught.value.status == 500 and str(store.path) in caught.value.message
    assert store.path.read_text() == "{not json"  # never overwritten


def test_missing_file_means_no_tokens(store: TokenStore) -> None:
    assert store.listing() == []
    assert store.verify(TOKEN_PREFIX + "z" * 43) is None


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Token abc", None),
        ("Basic abc", None),
        ("Bearer", None),
        ("", None),
    ],
)
def test_bearer_token(header: str, token: str | None) -> None:
    assert bearer_token(header) == token
