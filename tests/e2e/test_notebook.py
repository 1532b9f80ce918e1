"""The notebooks in notebooks/ run top to bottom in a real kernel against a real server.

Each runs with tiny models substituted through its environment variables; the tiny reasoning
model's output is forced (tests/e2e/forced_output.py) so the reasoning view has real content.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from lm_jupyter.client.discovery import ServerInfo

from .forced_output import ANSWER, REASONING, write_ipython_dir
from .saved_outputs import check_saved

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
WIDGET = "application/vnd.jupyter.widget-view+json"


def run_notebook(
    name: str,
    server: ServerInfo,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    cell_timeout: int = 180,
    **env: str,
) -> list[Any]:
    """Execute ``notebooks/NAME``, save it (and check that the saved file reads without a kernel
    or styles, as GitHub shows it: ``saved_outputs.py``), and return each code cell's outputs."""
    monkeypatch.setenv("LM_JUPYTER_URL", server.url)
    monkeypatch.setenv("LM_JUPYTER_TOKEN", server.token)
    monkeypatch.setenv("IPYTHONDIR", str(write_ipython_dir(tmp_path / "ipython")))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    NotebookClient(
        notebook, timeout=cell_timeout, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    nbformat.write(notebook, tmp_path / name)
    check_saved(tmp_path / name)
    cells = [cell.outputs for cell in notebook.cells if cell.cell_type == "code"]
    errors = [out for outputs in cells for out in outputs if out.output_type == "error"]
    assert not errors, errors
    stderr = [out.text for outputs in cells for out in outputs if out.get("name") == "stderr"]
    assert not stderr, stderr
    return cells


def text(outputs: list[Any]) -> str:
    return "\n".join(
        str(out.get("text", ""))
        + str(out.get("data", {}).get("text/plain", ""))
        + str(out.get("data", {}).get("text/markdown", ""))
        for out in outputs
    )


def chat_views(cells: list[Any]) -> list[str]:
    """The plain copies of every finished ChatView: its output, once the exchange ended, is the
    static copy (no widget view, which a reopened notebook could not show)."""
    finished = [
        out.data
        for outputs in cells
        for out in outputs
        if "lmj-chat-static" in out.get("data", {}).get("text/markdown", "")
    ]
    assert all(WIDGET not in data for data in finished)
    return [data["text/plain"] for data in finished]


def test_quickstart(server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cells = run_notebook(
        "quickstart.ipynb", server, monkeypatch, tmp_path, LM_JUPYTER_QUICKSTART_MODEL="test/tiny-chat"
    )
    assert "test/tiny-chat" in text([out for outputs in cells for out in outputs])  # ls, load, ps
    manager = cells[1]  # %lms: the model manager widget
    assert WIDGET in manager[0].data
    chats = chat_views(cells)
    assert len(chats) == 2
    assert (
        chats[0].startswith("> Write a haiku about Jupyter notebooks.")
        and "<sub>test/tiny-chat · " in chats[0]
    )
    assert chats[1].startswith("> Now one about local language models.")
    assert text(cells[9]).strip() in chats[1]  # print(second): the --out variable holds the reply
    history = text(cells[10])
    assert (
        "**user:** Write a haiku" in history and "**user:** Now one about local language models." in history
    )


def test_tools_and_reasoning(server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cells = run_notebook(
        "tools-and-reasoning.ipynb",
        server,
        monkeypatch,
        tmp_path,
        LM_JUPYTER_TOOLS_MODEL="test/tiny-tools",
        LM_JUPYTER_REASONING_MODEL="test/tiny-think",
    )
    schema = text(cells[2])
    assert "'convert_temperature'" in schema and "'enum': ['celsius', 'fahrenheit']" in schema
    tool_chat, reasoning_chat = chat_views(cells)[0], chat_views(cells)[2]
    assert "**Tool call** `convert_temperature(" in tool_chat
    conversions = text(cells[4])
    assert "celsius" in conversions or "fahrenheit" in conversions
    assert "Review(sentiment=" in text(cells[7])
    opened = f"<details open><summary>Reasoning</summary>\n\n{REASONING}\n\n</details>"
    assert f"{opened}\n\n{ANSWER}" in reasoning_chat  # open and foldable, as --reasoning show asks
    assert "**tool result**" not in text(cells[9])  # history: --new started the reasoning chat
    assert ANSWER in text(cells[9])


def test_model_management(server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cells = run_notebook(
        "model-management.ipynb", server, monkeypatch, tmp_path, LM_JUPYTER_MM_MODEL="test/tiny-long"
    )
    assert WIDGET in cells[1][0].data and WIDGET in cells[2][0].data
    # each panel output has its static twin, which the saved notebook shows without a kernel
    assert all("lmj-mm-static" in cells[i][1].data["text/markdown"] for i in (1, 2))
    assert "'totalBytes'" in text(cells[3])
    assert "Context Length: 2,048" in text(cells[4]) and "Context Length: 16,384" in text(cells[5])
    assert "'contextBytes'" in text(cells[6])
    assert 'identifier "demo"' in text(cells[7])
    assert "demo" in text(cells[8])
    assert "('demo', 'idle', 2048, 600000)" in text(cells[9])
    assert text(cells[10]).strip() == 'Model "demo" unloaded.'


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_tools_and_reasoning_with_qwen(
    server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The notebook as shipped: Qwen2.5-Coder-1.5B calls the Python function and fills the schema."""
    cells = run_notebook("tools-and-reasoning.ipynb", server, monkeypatch, tmp_path, cell_timeout=600)
    assert "(21.5, 'celsius')" in text(cells[4])
    tool_chat = chat_views(cells)[0]
    assert "70.7" in tool_chat  # the tool's result, shown on the card
    # ... and then a real answer: not the call written out again as JSON, nor a repeated call
    answer = tool_chat.split("```", 2)[-1].rsplit("<sub>", 1)[0].strip()
    assert "70.7" in answer and "{" not in answer and "repeated a tool call" not in answer, tool_chat
    assert "Review(sentiment='positive'" in text(cells[7])


def test_data_notebook(server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """notebooks/data.ipynb: llm.map with a schema, the cache on a re-run, classify, embed and a
    failed row, on a few rows of the shipped dataset with the tiny models."""
    shutil.copytree(NOTEBOOKS / "data", tmp_path / "data")
    cells = run_notebook(
        "data.ipynb",
        server,
        monkeypatch,
        tmp_path,
        LM_JUPYTER_DATA_MODEL="test/tiny-chat",
        LM_JUPYTER_DATA_EMBED_MODEL="test/tiny-embed",
        LM_JUPYTER_DATA_ROWS="6",
        LM_JUPYTER_LLM_CACHE=str(tmp_path / "llm-cache.sqlite3"),
    )
    every = text([out for outputs in cells for out in outputs])
    assert "topic right:" in every and "accuracy:" in every
    assert "6/6 rows, 6 from cache" in text(cells[3])  # the re-run computed nothing
    assert "array([1.])" in text(cells[5])  # each row's label probabilities sum to 1
    assert "((6, " in text(cells[6])  # one vector per row
    assert "context length" in text(cells[7])  # the long row failed alone
    bars = [out for outputs in cells for out in outputs if "data" in out and WIDGET in out.data]
    assert len(bars) == 6  # a progress bar per call
    # Saved without widget state, a bar reads as its final progress line.
    assert "llm.classify 6/6 rows" in text(cells[4]) and "done" in text(cells[4])
