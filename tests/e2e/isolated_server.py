"""A headless server of the tests' own, with its own tokens file and presets folder.

The shared ``server`` fixture uses the default tokens file (the user's Jupyter data dir);
token and preset tests write files, so they get a server whose files live in a temp folder.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from lm_jupyter.client.discovery import ServerInfo, free_port, start_headless, stop_process
from tests.e2e.test_cli import lmj


@dataclass
class IsolatedServer:
    info: ServerInfo
    tokens_file: Path
    presets_dir: Path
    env: dict[str, str]  # for `lmj` subprocesses: LM_JUPYTER_URL/TOKEN point at this server

    def lmj(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return lmj(self.env, *args, check=check)


@contextlib.contextmanager
def isolated_server(folder: Path, models_dir: Path, config: Sequence[str] = ()) -> Iterator[IsolatedServer]:
    tokens_file = folder / "data" / "lm_jupyter" / "tokens.json"
    presets_dir = folder / "presets"
    runtime = folder / "runtime"
    previous = os.environ.get("JUPYTER_RUNTIME_DIR")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(runtime)
    try:
        info = start_headless(
            port=free_port("127.0.0.1", 0),
            models_dir=str(models_dir),
            config=[
                f"--LmJupyterApp.tokens_file={tokens_file}",
                f"--LmJupyterApp.presets_dir={presets_dir}",
                f"--LmJupyterApp.responses_db={folder / 'data' / 'lm_jupyter' / 'responses.sqlite3'}",
                f"--LmJupyterApp.remotes_file={folder / 'data' / 'lm_jupyter' / 'remotes.json'}",
                *config,
            ],
        )
    finally:
        if previous is None:
            os.environ.pop("JUPYTER_RUNTIME_DIR", None)
        else:
            os.environ["JUPYTER_RUNTIME_DIR"] = previous
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LM_JUPYTER_", "JPY_"))}
    env.update(LM_JUPYTER_URL=info.url, LM_JUPYTER_TOKEN=info.token, JUPYTER_RUNTIME_DIR=str(runtime))
    try:
        yield IsolatedServer(info, tokens_file, presets_dir, env)
    finally:
        assert info.pid is not None
        stop_process(info.pid)


@contextlib.contextmanager
def hub_server(
    folder: Path, hub_endpoint: str, config: Sequence[str] = (), hf_token: str | None = None
) -> Iterator[IsolatedServer]:
    """An isolated server with an empty ``folder/models`` that downloads from a stand-in Hub
    (``tests/hub_standin.py``) through the real ``huggingface_hub`` client."""
    (folder / "models").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_ENDPOINT", hub_endpoint)
        mp.setenv("HF_HOME", str(folder / "hf"))
        mp.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        for name in ("HF_HUB_OFFLINE", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN"):
            mp.delenv(name, raising=False)
        if hf_token:
            mp.setenv("HF_TOKEN", hf_token)  # the server's Hugging Face token
        with isolated_server(folder, folder / "models", config) as server:
            yield server
