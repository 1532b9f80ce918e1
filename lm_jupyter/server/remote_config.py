"""Where the remote upstreams are: the extension's setting and the file ``lmj remote`` edits.

An entry never holds a secret: ``api_key_env`` names the environment variable of the server
process that holds the upstream's API key, read when a request is sent. The file
(``LmJupyterApp.remotes_file``, default ``<jupyter data dir>/lm_jupyter/remotes.json``) is
written atomically, like the tokens file, and only by the server (its REST routes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..api.errors import APIError
from ..engine.remote.upstream import Upstream, base_url
from .files import check_name, write_atomically

FILE_VERSION = 1
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def make_upstream(entry: Any, *, source: str) -> Upstream:
    """One checked entry (a 400 naming the field if it is wrong)."""
    if not isinstance(entry, dict):
        raise APIError("A remote upstream must be an object with 'name' and 'url'.", code="invalid_value")
    name = entry.get("name")
    url = entry.get("url")
    if not isinstance(name, str):
        raise APIError("Missing required parameter: 'name'.", param="name", code="missing_required_parameter")
    check_name(name, "remote upstream")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise APIError(
            f"Invalid 'url' for remote upstream '{name}': give an http(s) URL such as "
            "http://vllm.example:8000/v1.",
            param="url",
            code="invalid_value",
        )
    key_env = entry.get("api_key_env")
    if key_env is not None and (not isinstance(key_env, str) or not _ENV_NAME.fullmatch(key_env)):
        raise APIError(
            "Invalid 'api_key_env': give the NAME of an environment variable (e.g. VLLM_API_KEY), "
            "never the key itself.",
            param="api_key_env",
            code="invalid_value",
        )
    models = entry.get("models") or []
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise APIError("Invalid 'models': give a list of model names.", param="models", code="invalid_value")
    return Upstream(name, base_url(url), key_env, tuple(models), source)


@dataclass
class RemoteConfig:
    """The upstreams in the order they are tried: the setting's first, then the file's."""

    path: Path
    configured: list[Upstream] = field(default_factory=list)
    _saved: list[Upstream] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path, configured: Iterable[Any]) -> RemoteConfig:
        config = cls(path, [make_upstream(entry, source="config") for entry in configured])
        config._saved = config._read()
        return config

    def _read(self) -> list[Upstream]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the remote upstreams file {self.path}: {exc}") from None
        return [make_upstream(entry, source="file") for entry in data.get("upstreams", [])]

    @property
    def upstreams(self) -> list[Upstream]:
        return [*self.configured, *self._saved]

    def get(self, name: str) -> Upstream | None:
        return next((up for up in self.upstreams if up.name == name), None)

    def add(self, entry: dict[str, Any]) -> Upstream:
        upstream = make_upstream(entry, source="file")
        existing = self.get(upstream.name)
        if existing is not None and existing.source == "config":
            raise _configured(upstream.name)
        if existing is not None:
            raise APIError(
                f"A remote upstream named '{upstream.name}' already exists. Remove it first "
                f"(`lmj remote rm {upstream.name}`) or choose another name.",
                status=409,
                param="name",
                code="upstream_exists",
            )
        self._write([*self._saved, upstream])
        return upstream

    def remove(self, name: str) -> Upstream:
        existing = self.get(name)
        if existing is None:
            raise APIError(
                f"There is no remote upstream named '{name}'. Run `lmj remote ls` to see them.",
                status=404,
                param="name",
                code="upstream_not_found",
            )
        if existing.source == "config":
            raise _configured(name)
        self._write([up for up in self._saved if up.name != name])
        return existing

    def _write(self, saved: list[Upstream]) -> None:
        entries = [{k: v for k, v in up.public().items() if k != "source"} for up in saved]
        body = {"version": FILE_VERSION, "upstreams": entries}
        write_atomically(self.path, json.dumps(body, indent=2) + "\n", mode=0o600)
        self._saved = saved


def _configured(name: str) -> APIError:
    return APIError(
        f"The remote upstream '{name}' comes from the server's configuration "
        "(LmJupyterApp.remotes); change it there.",
        status=409,
        param="name",
        code="upstream_configured",
    )


def default_remotes_file(data_dir: str) -> Path:
    return Path(data_dir) / "lm_jupyter" / "remotes.json"
