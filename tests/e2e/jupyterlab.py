"""For browser tests: a real JupyterLab with this server extension inside, on a free port with a
token, this checkout's Lab extension, a stand-in Hub slow enough to watch a download's progress
bar move, and the steps that open a notebook and run it."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import httpx
import pytest
from hub_standin import HubFile, HubRepo, StandinHub
from tiny_gguf import write_tiny_model

from lm_jupyter.client.discovery import free_port
from scripts.build_labextension import OUTPUT, build

CHROMIUM = Path("/usr/bin/chromium")
NEEDS_CHROMIUM = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
)


@dataclass
class Lab:
    """A running JupyterLab (it serves Notebook 7 too) and the notebooks folder it serves."""

    url: str
    token: str
    root: Path

    def page(self, notebook: str, ui: str = "lab") -> str:
        if ui == "notebook":
            return f"{self.url}notebooks/{notebook}?token={self.token}"
        # ?reset: a fresh workspace, so only this notebook is open (not the last test's too)
        return f"{self.url}lab/tree/{notebook}?reset&token={self.token}"

    def status(self, identifier: str) -> str | None:
        headers = {"Authorization": f"token {self.token}"}
        models = httpx.get(self.url + "api/v1/models", headers=headers).json()["models"]
        found = [i["status"] for m in models for i in m["loaded_instances"] if i["id"] == identifier]
        return found[0] if found else None


def launch_chromium(playwright: Any) -> Any:
    """Debian's chromium, headless, through Playwright (whose own browsers are not installed)."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=["--disable-background-networking", "--no-sandbox", "--disable-dev-shm-usage"],
    )


@contextlib.contextmanager
def run_jupyterlab(
    notebooks: Path, models_dir: Path, env: dict[str, str], log_path: Path, args: Sequence[str] = ()
) -> Iterator[tuple[str, str]]:
    """Start ``jupyter lab`` serving ``notebooks`` and ``models_dir``; yields ``(url, token)``
    once lm_jupyter's routes answer, and stops it afterwards. Its output goes to ``log_path``."""
    token, port = secrets.token_hex(16), free_port("127.0.0.1", 0)
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
        f"--port={port}", "--ip=127.0.0.1", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={notebooks}", f"--LmJupyterApp.models_dir={models_dir}",
        "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        *args,
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    auth = {"Authorization": f"token {token}"}
    with log_path.open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while True:
                assert process.poll() is None, log_path.read_text()
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url + "api/v1/models", headers=auth).is_success:
                        break
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.5)
            yield url, token
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def labextension_path(folder: Path) -> Path:
    """A ``JUPYTER_PATH`` folder serving this checkout's Lab extension, built first if its sources
    changed (the environment's own link may point at another checkout's build)."""
    build()
    extensions = folder / "labextensions"
    extensions.mkdir(parents=True)
    (extensions / "lm_jupyter").symlink_to(OUTPUT, target_is_directory=True)
    return folder


@contextlib.contextmanager
def slow_hub(folder: Path, seeds: dict[str, int]) -> Iterator[StandinHub]:
    """A stand-in Hub (tests/hub_standin.py) with one tiny Q8_0 model per repo id in ``seeds``
    (``org/NAME-GGUF`` holds ``NAME-Q8_0.gguf``); each 2.4 MB download takes about five seconds."""
    hub = StandinHub().start()
    for repo, seed in seeds.items():
        name = repo.split("/")[1].removesuffix("-GGUF") + "-Q8_0.gguf"
        file = write_tiny_model(
            folder / name, n_embd=128, file_type=gguf.LlamaFileType.MOSTLY_Q8_0, seed=seed
        )
        hub.add(HubRepo(repo, [HubFile(name, file.read_bytes())], throttle=0.15))
    try:
        yield hub
    finally:
        hub.stop()


def accept_kernel_dialog(page: object) -> None:
    """JupyterLab may ask which kernel to start (the notebook names python3): take the default."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with contextlib.suppress(PlaywrightTimeout):
        page.click(".jp-Dialog .jp-mod-accept", timeout=10_000)  # type: ignore[attr-defined]


def run_all(page: object, url: str) -> None:
    """Open a notebook, wait for its kernel, run all cells from the Run menu (both UIs have it)."""
    page.goto(url)  # type: ignore[attr-defined]
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)  # type: ignore[attr-defined]
    accept_kernel_dialog(page)
    page.wait_for_selector(  # type: ignore[attr-defined]
        ".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000
    )
    page.click("div.lm-MenuBar-itemLabel:text-is('Run')")  # type: ignore[attr-defined]
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")  # type: ignore[attr-defined]
    accept_kernel_dialog(page)
