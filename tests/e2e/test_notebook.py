"""notebooks/quickstart.ipynb runs top to bottom in a real kernel against a real server."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from lm_jupyter.kernel.discovery import ServerInfo

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"


def test_quickstart_executes(server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LM_JUPYTER_URL", server.url)
    monkeypatch.setenv("LM_JUPYTER_TOKEN", server.token)
    monkeypatch.setenv("LM_JUPYTER_QUICKSTART_MODEL", "test/tiny-chat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    texts = "\n".join(
        str(out.get("text", ""))
        + str(out.get("data", {}).get("text/plain", ""))
        + str(out.get("data", {}).get("text/markdown", ""))
        for out in outputs
    )
    assert "test/tiny-chat" in texts  # listed, loaded and shown by ps
    assert any("text/markdown" in out.get("data", {}) for out in outputs)  # the %%chat answer
