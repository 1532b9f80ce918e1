"""``lmj --host/--port``: which URL they name."""

from __future__ import annotations

import pytest

from lm_jupyter.client.discovery import remote_server


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("gpu-box", 8888, "http://gpu-box:8888/"),
        (None, 5555, "http://127.0.0.1:5555/"),
        ("10.0.0.7", None, "http://10.0.0.7:1234/"),
        ("::1", 8888, "http://[::1]:8888/"),
        ("[::1]", 8888, "http://[::1]:8888/"),
        ("https://lab.example.org", 443, "https://lab.example.org:443/"),
    ],
)
def test_remote_server_url(
    host: str | None, port: int | None, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LM_JUPYTER_TOKEN", "t0k")
    server = remote_server(host, port)
    assert server is not None and server.url == url and server.token == "t0k" and server.source == "remote"


def test_no_remote_options_means_discovery() -> None:
    assert remote_server(None, None) is None
