"""The JupyterLab extension (labextension/) in a real JupyterLab, driven by Debian's chromium.

The test builds the extension if its sources changed (scripts/build_labextension.py; a no-op
otherwise), puts the build on ``JUPYTER_PATH`` and starts JupyterLab with this server
extension and tiny models: one plain, one with fill-in-the-middle tokens. It checks that
``jupyter labextension list`` shows the extension enabled; that the Local Models panel lists
the models, shows the same estimate as ``lmj load --estimate-only``, loads a model (the status
bar then names it), asks before loading it twice, and unloads it; and that typing in a code
cell shows ghost text from the FIM model, equal to what /v1/completions answers for the cell and
the cell above it, which Tab accepts, in JupyterLab 4 and in Notebook 7. Screenshots go to
``tests/artifacts/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hub_standin import StandinHub
from tiny_gguf import write_tiny_model

from lm_jupyter.client.estimate_view import estimate_text
from lm_jupyter.client.tables import format_size
from tests.e2e.jupyterlab import CHROMIUM, NEEDS_CHROMIUM, labextension_path, run_jupyterlab, slow_hub

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
PLAIN, FIM = "test/tiny-chat", "test/tiny-fim"
HUB_REPO = "test-org/tiny-panel-GGUF"  # on a stand-in Hub (tests/hub_standin.py)
ABOVE, TYPED = "import os", "def hello("
COMPLETER = {"model": FIM, "debounceMs": 100, "maxTokens": 6, "temperature": 0}
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [pytest.mark.timeout(300), NEEDS_CHROMIUM]


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    env: dict[str, str]

    @property
    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"token {self.token}"}, timeout=60)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinHub]:
    with slow_hub(tmp_path_factory.mktemp("hub"), {HUB_REPO: 60}) as hub:
        yield hub


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, hub: StandinHub) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("labext")
    jupyter_path = labextension_path(root / "jupyter-path")
    models = root / "models"
    write_tiny_model(models / "test" / "tiny-chat-GGUF" / "tiny-chat-F32.gguf")
    write_tiny_model(models / "test" / "tiny-fim-GGUF" / "tiny-fim-F32.gguf", name="tiny-fim", fim_keys="fim")
    settings = root / "settings"
    (settings / "lm_jupyter").mkdir(parents=True)
    (settings / "lm_jupyter" / "completer.jupyterlab-settings").write_text(json.dumps(COMPLETER))
    notebooks = root / "notebooks"
    notebooks.mkdir()
    cells = [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": cid,
            "metadata": {},
            "outputs": [],
            "source": src,
        }
        for cid, src in (("above", ABOVE), ("here", ""))
    ]
    kernel = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    notebook = {"cells": cells, "metadata": kernel, "nbformat": 4, "nbformat_minor": 5}
    (notebooks / "ghost.ipynb").write_text(json.dumps(notebook))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LM_JUPYTER_", "JPY_", "JUPYTER", "HF_"))}
    env.update(
        HF_ENDPOINT=hub.endpoint,
        HF_HOME=str(root / "hf"),
        HF_HUB_DISABLE_TELEMETRY="1",
        JUPYTER_PATH=str(jupyter_path),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(root / "workspaces"),
        JUPYTER_RUNTIME_DIR=str(root / "runtime"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    )
    # window.jupyterapp (JupyterLab's, Notebook 7's): the test reads the cell's source from the model
    args = ["--LabApp.expose_app_in_browser=True", "--JupyterNotebookApp.expose_app_in_browser=True"]
    with run_jupyterlab(notebooks, models, env, root / "lab.log", args) as (url, token):
        yield Lab(url, token, root, env)


@pytest.fixture
def page(lab: Lab) -> Iterator[object]:
    # Playwright's synchronous API runs its own event loop: open and close it inside each test.
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            yield page
        finally:
            browser.close()


def test_labextension_list_shows_it_enabled(lab: Lab):
    listing = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"],
        env=lab.env,
        capture_output=True,
        text=True,
        check=True,
    )
    text = listing.stdout + listing.stderr
    line = next(line for line in text.splitlines() if "lm_jupyter v" in line)
    assert "enabled" in line and "OK" in line, text


def test_panel_loads_and_unloads_with_the_status_bar(lab: Lab, page):
    page.goto(f"{lab.url}lab?reset&token={lab.token}")
    page.locator("#lmx-statusbar").wait_for(timeout=90_000)
    assert page.locator("#lmx-statusbar").inner_text() == "No model loaded"
    page.locator("#lmx-statusbar").click()  # opens the panel
    panel = page.locator("#lmx-panel")
    panel.wait_for(state="visible", timeout=10_000)
    plain = panel.locator(f".lmx-model[data-key='{PLAIN}']")
    plain.wait_for(timeout=10_000)
    fim = panel.locator(f".lmx-model[data-key='{FIM}']")
    assert "fill-in-middle" in fim.locator(".lmx-badge").all_inner_texts()
    assert "fill-in-middle" not in plain.locator(".lmx-badge").all_inner_texts()

    plain.locator(".lmx-open-load").click()
    estimate = plain.locator(".lmx-estimate")
    estimate.locator(".lmx-estimate-line").first.wait_for(timeout=10_000)
    shown = estimate.locator(".lmx-estimate-line").all_inner_texts()
    with lab.http as http:
        body = http.post("api/v1/models/estimate", json={"model": PLAIN, "context_length": 4096, "gpu": 0.0})
    printed = estimate_text(body.json(), context_length=4096, gpu=0.0).splitlines()
    assert [line.replace("\xa0", " ") for line in shown] == [line for line in printed if "Estimated" in line]
    assert estimate.locator(".lmx-bar").count() == 2
    # No GPU here: no GPU slider (the server offloads all it can by default where there is one).
    gpu_control = plain.locator(".lmx-gpu-control")
    assert gpu_control.count() == 1 and not gpu_control.is_visible()
    page.screenshot(path=str(ARTIFACTS / "labext-panel-estimate.png"))

    plain.locator("button.lmx-load").click()
    instance = panel.locator(f".lmx-instance[data-id='{PLAIN}']")
    instance.wait_for(timeout=60_000)
    wait_for_text(instance.locator(".lmx-status"), lambda text: text == "idle")  # "loading" first
    status = page.locator("#lmx-statusbar")
    # the instance's memory, the figure `lmj ps` and `%lms ps` show (format_size), not another
    with lab.http as http:

        def ps_memory() -> str:
            listing = http.get("api/v1/models").json()["models"]
            (memory,) = [
                i["memory_bytes"] for m in listing for i in m["loaded_instances"] if i["id"] == PLAIN
            ]
            return format_size(memory)

        wait_for_text(status, lambda text: text.startswith(PLAIN) and text.endswith(f" · {ps_memory()}"))
    log = panel.locator(".lmx-log")  # the live log (server and model events) saw the load
    wait_for_text(log, lambda text: f"Loaded {PLAIN} as '{PLAIN}'" in text)
    assert panel.locator(".lmx-base-url").inner_text() == f"{lab.url}v1"
    page.screenshot(path=str(ARTIFACTS / "labext-loaded-status-bar.png"))

    plain.locator("button.lmx-load").click()  # loaded already: asks first
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=10_000)
    assert "already loaded" in dialog.inner_text()
    page.screenshot(path=str(ARTIFACTS / "labext-second-instance-dialog.png"))
    dialog.locator(".jp-mod-reject").click()
    dialog.wait_for(state="detached", timeout=10_000)
    with lab.http as http:
        models = http.get("api/v1/models").json()["models"]
    assert [i["id"] for m in models for i in m["loaded_instances"]] == [PLAIN]

    instance.locator(".lmx-unload").click()
    instance.wait_for(state="detached", timeout=30_000)
    wait_for_text(status, lambda text: text == "No model loaded")
    page.screenshot(path=str(ARTIFACTS / "labext-unloaded.png"))


def test_panel_searches_and_downloads(lab: Lab, page):
    page.goto(f"{lab.url}lab?reset&token={lab.token}")
    page.locator("#lmx-statusbar").click()
    panel = page.locator("#lmx-panel")
    panel.wait_for(state="visible", timeout=90_000)
    panel.locator("input.lmx-search").fill("tiny panel")
    panel.locator("input.lmx-search").press("Enter")
    result = panel.locator(f".lmx-result[data-repo='{HUB_REPO}']")
    result.wait_for(timeout=30_000)
    assert result.locator("select.lmx-quant").input_value() == "Q8_0"
    result.locator("button.lmx-download").click()
    job = panel.locator(f".lmx-job[data-repo='{HUB_REPO}']")
    progress = job.locator("progress.lmx-progress")
    deadline = time.monotonic() + 30
    while not 0 < float(progress.evaluate("node => node.value")) < 1:  # moving, not done
        assert time.monotonic() < deadline, "the progress bar did not move"
        time.sleep(0.1)
    assert " of " in job.locator(".lmx-job-status").inner_text()
    page.screenshot(path=str(ARTIFACTS / "labext-download-progress.png"))
    panel.locator(f".lmx-job[data-repo='{HUB_REPO}'][data-status='completed']").wait_for(timeout=60_000)
    assert float(progress.evaluate("node => node.value")) == 1
    key = HUB_REPO.removesuffix("-GGUF")
    panel.locator(f".lmx-model[data-key='{key}']").wait_for(timeout=10_000)  # listed, loadable


@pytest.mark.parametrize("ui", ["lab", "notebook"])  # JupyterLab 4 and Notebook 7
def test_ghost_text_from_a_fim_model_and_tab_accepts_it(lab: Lab, page, ui: str):
    with lab.http as http:
        answer = http.post(
            "v1/completions",
            json={
                "model": FIM,
                "prompt": f"{ABOVE}\n\n{TYPED}",
                "suffix": "",
                "max_tokens": COMPLETER["maxTokens"],
                "temperature": 0,
            },
        ).json()
    expected = answer["choices"][0]["text"]
    assert expected, "the tiny FIM model's greedy answer is empty: pick another TYPED"

    (lab.root / "notebooks" / f"ghost-{ui}.ipynb").write_text(
        (lab.root / "notebooks" / "ghost.ipynb").read_text()
    )
    if ui == "lab":
        page.goto(f"{lab.url}lab/tree/ghost-{ui}.ipynb?reset&token={lab.token}")
    else:
        page.goto(f"{lab.url}notebooks/ghost-{ui}.ipynb?token={lab.token}")
    editor = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".cm-content")
    editor.wait_for(timeout=90_000)
    editor.click()
    page.keyboard.type(TYPED)
    ghost = page.locator(".jp-GhostText")
    ghost.first.wait_for(timeout=60_000)
    deadline = time.monotonic() + 30  # streamed: wait until all of it has arrived
    while ghost_text(page) != expected:
        assert time.monotonic() < deadline, (ghost_text(page), expected)
        time.sleep(0.1)
    page.screenshot(path=str(ARTIFACTS / f"labext-{ui}-ghost-text.png"))
    page.keyboard.press("Tab")
    ghost.first.wait_for(state="detached", timeout=10_000)
    source = page.evaluate(
        "window.jupyterapp.shell.currentWidget.content.activeCell.model.sharedModel.getSource()"
    )
    assert source == TYPED + expected
    page.screenshot(path=str(ARTIFACTS / f"labext-{ui}-ghost-text-accepted.png"))


def ghost_text(page) -> str:
    return page.evaluate(
        "Array.from(document.querySelectorAll('.jp-GhostText')).map(n => n.textContent).join('')"
    )


def wait_for_text(locator, check, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check(text := locator.inner_text()):
        assert time.monotonic() < deadline, text
        time.sleep(0.1)
