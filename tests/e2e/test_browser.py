"""JupyterLab 4 and Notebook 7 in a real browser: the quickstart runs, and the widgets render.

The test starts JupyterLab (with this extension, serving the test models; Notebook 7 is served
by the same server at ``/notebooks/``) on a free port with a token, opens
``notebooks/quickstart.ipynb`` in Debian's chromium driven by Playwright, runs all cells, and
checks what a user sees, in each of the two UIs: the ChatView with streamed text, a reasoning
section and a stats footer, the ModelPanel's memory-estimate bars, and its download box: a
Hub search (a stand-in Hub, ``tests/hub_standin.py``), a Download click and the live progress
bar, until the model is in the list. The kernel finds the server by itself
(``JPY_PARENT_PID``), as it does for users. Screenshots go to ``tests/artifacts/``.

The quickstart chats with ``test/tiny-think``, whose output is forced to hold a ``<think>``
block (tests/e2e/forced_output.py), so the reasoning section has real streamed content.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hub_standin import StandinHub
from tiny_gguf import write_tiny_model

from tests.conftest import write_test_models

from .forced_output import ANSWER, CODE, CODE_MODEL, REASONING, THINK_MODEL, write_ipython_dir
from .jupyterlab import (
    NEEDS_CHROMIUM,
    Lab,
    accept_kernel_dialog,
    launch_chromium,
    run_all,
    run_jupyterlab,
    slow_hub,
)
from .saved_outputs import check_saved

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"

pytestmark = [pytest.mark.timeout(300), NEEDS_CHROMIUM]


# Seed 1 under greedy sampling does not stop for thousands of tokens (see test_magics.py); a
# 32k context keeps it going for many seconds (4k tokens would end in about one).
ENDLESS = "test/tiny-endless"
STOP_NOTEBOOK = {
    "cells": [
        {"cell_type": "code", "execution_count": None, "id": "load", "metadata": {}, "outputs": [],
         "source": f"%load_ext lm_jupyter\n%lms load {ENDLESS} --context-length 32768"},
        {"cell_type": "code", "execution_count": None, "id": "chat", "metadata": {}, "outputs": [],
         "source": f"%%chat {ENDLESS} --max-tokens -1 --temperature 0\nTell me a very long story."},
    ],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}  # fmt: skip
# A chat whose answer is a code block and then goes on (tests/e2e/forced_output.py), so its
# Copy and "Insert as cell" buttons are clicked while the cell still runs.
CODE_NOTEBOOK = {
    **STOP_NOTEBOOK,
    "cells": [
        {"cell_type": "code", "execution_count": None, "id": "load", "metadata": {}, "outputs": [],
         "source": f"%load_ext lm_jupyter\n%lms load {CODE_MODEL} --context-length 32768"},
        {"cell_type": "code", "execution_count": None, "id": "chat", "metadata": {}, "outputs": [],
         "source": f"%%chat {CODE_MODEL} --max-tokens -1 --temperature 0\nShow me some code."},
    ],
}  # fmt: skip


UIS = ["lab", "notebook"]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"  # JupyterLab 4 and Notebook 7


def hub_repo(ui: str) -> str:
    """The repo each UI's download box downloads (one each: the second would be downloaded)."""
    return f"test-org/tiny-{ui}-GGUF"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinHub]:
    """A slow Hub with one repo for each UI to download."""
    with slow_hub(
        tmp_path_factory.mktemp("hub"), {hub_repo(ui): 50 + seed for seed, ui in enumerate(UIS)}
    ) as hub:
        yield hub


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, hub: StandinHub) -> Iterator[Lab]:
    """JupyterLab serving a copy of notebooks/ and tiny test models, downloading from ``hub``."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    (root / "notebooks" / "stop.ipynb").write_text(json.dumps(STOP_NOTEBOOK))
    (root / "notebooks" / "code.ipynb").write_text(json.dumps(CODE_NOTEBOOK))
    models_dir = write_test_models(root / "models")
    endless = models_dir / "test" / "tiny-endless-GGUF" / "tiny-endless-F32.gguf"
    write_tiny_model(endless, context_length=32768, seed=1)
    code = models_dir / "test" / "tiny-code-GGUF" / "tiny-code-F32.gguf"
    write_tiny_model(code, name="tiny-code", context_length=32768, endless=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LM_JUPYTER_", "JPY_", "HF_"))}
    env.update(
        HF_ENDPOINT=hub.endpoint,
        HF_HOME=str(root / "hf"),
        HF_HUB_DISABLE_TELEMETRY="1",
        JUPYTER_RUNTIME_DIR=str(root / "runtime"),
        IPYTHONDIR=str(write_ipython_dir(root / "ipython")),
        LM_JUPYTER_QUICKSTART_MODEL=THINK_MODEL,
        LM_JUPYTER_TOOLS_MODEL="test/tiny-tools",
        LM_JUPYTER_REASONING_MODEL=THINK_MODEL,
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    )
    with run_jupyterlab(root / "notebooks", models_dir, env, root / "lab.log") as (url, token):
        yield Lab(url, token, root / "notebooks")


@pytest.mark.parametrize("ui", UIS)
def test_quickstart(lab: Lab, ui: str) -> None:
    # One test per UI, with the browser opened and closed inside it: Playwright's synchronous API
    # drives its own event loop, which must not outlive the test (pytest-jupyter checks loops).
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    # a fresh copy: the other UI's run may have saved its outputs into the notebook
    shutil.copy(REPO / "notebooks" / "quickstart.ipynb", lab.root / "quickstart.ipynb")
    prefix = "" if ui == "lab" else "notebook7-"
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            run_all(page, lab.page("quickstart.ipynb", ui))
            # the UI asked for, not a redirect: Notebook 7 marks its notebook page on <body>
            notebook7 = page.locator("body[data-notebook='notebooks']").count() == 1
            assert notebook7 == (ui == "notebook")
            check_chat_view(page, prefix)
            check_model_manager(page, prefix)
            page.screenshot(path=str(ARTIFACTS / f"{prefix}quickstart-page.png"), full_page=True)
            check_download(page, prefix, hub_repo(ui))
            check_reopen(page, lab, ui, prefix)
            if ui == "lab":  # the same widget code in both UIs: once is enough for the stop path
                check_stop_button(page, lab)
        finally:
            page.screenshot(path=str(ARTIFACTS / f"{prefix}last-page.png"), full_page=True)
            browser.close()


def test_code_blocks_and_the_reasoning_demo(lab: Lab) -> None:
    """JupyterLab (the widget code is the same in Notebook 7): a live answer's code block is
    highlighted in the theme's editor colours, Copy puts it on the clipboard (read back) and
    "Insert as cell" adds it as a cell below; then tools-and-reasoning.ipynb runs, its reasoning
    chat showing an open, foldable reasoning section."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(REPO / "notebooks" / "tools-and-reasoning.ipynb", lab.root / "tools-and-reasoning.ipynb")
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(
            viewport={"width": 1400, "height": 1000}, permissions=["clipboard-read", "clipboard-write"]
        )
        page = context.new_page()
        try:
            check_code_block(page, lab)
            check_reasoning_demo(page, lab)
        finally:
            page.screenshot(path=str(ARTIFACTS / "code-and-reasoning-last-page.png"), full_page=True)
            browser.close()


