"""The presets folder: one ``NAME.json`` per preset (``LmJupyterApp.presets_dir``).

Files are the source of truth and are read on every use, so a preset edited by hand, or saved
by another server sharing the folder, takes effect on the next request. They are a few hundred
bytes; reading one costs microseconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..api.errors import APIError
from ..api.presets import Preset, parse_preset
from .files import check_name, write_atomically

ENV_VAR = "LM_JUPYTER_PRESETS_DIR"
PRESETS_SETTING = "lm_jupyter_presets"  # the PresetStore, in the Tornado application's settings


def presets_dir_from_env() -> Path:
    """``$LM_JUPYTER_PRESETS_DIR``, else ``~/.lm_jupyter/presets`` (next to the models folder)."""
    folder = os.environ.get(ENV_VAR)
    return Path(folder).expanduser() if folder else Path.home() / ".lm_jupyter" / "presets"


def not_found(name: str, *, status: int, param: str) -> APIError:
    return APIError(
        f"Preset '{name}' does not exist. Run `lmj preset ls` (or GET /api/v1/presets) to list the "
        "presets, or save one with `lmj preset save NAME`.",
        status=status,
        param=param,
        code="preset_not_found",
    )


class PresetStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, name: str, param: str) -> Path:
        return self.folder / f"{check_name(name, 'preset', param=param)}.json"

    def names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("*.json") if not p.name.startswith("."))

    def get(self, name: str, *, param: str = "name") -> Preset | None:
        """The preset, None if there is no such file, a 400 if the file is not a valid preset."""
        path = self._path(name, param)
        try:
            body = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return parse_preset(body)
        except APIError as exc:
            raise APIError(
                f"Preset '{name}' ({path}) is not valid: {exc.message} Fix the file, or save the "
                f"preset again with `lmj preset save {name}`.",
                param=param,
                code="invalid_preset",
            ) from None

    def for_request(self, name: str) -> Preset:
        """The preset a request's ``preset`` field names; unknown is the client's 400."""
        preset = self.get(name, param="preset")
        if preset is None:
            raise not_found(name, status=400, param="preset")
        return preset

    def require(self, name: str) -> Preset:
        """The preset a route's path names; unknown is a 404."""
        preset = self.get(name)
        if preset is None:
            raise not_found(name, status=404, param="name")
        return preset

    def listing(self) -> list[dict[str, Any]]:
        """Every preset as ``{"name", **fields}``; a broken file is listed with its ``error``."""
        entries = []
        for name in self.names():
            try:
                preset = self.require(name)
            except APIError as exc:
                entries.append({"name": name, "error": exc.message})
            else:
                entries.append({"name": name, **preset.to_json()})
        return entries

    def save(self, name: str, preset: Preset) -> dict[str, Any]:
        path = self._path(name, "name")
        write_atomically(path, json.dumps(preset.to_json(), indent=2) + "\n", mode=0o644)
        return {"name": name, **preset.to_json()}

    def delete(self, name: str) -> None:
        try:
            self._path(name, "name").unlink()
        except FileNotFoundError:
            raise not_found(name, status=404, param="name") from None
