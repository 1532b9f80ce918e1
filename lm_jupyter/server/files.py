"""Small files the server owns (API tokens, presets): safe names and atomic, private writes."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

from ..api.errors import APIError

# Letters, digits, '.', '_' and '-', as the issue asks, but never a leading dot: a name becomes
# a file name, and '.', '..' or hidden files have no business in the presets folder.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


def check_name(name: str, what: str, *, param: str = "name") -> str:
    """``name`` if it is a valid token or preset name, else a 400 that says what is allowed."""
    if not NAME_PATTERN.fullmatch(name):
        raise APIError(
            f"Invalid {what} name '{name}': use letters, digits, '.', '_' and '-' "
            "(not starting with '.'), at most 100 characters.",
            param=param,
            code="invalid_value",
        )
    return name


def write_atomically(path: Path, text: str, *, mode: int) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename.

    A reader (another request, another process) sees the old file or the new one, never half
    of one, and a crash mid-write leaves the old file intact. The temporary file is created
    with ``mode`` before any byte is written, so a secret is never readable by others.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
