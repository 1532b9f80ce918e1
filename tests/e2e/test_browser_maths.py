"""Maths in the live ``%%chat`` widget, in JupyterLab 4 and Notebook 7, in Debian's chromium.

JupyterLab starts with this checkout's Lab extension (which lends the page's MathJax to the
widgets: labextension/src/maths.ts) and ``test/tiny-maths``, a tiny model whose output is forced
(tests/e2e/forced_output.py) to reasoning and an answer with inline and display maths, and then
words without end: the widget is checked while it still streams, before Stop ends the cell and
its Markdown copy replaces it. The checks: every maths span of the prompt, the reasoning and the
answer holds MathJax output (``mjx-container``, display maths as display), the text around it is
the model's, words streaming after the maths typeset nothing again, and the copy is typeset by
Jupyter itself. Then, with the extension's listener kept from the widget's requests (as on a page
without it: VS Code, Colab), the same chat run again shows the maths as TeX source. Screenshots
go to ``tests/artifacts/``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tiny_gguf import THINK_TEMPLATE, write_tiny_model

from .forced_output import MATHS_ANSWER, MATHS_MODEL, MATHS_REASONING, write_ipython_dir
from .jupyterlab import NEEDS_CHROMIUM, Lab, labextension_path, launch_chromium, run_all, run_jupyterlab

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
PROMPT_MATHS = "$1+1=2$"
# the answer's maths, in order, as the widget keeps it (TeX with its delimiters)
ANSWER_MATHS = [
    r"$e^{i\pi} + 1 = 0$",
    r"\(a*b*c\)",
    r"$$\int_0^1 x^2\,dx = \frac{1}{3}$$",
    r"\[\sqrt{2} < 2\]",
]
DISPLAY = [False, False, True, True]
REASONING_MATHS = r"$\sum_{k=1}^{n} k$"


def around(text: str) -> str:
    """The answer's text as the widget shows it, each maths element as M (a line break has no
    text, a code span no backticks)."""
    for tex in ANSWER_MATHS:
        text = text.replace(tex, "M")
    return text.replace("\n", "").replace("`", "")


EVENT = "lm-jupyter:typeset"
# every typeset request a widget makes, counted before anyone answers it
COUNT_REQUESTS = f"""
window.lmjTypesetRequests = 0;
window.addEventListener({EVENT!r}, () => window.lmjTypesetRequests++, {{ capture: true }});
"""
# keeps the requests from the extension's listener: the page behaves as one without it
NO_TYPESETTER = f"addEventListener({EVENT!r}, (e) => e.stopImmediatePropagation(), {{ capture: true }})"
# the maths elements under a root: [TeX, state, MathJax output, display output]
MATHS_STATE = """(root) => [...root.querySelectorAll('.lmj-math')].map((n) => [
    n.dataset.tex, n.dataset.typeset || '', !!n.querySelector('mjx-container'),
    !!n.querySelector('mjx-container[display="true"]')])"""
# the text of a root with each maths element as M
OUTSIDE_MATHS = """(node) => {
    const copy = node.cloneNode(true);
    copy.querySelectorAll('.lmj-math').forEach((maths) => maths.replaceWith('M'));
    return copy.textContent;
}"""

pytestmark = [pytest.mark.timeout(300), NEEDS_CHROMIUM]


def maths_notebook() -> dict[str, Any]:
    """Load the maths model, then chat with it (endless: the cell runs until Stop)."""
    load = f"%load_ext lm_jupyter\n%lms load {MATHS_MODEL} --context-length 32768"
    chat = f"%%chat {MATHS_MODEL} --max-tokens -1 --temperature 0 --reasoning show\nWhy is {PROMPT_MATHS}?"
    code = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": []}
    cells = [{**code, "id": cid, "source": src} for cid, src in (("load", load), ("chat", chat))]
    kernel = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    return {"cells": cells, "metadata": kernel, "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("maths")
    models = root / "models"
    write_tiny_model(
        models / "test" / "tiny-maths-GGUF" / "tiny-maths-F32.gguf",
        name="tiny-maths", context_length=32768, endless=True, chat_template=THINK_TEMPLATE,
    )  # fmt: skip
    notebooks = root / "notebooks"
    notebooks.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LM_JUPYTER_", "JPY_", "JUPYTER", "HF_"))}
    env.update(
        HF_HUB_OFFLINE="1",
        JUPYTER_PATH=str(labextension_path(root / "jupyter-path")),
        JUPYTERLAB_SETTINGS_DIR=str(root / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(root / "workspaces"),
        JUPYTER_RUNTIME_DIR=str(root / "runtime"),
        IPYTHONDIR=str(write_ipython_dir(root / "ipython")),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    )
    with run_jupyterlab(notebooks, models, env, root / "lab.log") as (url, token):
        yield Lab(url, token, notebooks)


@pytest.mark.parametrize("ui", ["lab", "notebook"])
def test_live_chat_typesets_maths(lab: Lab, ui: str) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    notebook = f"maths-{ui}.ipynb"
    (lab.root / notebook).write_text(json.dumps(maths_notebook()))
    prefix = "" if ui == "lab" else "notebook7-"
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.add_init_script(COUNT_REQUESTS)
        try:
            run_all(page, lab.page(notebook, ui))
            check_live_maths(page, prefix)
            check_copy(page)
            check_without_typesetter(page, prefix)
        finally:
            page.screenshot(path=str(ARTIFACTS / f"{prefix}maths-last-page.png"), full_page=True)
            browser.close()
            http = httpx.Client(base_url=lab.url, headers={"Authorization": f"token {lab.token}"})
            for session in http.get("api/sessions").json():  # the endless chat's kernel
                http.delete(f"api/sessions/{session['id']}")
            for model in http.get("api/v1/models").json()["models"]:  # the next UI loads its own
                for instance in model["loaded_instances"]:
                    http.post("api/v1/models/unload", json={"instance_id": instance["id"]})


def check_live_maths(page: Any, prefix: str) -> None:
    """While the answer streams: all maths typeset, the text around it the model's, and more
    streamed words typeset nothing again."""
    view = page.locator(".lmj-chat").first
    answer = view.locator(".lmj-answer")
    typeset = [[tex, "done", True, display] for tex, display in zip(ANSWER_MATHS, DISPLAY, strict=True)]
    wait_for_maths(page, ".lmj-chat .lmj-answer", typeset)
    assert REASONING_MATHS in MATHS_REASONING
    wait_for_maths(page, ".lmj-chat .lmj-reasoning", [[REASONING_MATHS, "done", True, False]])
    wait_for_maths(page, ".lmj-chat .lmj-chat-prompt", [[PROMPT_MATHS, "done", True, False]])
    assert view.get_attribute("data-status") == "answering"  # live, not yet the copy
    assert view.locator(".lmj-reasoning").get_attribute("open") is not None
    # the answer streams on: once its text is past the maths, the text around the maths is the model's
    page.wait_for_function(
        f"""(expected) => ({OUTSIDE_MATHS})(document.querySelector('.lmj-chat .lmj-answer'))
            .length >= expected.length""",
        arg=around(MATHS_ANSWER),
        timeout=60_000,
    )
    text = answer.evaluate(OUTSIDE_MATHS)
    assert text.startswith(around(MATHS_ANSWER)) and text.count("M") == len(ANSWER_MATHS), text
    assert answer.locator("code").inner_text() == "$x$"  # a code span, not maths
    # the answer goes on streaming: its paragraph is drawn again each update, its maths not typeset again
    requests = page.evaluate("window.lmjTypesetRequests")
    length = len(text)
    page.wait_for_function(
        """([length]) => document.querySelector('.lmj-chat .lmj-answer').textContent.length > length + 40""",
        arg=[length],
        timeout=60_000,
    )
    assert page.evaluate("window.lmjTypesetRequests") == requests
    assert answer.evaluate(MATHS_STATE) == typeset
    view.scroll_into_view_if_needed()
    view.screenshot(path=str(ARTIFACTS / f"{prefix}chat-live-maths.png"))


def check_copy(page: Any) -> None:
    """Stop: the Markdown copy replaces the widget, typeset by Jupyter's own renderer."""
    page.locator(".lmj-chat .lmj-chat-stop").click()
    copy = page.locator(".lmj-chat-static[data-status='stopped']")
    copy.wait_for(timeout=30_000)
    copy.locator("mjx-container").nth(5).wait_for(timeout=30_000)  # prompt, reasoning, answer: 6
    assert copy.locator("mjx-container").count() == 6