def check_code_block(page: Any, lab: Lab) -> None:
    run_all(page, lab.page("code.ipynb"))
    view = page.locator(".lmj-chat").first
    block = view.locator("pre.lmj-code").first
    block.wait_for(timeout=90_000)
    assert block.locator("code").inner_text() == CODE
    # JupyterLab's own editor colours: the theme variable's colour, whatever the theme is
    for kind in ("number", "comment"):
        shown, theme = block.locator(f".lmj-hl-{kind}").first.evaluate(
            """(node, kind) => {
                const probe = document.createElement("span");
                probe.style.color = `var(--jp-mirror-editor-${kind}-color)`;
                document.body.append(probe);
                const colour = getComputedStyle(probe).color;
                probe.remove();
                return [getComputedStyle(node).color, colour];
            }""",
            kind,
        )
        assert shown == theme and theme not in ("", "rgb(0, 0, 0)"), (kind, shown, theme)
    copy = block.locator("button.lmj-code-copy")
    copy.click()
    page.wait_for_function("() => document.querySelector('.lmj-code-copy').textContent === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()") == CODE
    block.locator("button.lmj-code-insert").click()
    block.screenshot(path=str(ARTIFACTS / "chat-code-block.png"))
    view.locator(".lmj-chat-stop").click()
    page.locator(".lmj-chat-static[data-status='stopped']").wait_for(timeout=30_000)
    # the code is now a cell of its own, right below the chat's cell (below a long answer: JupyterLab
    # fills in an editor's text only once its cell is scrolled into view)
    editors = page.locator(".jp-Notebook .jp-CodeCell .jp-InputArea .cm-content")
    deadline = time.monotonic() + 20
    while [text.strip() for text in editors.all_inner_texts()][2:3] != [CODE]:
        assert time.monotonic() < deadline, editors.all_inner_texts()
        if editors.count() > 2:
            editors.nth(2).scroll_into_view_if_needed()
        time.sleep(0.2)
    page.screenshot(path=str(ARTIFACTS / "chat-code-inserted.png"), full_page=True)
    http = httpx.Client(base_url=lab.url, headers={"Authorization": f"token {lab.token}"})
    for session in http.get("api/sessions").json():  # free the endless model's kernel
        http.delete(f"api/sessions/{session['id']}")


