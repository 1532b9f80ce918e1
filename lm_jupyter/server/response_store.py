"""Stored responses for ``previous_response_id``: a SQLite file in the user's data folder.

A response belongs to the credential that created it (``owner``): an API token sees, continues
and deletes only its own (another token gets a 404, as if it did not exist); the Jupyter
identity, which owns the server and could read this file anyway, sees every response. Rows
written by the Jupyter identity have no owner.

Each row keeps the response object, its own input items and the conversation before it, so a
response can be continued (or branched from) on its own, even after an earlier one in the chain
was deleted, and across server restarts. SQLite calls run on one dedicated thread, which owns
the connection, so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

RESPONSES_SETTING = "lm_jupyter_responses"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    response TEXT NOT NULL,
    input_items TEXT NOT NULL,
    history TEXT NOT NULL,
    owner TEXT
)
"""

_T = TypeVar("_T")
# Rows a caller may see: all for the Jupyter identity (owner NULL), else only its own.
_VISIBLE = " AND (? IS NULL OR owner = ?)"


@dataclass
class StoredResponse:
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    history: list[dict[str, Any]]  # the conversation's items before this response's input

    @property
    def id(self) -> str:
        return self.response["id"]

    def conversation(self) -> list[dict[str, Any]]:
        """Every item a continuation builds on: history, this input, this output."""
        return [*self.history, *self.input_items, *self.response["output"]]


def default_responses_db(data_dir: str) -> Path:
    return Path(data_dir) / "lm_jupyter" / "responses.sqlite3"


class ResponseStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lm_jupyter-responses")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Any, *args: Any) -> _T:  # type: ignore[type-var]
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10)
            db.execute("PRAGMA journal_mode=WAL")  # several servers may share the file
            db.execute(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(responses)")}
            if "owner" not in columns:  # a file from before responses had owners
                db.execute("ALTER TABLE responses ADD COLUMN owner TEXT")
            db.commit()
            self._db = db
        return self._db

    async def put(self, stored: StoredResponse, owner: str | None) -> None:
        await self._run(self._put, stored, owner)

    def _put(self, stored: StoredResponse, owner: str | None) -> None:
        db = self._connect()
        db.execute(
            "INSERT OR REPLACE INTO responses (id, created_at, response, input_items, history, owner) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                stored.id,
                stored.response["created_at"],
                json.dumps(stored.response, ensure_ascii=False),
                json.dumps(stored.input_items, ensure_ascii=False),
                json.dumps(stored.history, ensure_ascii=False),
                owner,
            ),
        )
        db.commit()

    async def get(self, response_id: str, owner: str | None) -> StoredResponse | None:
        """The response, if ``owner`` may see it (``owner`` None: the Jupyter identity, sees all)."""
        return await self._run(self._get, response_id, owner)

    def _get(self, response_id: str, owner: str | None) -> StoredResponse | None:
        row = (
            self._connect()
            .execute(
                "SELECT response, input_items, history FROM responses WHERE id = ?" + _VISIBLE,
                (response_id, owner, owner),
            )
            .fetchone()
        )
        if row is None:
            return None
        return StoredResponse(*(json.loads(column) for column in row))

    async def delete(self, response_id: str, owner: str | None) -> bool:
        return await self._run(self._delete, response_id, owner)

    def _delete(self, response_id: str, owner: str | None) -> bool:
        db = self._connect()
        deleted = db.execute(
            "DELETE FROM responses WHERE id = ?" + _VISIBLE, (response_id, owner, owner)
        ).rowcount
        db.commit()
        return deleted > 0

    def close(self) -> None:
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        self._executor.submit(close).result()
        self._executor.shutdown()
