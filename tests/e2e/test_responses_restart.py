"""Responses on servers of their own: stored state across a restart, and presets."""

from __future__ import annotations

import json
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


def test_a_preset_applies_and_instructions_win(models_dir: Path, tmp_path: Path) -> None:
    preset = {"system_prompt": "You are a pirate. " * 10, "max_tokens": 3, "temperature": 0.2}
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "pirate.json").write_text(json.dumps(preset))
    with isolated_server(tmp_path, models_dir) as server:
        client = client_for(server)
        ask = {"model": CHAT, "input": "Hello."}
        plain = client.responses.create(**ask, max_output_tokens=3)
        pirate = client.responses.create(
            **{**ask, "max_output_tokens": None}, extra_body={"preset": "pirate"}
        )
        assert pirate.usage.output_tokens == 3  # the preset's max_tokens
        assert pirate.usage.input_tokens > plain.usage.input_tokens + 30  # its system prompt
        own = client.responses.create(**ask, instructions="Be brief.", extra_body={"preset": "pirate"})
        assert own.usage.input_tokens < pirate.usage.input_tokens  # instructions replace it
        with pytest.raises(openai.BadRequestError) as caught:
            client.responses.create(**ask, extra_body={"preset": "nobody"})
        assert caught.value.body["param"] == "preset"