def check_reasoning_demo(page: Any, lab: Lab) -> None:
    run_all(page, lab.page("tools-and-reasoning.ipynb"))
    chat = page.locator(".lmj-chat-static[data-status='done']", has_text=ANSWER).first
    chat.wait_for(timeout=240_000)
    chat.scroll_into_view_if_needed()
    reasoning = chat.locator("details")
    assert reasoning.get_attribute("open") is not None  # --reasoning show: open
    assert reasoning.locator("summary").inner_text() == "Reasoning"
    assert chat.get_by_text(REASONING).is_visible()
    chat.screenshot(path=str(ARTIFACTS / "tools-and-reasoning-reasoning.png"))
    reasoning.locator("summary").click()  # and foldable
    assert reasoning.get_attribute("open") is None and not chat.get_by_text(REASONING).is_visible()
    page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=120_000)


def check_stop_button(page: object, lab: Lab) -> None:
    """Stop, clicked while the cell still runs, reaches the kernel and cancels on the server."""
    run_all(page, lab.page("stop.ipynb"))
    view = page.locator(".lmj-chat").first  # type: ignore[attr-defined]
    view.locator(".lmj-answer").first.wait_for(timeout=60_000)  # text is streaming
    assert lab.status(ENDLESS) == "generating"
    view.locator(".lmj-chat-stop").click()
    stopped = page.locator(".lmj-chat-static[data-status='stopped']")  # type: ignore[attr-defined]
    stopped.wait_for(timeout=10_000)
    deadline = time.monotonic() + 5
    while lab.status(ENDLESS) != "idle":
        assert time.monotonic() < deadline, "the server kept generating after Stop"
        time.sleep(0.1)
    assert stopped.locator("em").last.inner_text() == "Stopped."  # a note, not an error
    stopped.screenshot(path=str(ARTIFACTS / "chat-view-stopped.png"))


def check_chat_view(page: object, prefix: str) -> None:
    """The first %%chat: streamed live, then replaced by its static copy (what the notebook
    saves): the answer, a collapsed reasoning section and the stats footer."""
    done = page.locator(".lmj-chat-static[data-status='done']").first  # type: ignore[attr-defined]
    done.wait_for(timeout=180_000)
    done.scroll_into_view_if_needed()
    check_static_chat(done)
    done.screenshot(path=str(ARTIFACTS / f"{prefix}quickstart-chat-view.png"))
    done.locator("details summary").click()  # collapsed by default: open it
    assert REASONING in done.locator("details").inner_text()
    done.screenshot(path=str(ARTIFACTS / f"{prefix}quickstart-chat-view-reasoning-open.png"))


