"""The extension inside an ordinary Jupyter server: enabled on install, routes under base_url."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError

from tests.conftest import write_test_models


@pytest.fixture
def jp_server_config(tmp_path: Path) -> dict:
    models = write_test_models(tmp_path / "models")
    return {
        "ServerApp": {"jpserver_extensions": {"lm_jupyter": True}, "allow_unauthenticated_access": False},
        "LmJupyterApp": {"models_dir": str(models)},
    }


async def test_routes_live_under_base_url_and_need_auth(jp_fetch, jp_base_url: str) -> None:
    assert jp_base_url == "/a%40b/"  # pytest-jupyter's awkward default catches hard-coded paths
    models = json.loads((await jp_fetch("v1", "models")).body)
    assert "test/tiny-chat" in {m["id"] for m in models["data"]}
    reply = await jp_fetch(
        "v1",
        "chat",
        "completions",
        method="POST",
        body=json.dumps(
            {"model": "test/tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
        ),
    )
    assert json.loads(reply.body)["usage"]["completion_tokens"] <= 3
    v0 = json.loads((await jp_fetch("api", "v0", "models", "test", "tiny-chat")).body)
    assert v0["state"] == "loaded"
    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch("v1", "models", headers={"Authorization": ""})
    assert caught.value.code in (401, 403)


def test_extension_is_enabled_by_install() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        capture_output=True,
        text=True,
        check=True,
    )
    text = out.stdout + out.stderr
    line = next(line for line in text.splitlines() if line.strip().startswith("lm_jupyter "))
    assert "enabled" in line
    assert "lm_jupyter 0." in text and "OK" in text


def test_import_does_not_load_engines() -> None:
    code = (
        "import sys, lm_jupyter; lm_jupyter._jupyter_server_extension_points(); "
        "print('llama_cpp' in sys.modules, 'lm_jupyter.engine.worker.llama.backend' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