def check_without_typesetter(page: Any, prefix: str) -> None:
    """No one answers the widget's requests: the same chat shows its maths as TeX source."""
    page.evaluate(NO_TYPESETTER)
    page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")
    source = [[tex, "source", False, False] for tex in ANSWER_MATHS]
    wait_for_maths(page, ".lmj-chat .lmj-answer", source)
    answer = page.locator(".lmj-chat .lmj-answer")
    shown = answer.locator(".lmj-math").all_text_contents()
    assert shown == ANSWER_MATHS
    assert answer.locator("mjx-container").count() == 0
    page.locator(".lmj-chat").first.screenshot(path=str(ARTIFACTS / f"{prefix}chat-live-maths-source.png"))
    page.locator(".lmj-chat .lmj-chat-stop").click()
    page.locator(".lmj-chat-static[data-status='stopped']").wait_for(timeout=30_000)


def wait_for_maths(page: Any, selector: str, expected: list[list[Any]]) -> None:
    """Until the maths elements under ``selector`` are ``expected`` (``MATHS_STATE``'s rows)."""
    page.wait_for_function(
        f"""([selector, expected]) => {{
            const root = document.querySelector(selector);
            return root && JSON.stringify(({MATHS_STATE})(root)) === JSON.stringify(expected);
        }}""",
        arg=[selector, expected],
        timeout=120_000,
    )
