"""Presets end to end: saved with `lmj preset`, applied through the official openai client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.isolated_server import IsolatedServer, isolated_server
from tests.tiny_gguf import EOS_ID, IM_END_ID

CHAT = "test/tiny-chat"
MSGS = [{"role": "user", "content": "hi"}]
NEVER_STOP = {str(EOS_ID): -100, str(IM_END_ID): -100}  # the tiny model runs to max_tokens


@pytest.fixture(scope="module")
def own(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedServer]:
    with isolated_server(tmp_path_factory.mktemp("presets"), models_dir) as server:
        yield server


@pytest.fixture(scope="module")
def client(own: IsolatedServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=own.info.v1, api_key=own.info.token, max_retries=0, timeout=120)


def chat(client: openai.OpenAI, preset: str | None = None, **fields: object) -> openai.types.ChatCompletion:
    body: dict = {"logit_bias": NEVER_STOP, **({"preset": preset} if preset else {})}
    fields.setdefault("messages", MSGS)
    return client.chat.completions.create(model=CHAT, extra_body=body, **fields)  # type: ignore[arg-type]


def test_max_tokens_from_the_preset_and_from_the_request(own: IsolatedServer, client: openai.OpenAI) -> None:
    saved = own.lmj("preset", "save", "short", "--max-tokens", "3")
    assert 'Preset "short" saved.' in saved.stderr
    assert json.loads((own.presets_dir / "short.json").read_text()) == {"max_tokens": 3}
    assert chat(client, "short").usage.completion_tokens == 3
    assert chat(client, "short", max_tokens=6).usage.completion_tokens == 6  # the request wins
    streamed = client.chat.completions.create(
        model=CHAT, messages=MSGS, stream=True, extra_body={"preset": "short", "logit_bias": NEVER_STOP}
    )
    assert sum(1 for c in streamed if c.choices and c.choices[0].delta.content) <= 3
    # The /api/v0 twin and /v1/completions apply presets too.
    v0 = httpx.post(
        own.info.url + "api/v0/chat/completions",
        headers={"Authorization": f"Bearer {own.info.token}"},
        json={"model": CHAT, "messages": MSGS, "preset": "short", "logit_bias": NEVER_STOP},
        timeout=120,
    )
    assert v0.status_code == 200 and v0.json()["usage"]["completion_tokens"] == 3
    text = client.completions.create(model=CHAT, prompt="a", extra_body={"preset": "short"})
    assert text.usage is not None and text.usage.completion_tokens <= 3


def test_seed_and_temperature_make_output_repeatable(own: IsolatedServer, client: openai.OpenAI) -> None:
    own.lmj("preset", "save", "seeded", "--seed", "7", "--temperature", "1.0", "--max-tokens", "16")
    first = chat(client, "seeded").choices[0].message.content
    assert first and chat(client, "seeded").choices[0].message.content == first
    other = chat(client, "seeded", seed=8).choices[0].message.content  # the request's seed wins
    assert other != first


def test_system_prompt(own: IsolatedServer, client: openai.OpenAI) -> None:
    own.lmj("preset", "save", "terse", "--system", "You answer in one word, always.")
    plain = chat(client, max_tokens=1).usage.prompt_tokens
    with_preset = chat(client, "terse", max_tokens=1).usage.prompt_tokens
    assert with_preset > plain + 5
    # A request with its own system message keeps it; the preset's is not added.
    own_system = [{"role": "system", "content": "Hi."}, *MSGS]
    mine = chat(client, messages=own_system, max_tokens=1).usage.prompt_tokens
    assert chat(client, "terse", messages=own_system, max_tokens=1).usage.prompt_tokens == mine
    # /v1/completions has no messages: the system prompt does not apply there.
    alone = client.completions.create(model=CHAT, prompt="a", max_tokens=1).usage.prompt_tokens
    preset = client.completions.create(model=CHAT, prompt="a", max_tokens=1, extra_body={"preset": "terse"})
    assert preset.usage.prompt_tokens == alone


def test_context_length_applies_when_the_preset_loads_the_model(
    own: IsolatedServer, client: openai.OpenAI
) -> None:
    own.lmj("preset", "save", "ctx", "--context-length", "512", "--max-tokens", "2")
    reply = client.chat.completions.create(
        model="test/tiny-long", messages=MSGS, extra_body={"preset": "ctx"}
    )
    assert reply.usage.completion_tokens <= 2
    rows = {row["identifier"]: row for row in json.loads(own.lmj("ps", "--json").stdout)}
    assert rows["test/tiny-long"]["contextLength"] == 512


def test_json_schema_and_from_file(own: IsolatedServer, tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    (tmp_path / "base.json").write_text(json.dumps({"top_k": 20, "stop": ["\n\n"], "temperature": 0.1}))
    own.lmj(
        "preset", "save", "structured", "--from-file", str(tmp_path / "base.json"),
        "--json-schema", str(tmp_path / "schema.json"), "--temperature", "0.3",
    )  # fmt: skip
    shown = json.loads(own.lmj("preset", "show", "structured").stdout)
    assert shown == {
        "name": "structured",
        "temperature": 0.3,  # the flag beats the file
        "top_k": 20,
        "stop": ["\n\n"],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "structured", "strict": True, "schema": schema},
        },
    }
    # The preset's response_format reaches the engine, which constrains the output to the schema.
    headers = {"Authorization": f"Bearer {own.info.token}"}
    body = {"model": CHAT, "messages": MSGS, "preset": "structured", "max_tokens": 40}
    reply = httpx.post(own.info.url + "v1/chat/completions", headers=headers, json=body, timeout=120)
    content = reply.json()["choices"][0]["message"]["content"]
    assert "".join(content.split()).startswith('{"answer"'), content
    listing = own.lmj("preset", "ls").stdout
    assert "structured" in listing and "top_k=20" in listing
    assert "structured" in [p["name"] for p in json.loads(own.lmj("preset", "ls", "--json").stdout)]
    missing = own.lmj("preset", "save", "x", "--from-file", str(tmp_path / "nope.json"), check=False)
    assert missing.returncode == 1 and "--from-file: cannot read" in missing.stderr


def test_errors_name_the_preset_or_the_field(own: IsolatedServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        chat(client, "no-such-preset")
    error = caught.value.body
    assert error["param"] == "preset" and error["code"] == "preset_not_found"
    assert "'no-such-preset'" in error["message"] and "lmj preset ls" in error["message"]

    bad = own.lmj("preset", "save", "hot", "--temperature", "5", check=False)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "'temperature'" in bad.stderr
    put = httpx.put(
        own.info.url + "api/v1/presets/typo",
        headers={"Authorization": f"Bearer {own.info.token}"},
        json={"temprature": 0.5},
    )
    assert put.status_code == 400 and put.json()["error"]["param"] == "temprature"
    assert "Unknown preset field" in put.json()["error"]["message"]
    name = httpx.put(
        own.info.url + "api/v1/presets/.hidden",
        headers={"Authorization": f"Bearer {own.info.token}"},
        json={},
    )
    assert name.status_code == 400 and "Invalid preset name" in name.json()["error"]["message"]

    # A request's own bad field is named as the client sent it, even with a system prompt added.
    own.lmj("preset", "save", "sys", "--system", "Be brief.")
    wrong = [*MSGS, {"role": "wizard", "content": "x"}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=CHAT, messages=wrong, extra_body={"preset": "sys"})
    assert caught.value.body["param"] == "messages.1.role"

    own.lmj("preset", "save", "gone", "--max-tokens", "2")
    assert chat(client, "gone").usage.completion_tokens == 2
    assert 'Preset "gone" deleted.' in own.lmj("preset", "rm", "gone").stderr
    with pytest.raises(openai.BadRequestError) as caught:
        chat(client, "gone")
    assert caught.value.body["code"] == "preset_not_found"
    again = own.lmj("preset", "rm", "gone", check=False)
    assert again.returncode == 1 and "does not exist" in again.stderr


def test_api_tokens_use_and_read_presets_but_do_not_write_them(own: IsolatedServer) -> None:
    own.lmj("preset", "save", "shared", "--max-tokens", "2")
    token = own.lmj("token", "create", "preset-user").stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=own.info.url, headers=headers, timeout=120) as http:
        assert "shared" in [p["name"] for p in http.get("api/v1/presets").json()["data"]]
        assert http.get("api/v1/presets/shared").json() == {"name": "shared", "max_tokens": 2}
        body = {"model": CHAT, "messages": MSGS, "preset": "shared"}
        assert http.post("v1/chat/completions", json=body).json()["usage"]["completion_tokens"] <= 2
        for response in (http.put("api/v1/presets/mine", json={}), http.delete("api/v1/presets/shared")):
            assert response.status_code == 403
            assert response.json()["error"]["code"] == "insufficient_permissions"
    assert (own.presets_dir / "shared.json").exists() and not (own.presets_dir / "mine.json").exists()


def test_help(own: IsolatedServer) -> None:
    for command in ("ls", "show", "save", "rm"):
        assert "usage: lmj preset " + command in own.lmj("preset", command, "--help").stdout


def test_lms_preset_magic(own: IsolatedServer, capsys: pytest.CaptureFixture[str]) -> None:
    """``%lms preset`` runs the same commands as ``lmj preset`` (kernel/admin.py)."""
    from IPython.core.interactiveshell import InteractiveShell

    from lm_jupyter.client.tables import Table
    from lm_jupyter.kernel.magics import LmMagics

    magics = LmMagics(shell=InteractiveShell.instance())
    magics.lms(f"connect {own.info.url} --token {own.info.token}")
    assert magics.lms('preset save magic --max-tokens 4 --system "Be kind."') is None
    assert 'Preset "magic" saved.' in capsys.readouterr().out
    assert magics.lms("preset show magic") == {"name": "magic", "system_prompt": "Be kind.", "max_tokens": 4}
    assert "magic" in [p["name"] for p in magics.lms("preset ls --json")]
    table = magics.lms("preset ls")
    assert isinstance(table, Table) and "magic" in str(table)
    magics.lms("preset rm magic")
    assert 'Preset "magic" deleted.' in capsys.readouterr().out
    assert magics.lms("preset show magic") is None
    assert "Preset 'magic' does not exist" in capsys.readouterr().err
    assert magics.lms("preset save hot --temperature 9") is None
    assert "'temperature'" in capsys.readouterr().err
    assert magics.lms("preset") is None
    assert "the following arguments are required" in capsys.readouterr().err
