"""lm_jupyter API tokens: model access for OpenAI clients without handing out the Jupyter token.

A token is ``sk-lmj-`` plus 32 random bytes (``secrets.token_urlsafe``). It is shown once, when
it is created; the server keeps only its SHA-256, with its name, creation time, expiry and a
revoked flag, in one JSON file (``LmJupyterApp.tokens_file``, mode 0600, written atomically).

Why plain SHA-256 and no per-token salt or slow KDF: salts and slow hashes protect *guessable*
secrets (passwords) against precomputed tables and brute force. A 256-bit random token cannot
be guessed either way, so an attacker who reads the file still cannot find a token from its
hash, and verification stays a single cheap hash on every request (a KDF would add
milliseconds to each one). GitHub and PyPI store their API tokens the same way.

The store is owned by the server process and edited only through its REST routes
(``server/admin_handlers.py``), so the CLI and the kernel never touch the file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..api.errors import APIError, server_error
from .files import check_name, write_atomically

log = logging.getLogger("lm_jupyter")

TOKEN_PREFIX = "sk-lmj-"
TOKENS_SETTING = "lm_jupyter_tokens"  # the TokenStore, in the Tornado application's settings
FILE_VERSION = 1
# The longest expiry a token may be given: 100 years is "never" for any practical purpose and
# keeps every expiry a date that clients can print.
MAX_EXPIRES_DAYS = 36500


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class TokenRecord:
    """What the server remembers about a token: never the token itself."""

    name: str
    sha256: str
    created_at: float
    expires_at: float | None = None
    revoked: bool = False

    def status(self, now: float) -> str:
        if self.revoked:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"

    def public(self, now: float) -> dict[str, Any]:
        """The listing entry: name, times (Unix seconds, as OpenAI's APIs give them), status."""
        return {
            "name": self.name,
            "created_at": int(self.created_at),
            "expires_at": None if self.expires_at is None else int(self.expires_at),
            "status": self.status(now),
        }


class TokenStore:
    """The tokens file, re-read only when it changes on disk (one ``stat`` per API request)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self._cache: tuple[tuple[int, int, int] | None, dict[str, TokenRecord]] = (None, {})

    # -- the file ------------------------------------------------------------------------

    def _records(self) -> dict[str, TokenRecord]:
        """Records by name; raises ValueError if the file exists but cannot be read as tokens."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if self._cache[0] == signature:
            return self._cache[1]
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            records = {entry["name"]: TokenRecord(**entry) for entry in data["tokens"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"cannot read the tokens file {self.path}: {exc}") from None
        self._cache = (signature, records)
        return records

    def _records_or_500(self) -> dict[str, TokenRecord]:
        try:
            return self._records()
        except ValueError as exc:
            raise server_error(f"The server {exc}. Fix or remove the file, then try again.") from None

    def _write(self, records: dict[str, TokenRecord]) -> None:
        body = {"version": FILE_VERSION, "tokens": [asdict(record) for record in records.values()]}
        write_atomically(self.path, json.dumps(body, indent=2) + "\n", mode=0o600)
        self._cache = (None, {})

    # -- management (Jupyter identity only; see admin_handlers) ---------------------------

    def listing(self) -> list[dict[str, Any]]:
        now = self.clock()
        return [record.public(now) for record in self._records_or_500().values()]

    def create(self, name: str, expires_in_days: float | None = None) -> tuple[str, dict[str, Any]]:
        """A new token (the only time it exists in clear) and its listing entry.

        A name held by a revoked or expired token may be reused: that is how a token is rotated.
        """
        check_name(name, "token")
        if expires_in_days is not None and not (0 < expires_in_days <= MAX_EXPIRES_DAYS):
            raise APIError(
                "Invalid value for 'expires_in_days': must be a positive number of days, at most "
                f"{MAX_EXPIRES_DAYS} (leave it out for a token that never expires).",
                param="expires_in_days",
                code="invalid_value",
            )
        records = dict(self._records_or_500())
        now = self.clock()
        existing = records.get(name)
        if existing is not None and existing.status(now) == "active":
            raise APIError(
                f"An API token named '{name}' already exists. Revoke it first "
                f"(`lmj token revoke {name}`) or choose another name.",
                status=409,
                param="name",
                code="token_exists",
            )
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires_at = None if expires_in_days is None else now + expires_in_days * 86400
        records[name] = TokenRecord(name, hash_token(token), now, expires_at)
        self._write(records)
        log.info("Created API token '%s'%s", name, f" (expires {iso(expires_at)})" if expires_at else "")
        return token, records[name].public(now)

    def revoke(self, name: str) -> dict[str, Any]:
        """Mark a token revoked (the record stays, so ``ls`` shows it); revoking twice is fine."""
        records = dict(self._records_or_500())
        record = records.get(name)
        if record is None:
            raise APIError(
                f"There is no API token named '{name}'. Run `lmj token ls` to see the tokens.",
                status=404,
                param="name",
                code="token_not_found",
            )
        if not record.revoked:
            records[name] = replace(record, revoked=True)
            self._write(records)
            log.info("Revoked API token '%s'", name)
        return records[name].public(self.clock())

    # -- authentication --------------------------------------------------------------------

    def verify(self, token: str) -> TokenRecord | None:
        """The active record for ``token``; None if no record has it (not ours: maybe Jupyter's).

        A revoked or expired token is a 401 that says so, because its holder once had access
        and needs to know what to do next.
        """
        try:
            records = self._records()
        except ValueError as exc:  # fail closed: no API token is valid until the file is fixed
            log.error("Refusing every API token: the server %s", exc)
            return None
        digest = hash_token(token)
        found = None
        for record in records.values():  # constant time in the token, whichever record matches
            if hmac.compare_digest(record.sha256, digest):
                found = record
        if found is None:
            return None
        now = self.clock()
        status = found.status(now)
        if status == "revoked":
            raise invalid_api_key(
                f"The API token '{found.name}' has been revoked. Ask for a new one (`lmj token create NAME`)."
            )
        if status == "expired":
            assert found.expires_at is not None
            raise invalid_api_key(
                f"The API token '{found.name}' expired at {iso(found.expires_at)}. Ask for a new one "
                "(`lmj token create NAME`)."
            )
        return found


def invalid_api_key(message: str) -> APIError:
    return APIError(message, status=401, code="invalid_api_key")


def default_tokens_file(data_dir: str) -> Path:
    return Path(data_dir) / "lm_jupyter" / "tokens.json"
