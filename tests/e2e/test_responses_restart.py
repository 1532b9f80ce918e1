"""Stored responses survive a server restart: the SQLite file outlives the process."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from openai import OpenAI

from tests.e2e.isolated_server import isolated_server
from tests.e2e.test_responses import CHAT, forced


def client_for(server) -> OpenAI:
    return OpenAI(base_url=server.info.v1, api_key=server.info.token, max_retries=0, timeout=120)


def test_continue_a_stored_response_after_a_restart(models_dir: Path, tmp_path: Path) -> None:
    with isolated_server(tmp_path, models_dir) as first_server:
        client = client_for(first_server)
        first = client.responses.create(
            model=CHAT, input="Remember me.", max_output_tokens=50, extra_body=forced("Remembered.")
        )
        gone = client.responses.create(model=CHAT, input="x", max_output_tokens=2)
        client.responses.delete(gone.id)
    assert (tmp_path / "data" / "lm_jupyter" / "responses.sqlite3").exists()

    with isolated_server(tmp_path, models_dir) as second_server:
        client = client_for(second_server)
        assert client.responses.retrieve(first.id).output_text == "Remembered."
        listed = client.responses.input_items.list(first.id)
        assert [item.content[0].text for item in listed.data] == ["Remember me."]
        second = client.responses.create(
            model=CHAT,
            input="And now?",
            previous_response_id=first.id,
            max_output_tokens=50,
            extra_body=forced("Still here."),
        )
        assert second.output_text == "Still here."
        # the history came from the file: the prompt holds the first turn too
        assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(gone.id)
