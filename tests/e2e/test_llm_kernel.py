"""llm.map in a real kernel (the progress widget, interrupt) and in a terminal (text progress)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lm_jupyter.client.discovery import ServerInfo

from .kernel_harness import Kernel, execute, start_kernel, stop_kernel, value, widget_states

NO_EOS = {"2": -100, "4": -100}


def _env(server: ServerInfo, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LM_JUPYTER_URL": server.url,
        "LM_JUPYTER_TOKEN": server.token,
        "LM_JUPYTER_LLM_CACHE": str(tmp_path / "cache.sqlite3"),
    }


@pytest.fixture
def kernel(server: ServerInfo, tmp_path: Path) -> Iterator[Kernel]:
    started = start_kernel(_env(server, tmp_path))
    yield started
    stop_kernel(started)


@pytest.fixture
def pair(http: httpx.Client) -> Iterator[str]:
    loaded = http.post(
        "api/v1/models/load", json={"model": "test/tiny-chat", "identifier": "kern-2", "parallel": 2}
    )
    assert loaded.status_code == 200, loaded.text
    yield "kern-2"
    http.post("api/v1/models/unload", json={"instance_id": "kern-2"})


def _progress(run: Any) -> dict[str, Any]:
    views = [
        v for v in widget_states(run).values() if v.state.get("_anywidget_id", "").endswith("DataProgress")
    ]
    assert len(views) == 1, run.messages
    return views[0].state


def test_progress_widget_in_a_notebook(kernel: Kernel, pair: str) -> None:
    run = execute(
        kernel,
        f"from lm_jupyter import llm\nr = llm.map('Say {{}}', ['a', 'b', 'c'], model='{pair}', max_tokens=3)",
        timeout=120,
    )
    run.assert_no_error()
    state = _progress(run)
    assert (state["done"], state["total"], state["errors"], state["status"]) == (3, 3, 0, "done")
    assert state["title"] == "llm.map" and state["rate"].endswith("rows/s")
    assert value(kernel, "r.tolist()") == value(kernel, "[x for x in r if isinstance(x, str)]")


def test_interrupt_returns_the_rows_already_done(kernel: Kernel, pair: str, http: httpx.Client) -> None:
    """Interrupt once two rows are done: the call returns those rows (the rest missing) and
    the server stops the generations in flight."""
    code = (
        "from lm_jupyter import llm\n"
        f"r = llm.map('{{}}', [f'row {{i}}' for i in range(20)], model='{pair}', max_tokens=1500, "
        f"logit_bias={NO_EOS!r})"
    )
    interrupted = False

    def on_message(msg: dict[str, Any]) -> None:
        nonlocal interrupted
        state = msg["content"].get("data", {}).get("state", {})
        if msg["msg_type"] == "comm_msg" and state.get("done", 0) >= 2 and not interrupted:
            interrupted = True
            kernel.km.interrupt_kernel()

    run = execute(kernel, code, timeout=240, on_message=on_message)
    assert interrupted
    run.assert_no_error()
    assert _progress(run)["status"] == "interrupted"
    done = value(kernel, "int(r.notna().sum())")
    assert 2 <= done < 20
    assert value(kernel, "[len(r), llm.last_run.interrupted, llm.last_run.done]") == [20, True, done]
    assert value(kernel, "len(llm.last_run.missing)") == 20 - done
    assert value(kernel, "sorted(r.attrs['missing']) == sorted(r[r.isna()].index.tolist())")
    # The streams in flight were closed, so the server cancelled them: the instance goes idle.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        models = http.get("api/v1/models").json()["models"]
        states = [i["status"] for m in models for i in m["loaded_instances"] if i["id"] == pair]
        if states == ["idle"]:
            break
        time.sleep(0.2)
    assert states == ["idle"]


def test_text_progress_in_a_terminal(server: ServerInfo, tmp_path: Path, pair: str) -> None:
    code = (
        f"from lm_jupyter import llm\nprint(llm.map('{{}}', ['x', 'y'], model='{pair}', max_tokens=2).size)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=_env(server, tmp_path), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"
    last = done.stderr.strip().split("\r")[-1]
    assert last.startswith("llm.map [") and "2/2 rows" in last and last.endswith("done")


def test_llm_cell_magic(kernel: Kernel, pair: str) -> None:
    """``%%llm``: the cell is the template, DATA and --schema are names in the notebook, the
    result is the cell's value and, with --out, a variable; mistakes are one line on stderr."""
    setup = execute(
        kernel,
        "%load_ext lm_jupyter\nimport pandas as pd\nfrom pydantic import BaseModel\n"
        "class Pick(BaseModel):\n    word: str\n"
        "books = pd.DataFrame({'title': ['Emma', 'Dracula']}, index=['em', 'dr'])",
    )
    setup.assert_no_error()
    mapped = execute(
        kernel, f"%%llm map books --model {pair} --max-tokens 3 --out said --no-progress\nSay {{title}}", 120
    )
    mapped.assert_no_error()
    assert "text/plain" in mapped.result  # the Series is the cell's output
    assert value(kernel, "[said.index.tolist(), all(isinstance(x, str) for x in said)]") == [
        ["em", "dr"],
        True,
    ]
    records = execute(
        kernel,
        f"%%llm map books --model {pair} --schema Pick --out picks --no-progress\nA word for {{title}}",
        120,
    )
    records.assert_no_error()
    assert value(kernel, "[list(picks.columns), picks.index.tolist()]") == [["word"], ["em", "dr"]]
    labels = execute(
        kernel, f"%llm classify books.title --labels yes,no --model {pair} --out verdict --no-progress", 120
    )
    labels.assert_no_error()
    assert value(kernel, "[list(verdict.columns), verdict['label'].isin(['yes', 'no']).all().item()]") == [
        ["label", "yes", "no"],
        True,
    ]
    vectors = execute(kernel, "%llm embed books.title --model test/tiny-embed --out vec --no-progress", 120)
    vectors.assert_no_error()
    assert value(kernel, "list(vec.shape)")[0] == 2

    for line, expected in (
        (f"%llm map books --model {pair}", "the cell holds the prompt template"),
        ("%llm map nowhere --model x\nSay {title}", "`nowhere` could not be evaluated"),
        ("%llm classify books --model x", "the following arguments are required: --labels"),
        ("%llm summarise books", "invalid choice: 'summarise'"),
    ):
        bad = execute(kernel, line.replace("%llm map nowhere", "%%llm map nowhere"))
        bad.assert_no_error()
        assert expected in bad.stderr and bad.stderr.count("\n") == 1, bad.stderr