def check_static_chat(done: Any) -> None:
    """A finished chat as the saved notebook shows it: prompt, reasoning, answer, footer."""
    from playwright.sync_api import expect

    assert done.is_visible()
    # JupyterLab lays out a cell scrolled into view on a later frame (content-visibility)
    expect(done).to_contain_text(ANSWER, use_inner_text=True, timeout=15_000)
    assert done.locator("blockquote").inner_text().strip() == "Write a haiku about Jupyter notebooks."
    reasoning = done.locator("details")
    assert reasoning.count() == 1 and reasoning.locator("summary").inner_text() == "Reasoning"
    footer = done.locator("sub").inner_text()
    assert footer.startswith(f"{THINK_MODEL} · ") and "tokens" in footer and "s to first token" in footer


def check_reopen(page: Any, lab: Lab, ui: str, prefix: str) -> None:
    """Save, shut the kernel down, open the notebook again: the chats and the model manager's
    copy are there, and no "Error displaying widget" anywhere; nbconvert's HTML shows them too."""
    saved = lab.root / "quickstart.ipynb"
    page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while "lmj-chat-static" not in saved.read_text():
        assert time.monotonic() < deadline, "the notebook was not saved"
        time.sleep(0.2)
    outputs = [out for cell in json.loads(saved.read_text())["cells"] for out in cell.get("outputs", [])]
    markdown = ["".join(out.get("data", {}).get("text/markdown", "")) for out in outputs]
    chats = [out for out, text in zip(outputs, markdown, strict=True) if "lmj-chat-static" in text]
    assert len(chats) == 2 and all(WIDGET_VIEW not in out["data"] for out in chats)
    assert any("lmj-load-static" in text for text in markdown)  # %lms load's view, as its copy
    check_saved(saved)  # as GitHub's viewer reads it: no widget-only output, text in styled ones
    http = httpx.Client(base_url=lab.url, headers={"Authorization": f"token {lab.token}"})
    for session in http.get("api/sessions").json():  # the kernel goes; its widget models with it
        assert http.delete(f"api/sessions/{session['id']}").status_code == 204
    page.goto(lab.page("quickstart.ipynb", ui))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    accept_kernel_dialog(page)
    # the first chat, once rendered (Notebook 7 may render the outputs again as its kernel starts)
    chat = page.locator(".lmj-chat-static[data-status='done']", has_text=ANSWER).first
    chat.wait_for(timeout=60_000)
    chat.scroll_into_view_if_needed()
    check_static_chat(chat)
    twin = page.locator(".lmj-mm-static").first
    twin.scroll_into_view_if_needed()
    assert twin.is_visible() and THINK_MODEL in twin.inner_text()
    page.wait_for_timeout(2000)  # let the widget manager give up on the old models
    assert not page.get_by_text("Error displaying widget").filter(visible=True).count()
    page.screenshot(path=str(ARTIFACTS / f"{prefix}reopened-quickstart.png"), full_page=True)
    if ui == "lab":  # nbconvert's HTML (what nbviewer shows) of the same saved file
        html_file = lab.root / "quickstart.html"
        subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(saved)], check=True)
        page.goto(html_file.as_uri())
        check_static_chat(page.locator(".lmj-chat-static[data-status='done']").first)
        assert page.locator(".lmj-mm-static").first.is_visible()
        page.screenshot(path=str(ARTIFACTS / "nbconvert-quickstart.png"), full_page=True)


