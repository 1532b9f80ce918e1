"""The notebooks in notebooks/ run top to bottom in a real kernel against a real server.

Each runs with tiny models substituted through its environment variables; the tiny reasoning
model's output is forced (tests/e2e/forced_output.py) so the reasoning view has real content.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from lm_jupyter.kernel.discovery import ServerInfo

from .forced_output import ANSWER, REASONING, write_ipython_dir

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
    """Execute ``notebooks/NAME`` and return each code cell's outputs."""
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
    """The Markdown copies of every ChatView (the widget and its copy are one output)."""
    return [
        out.data["text/markdown"]
        for outputs in cells
        for out in outputs
        if "data" in out and WIDGET in out.data and "text/markdown" in out.data
    ]


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
    assert f"*Reasoning:*\n\n> {REASONING}\n\n{ANSWER}" in reasoning_chat
    assert "**tool result**" not in text(cells[9])  # history: --new started the reasoning chat
    assert ANSWER in text(cells[9])


def test_model_management(server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cells = run_notebook(
        "model-management.ipynb", server, monkeypatch, tmp_path, LM_JUPYTER_MM_MODEL="test/tiny-long"
    )
    assert WIDGET in cells[1][0].data and WIDGET in cells[2][0].data
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
    assert "70.7" in chat_views(cells)[0]  # the tool's result, shown on the card
    assert "Review(sentiment='positive'" in text(cells[7])
