"""The resume cache: finished rows' results in sqlite, so a re-run computes only what is new.

One file under Jupyter's data folder (``<jupyter data dir>/lm_jupyter/llm_cache.sqlite3``, or
``$LM_JUPYTER_LLM_CACHE``), keyed by ``rows.cache_key`` (model + the exact request). Only
successful results are stored. The connection belongs to the thread that runs the call (the
runner hands results back to it), as sqlite wants.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir

ENV = "LM_JUPYTER_LLM_CACHE"


def default_path() -> Path:
    override = os.environ.get(ENV)
    return Path(override) if override else Path(jupyter_data_dir()) / "lm_jupyter" / "llm_cache.sqlite3"


class ResultCache:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS results "
            "(key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
        )

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for start in range(0, len(keys), 500):  # sqlite's limit on bound parameters
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key, value FROM results WHERE key IN ({marks})"
            for key, value in self.db.execute(query, chunk):
                found[key] = json.loads(value)
        return found

    def put(self, key: str, value: Any) -> None:
        """Committed at once: a crash or an interrupt right after keeps this row."""
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO results (key, value, created) VALUES (?, ?, ?)",
                (key, json.dumps(value), time.time()),
            )

    def close(self) -> None:
        self.db.close()