def check_model_manager(page: object, prefix: str) -> None:
    """``%lms load``'s view ended as its copy (estimate beside the measured memory); ``%lms``:
    click a model, and the estimate bars appear against free memory."""
    loaded = page.locator(".lmj-load-static[data-status='loaded']").first  # type: ignore[attr-defined]
    loaded.wait_for(timeout=60_000)
    assert "Measured" in loaded.inner_text() and THINK_MODEL in loaded.inner_text()
    manager = page.locator(".lmj-mm").first  # type: ignore[attr-defined]
    manager.wait_for(timeout=60_000)
    row = manager.locator(f"tr.lmj-mm-model[data-key='{THINK_MODEL}']")
    row.wait_for(timeout=30_000)
    manager.scroll_into_view_if_needed()
    # the figure `%lms ls` prints for the same file (client/tables.py format_size), not another
    size = row.locator("td").nth(4).inner_text()
    assert re.fullmatch(r"\d+\.\d\d (KiB|MiB|GiB)", size), size
    listed = page.locator(".lmj-mm-static").first.inner_text()  # the twin's `ls` table, hidden
    assert size in listed, (size, listed)
    row.click()
    bars = manager.locator(".lmj-mm-bar")
    bars.first.wait_for(timeout=30_000)
    # this machine has no GPU: no GPU bar and no GPU offload slider, only total memory
    assert [bars.nth(i).get_attribute("data-kind") for i in range(bars.count())] == ["Total"]
    assert not manager.locator("input.lmj-mm-gpu").is_visible()
    assert "jp-mod-styled" in (manager.locator("button.lmj-mm-load").get_attribute("class") or "")
    total = manager.locator(".lmj-mm-bar[data-kind='Total']")
    assert " free" in total.locator(".lmj-mm-bar-value").inner_text()
    assert "lmj-mm-bar-bad" not in (total.get_attribute("class") or "")
    assert manager.locator(".lmj-mm-verdict").inner_text() == "Fits in memory."
    assert manager.locator(".lmj-mm-where").inner_text() == "Runs on the CPU."
    manager.screenshot(path=str(ARTIFACTS / f"{prefix}model-manager-estimate.png"))
    assert not page.locator(".lmj-mm-static").first.is_visible()  # the saved copy hides while live


def check_download(page: object, prefix: str, repo: str) -> None:
    """The download box: search, Download (the recommended variant), a live bar, the new model."""
    manager = page.locator(".lmj-mm").first  # type: ignore[attr-defined]
    key = repo.removesuffix("-GGUF")
    query = manager.locator("input.lmj-mm-query")
    query.scroll_into_view_if_needed()
    query.fill(key.split("/")[1].replace("-", " "))  # "tiny lab"
    query.press("Enter")
    result = manager.locator(f"tr.lmj-mm-result[data-repo='{repo}']")
    result.wait_for(timeout=30_000)
    manager.locator(".lmj-mm-variant.lmj-mm-recommended[data-quantization='Q8_0']").wait_for(timeout=30_000)
    result.locator("button.lmj-mm-download").click()
    # the jobs list shows every job on the server (the other UI's download too): find this one's
    job = manager.locator(f".lmj-mm-job[data-model='{repo}'][data-status='downloading']")
    job.wait_for(timeout=30_000)
    fill = job.locator(".lmj-mm-job-fill")
    deadline = time.monotonic() + 20
    while not 0 < float(fill.evaluate("node => parseFloat(node.style.width)")) < 100:  # moving, not done
        assert time.monotonic() < deadline, "the progress bar did not move"
        time.sleep(0.1)
    caption = job.locator(".lmj-mm-job-value").inner_text()
    assert "%" in caption and "/ 2.28 MiB" in caption, caption
    assert job.locator("button.lmj-mm-pause").is_visible()
    manager.screenshot(path=str(ARTIFACTS / f"{prefix}model-manager-download.png"))
    done = manager.locator(f".lmj-mm-job[data-model='{repo}'][data-status='completed']")
    done.wait_for(timeout=60_000)
    assert done.locator(".lmj-mm-job-value").inner_text().startswith(f"Done: {key}")
    manager.locator(f"tr.lmj-mm-model[data-key='{key}']").wait_for(timeout=10_000)  # listed, loadable
    manager.screenshot(path=str(ARTIFACTS / f"{prefix}model-manager-downloaded.png"))
