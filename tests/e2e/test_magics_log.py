"""``%lms log stream`` in a real kernel: live events until the kernel is interrupted."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lm_jupyter.client.discovery import ServerInfo
from tests.e2e.test_magics import Kernel, execute, kernel, magics_server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.timeout(120)


def test_log_stream_runs_until_interrupted(kernel: Kernel, magics_server: ServerInfo) -> None:  # noqa: F811
    printed: list[str] = []
    steps: list[str] = []

    def drive(msg: dict[str, Any]) -> None:
        if msg["msg_type"] != "stream" or msg["content"]["name"] != "stdout":
            return
        printed.append(msg["content"]["text"])
        text = "".join(printed)
        if "Streaming logs from lm_jupyter" in text and "request" not in steps:
            steps.append("request")
            body = {"model": "test/tiny-chat", "prompt": "from the notebook", "max_tokens": 2}
            headers = {"Authorization": f"Bearer {magics_server.token}"}
            response = httpx.post(
                magics_server.url + "v1/completions", json=body, headers=headers, timeout=60
            )
            assert response.status_code == 200
        if "POST /v1/completions 200" in text and "interrupt" not in steps:
            steps.append("interrupt")
            kernel.km.interrupt_kernel()

    run = execute(
        kernel, "%lms log stream --source model --source server --stats", timeout=60, on_message=drive
    )
    run.assert_no_error()
    assert steps == ["request", "interrupt"]
    out = run.stdout
    assert "type: llm.prediction.input\nmodelIdentifier: test/tiny-chat\n" in out
    assert "input:\nfrom the notebook\n" in out and "stopReason: " in out
    assert out.rstrip().endswith("Stopped streaming logs.")
    assert magics_server.token not in out
    assert execute(kernel, "print(6 * 7)").stdout == "42\n"  # the kernel is free again


def test_log_stream_bad_options_print_one_line(kernel: Kernel) -> None:  # noqa: F811
    for line, message in (
        ("%lms log stream --stats --source server", "--stats can only be used with --source model"),
        ("%lms log stream --filter sideways", "Invalid --filter 'sideways'"),
        ("%lms log", "the only command is `%lms log stream`"),
    ):
        run = execute(kernel, line)
        run.assert_no_error()
        assert message in run.stderr and run.stderr.count("\n") == 1, run.stderr
