"""Messages in a notebook name the notebook's commands: the server and the shared commands say
`lmj ls` (right in a terminal), a notebook user needs `%lms ls`."""

from __future__ import annotations

import re
from typing import Any

from .tables import Table

# lmj commands that %lms has too (client/commands.py, client/admin.py, magics.py's own)
_SHARED = ("ls", "ps", "load", "unload", "get", "token", "preset", "remote", "log stream")
_LMJ = re.compile(r"\blmj (?=(?:" + "|".join(re.escape(name) for name in _SHARED) + r")\b)")


def for_notebook(text: str) -> str:
    """``lmj ls`` becomes ``%lms ls`` (and so on for every command ``%lms`` shares); commands
    only a terminal has (``lmj server start``, ``lmj import``) stay as they are."""
    return _LMJ.sub("%lms ", text)


def localize(data: Any) -> Any:
    """A shared command's result for the notebook: a table's captions via :func:`for_notebook`."""
    if isinstance(data, Table):
        for table in (data, *data.sections):
            table.caption = for_notebook(table.caption)
    return data
