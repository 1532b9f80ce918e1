"""The OpenAPI description against the live server, and schemathesis fuzzing every route it lists.

A bounded run: a few generated requests per operation (valid and invalid bodies, path values),
each answered without a 5xx and, when it is an error, in OpenAI's error format. The Hub routes
run against the tests' stand-in Hub, so nothing leaves the machine.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from lm_jupyter.server.app import ROUTES
from lm_jupyter.server.openapi import verbs_of
from tests.conftest import write_test_models
from tests.e2e.isolated_server import IsolatedServer, hub_server
from tests.hub_standin import StandinHub


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedServer]:
    folder = tmp_path_factory.mktemp("fuzz")
    hub = StandinHub().start()
    try:
        with hub_server(folder, hub.endpoint, ["--LmJupyterApp.max_request_bytes=65536"]) as server:
            write_test_models(folder / "models")  # listed from the next request on
            yield server
    finally:
        hub.stop()


@pytest.fixture(scope="module")
def description(own: IsolatedServer) -> dict:
    response = httpx.get(
        own.info.url + "v1/openapi.json", headers={"Authorization": f"Bearer {own.info.token}"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_the_description_lists_every_route_and_verb(description: dict) -> None:
    assert description["openapi"] == "3.1.0"
    listed = {(verb, path) for path, operations in description["paths"].items() for verb in operations}
    assert len(listed) == sum(len(verbs_of(handler)) for _, handler in ROUTES)
    chat = description["paths"]["/v1/chat/completions"]["post"]
    schema_ref = chat["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = description["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert {"model", "messages", "tools", "response_format"} <= set(schema["properties"])
    assert (
        description["paths"]["/v1/responses/{response_id}"]["delete"]["parameters"][0]["name"]
        == "response_id"
    )


@schemathesis.check
def openai_error_format(ctx: object, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """Every error answer is OpenAI's ``{"error": {message, type, param, code}}``, Anthropic's
    ``{"type": "error", "error": {type, message}}`` on the Messages API's routes, or LM Studio's
    on its REST v1 chat."""
    if response.status_code < 400:
        return
    assert response.headers.get("content-type", [""])[0].startswith("application/json"), response.text
    if case.path.startswith("/v1/messages"):
        body = response.json()
        assert body["type"] == "error" and set(body["error"]) == {"type", "message"}, body
        assert body["error"]["message"], body
        return
    error = response.json()["error"]
    if case.path == "/api/v1/chat":  # LM Studio's REST v1 shape: code and param only when known
        assert {"type", "message"} <= set(error) <= {"type", "message", "code", "param"}, error
        assert error["message"], error
        return
    assert set(error) == {"message", "type", "param", "code"} and error["message"], error


CHECKS = [not_a_server_error, openai_error_format]

# A few examples per operation and mode, the same ones on every run (derandomize): bounded
# in time (about a minute here) and reproducible.
BOUNDED = settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_route_answers_5xx_or_a_non_openai_error(
    own: IsolatedServer, description: dict, mode: GenerationMode
) -> None:
    """schemathesis' own generation over each operation (its pytest plugin predates pytest 9,
    so the operations are driven here with hypothesis directly)."""
    api = schemathesis.openapi.from_dict(description)
    api.config.base_url = own.info.url.rstrip("/")
    headers = {"Authorization": f"Bearer {own.info.token}"}
    failures = []
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) == sum(len(verbs_of(handler)) for _, handler in ROUTES)
    for operation in operations:
        if operation.path == "/api/v1/logs/stream":
            continue  # an endless event stream: tested in test_log_stream.py

        @BOUNDED
        @given(case=operation.as_strategy(generation_mode=mode))
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(
                headers=headers, checks=[not_a_server_error, openai_error_format], timeout=60
            )

        try:
            call()
        except Exception as exc:  # collect every operation's first failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_fuzzing_left_the_server_healthy(own: IsolatedServer) -> None:
    body = {"model": "test/tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    reply = httpx.post(
        own.info.url + "v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {own.info.token}"},
        timeout=120,
    )
    assert reply.status_code == 200, reply.text
