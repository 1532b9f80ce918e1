"""Fill-in-the-middle: OpenAI's ``suffix`` on /v1/completions and llama-server's ``/infill``.

A private server holds tiny models whose headers name FIM tokens (current and legacy keys)
and one without; the FIM prompt is checked against the same prompt written out by hand,
token for token (greedy decoding, so equal prompts give equal text).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tiny_gguf import write_tiny_model

from tests.conftest import QWEN_KEY, link_qwen
from tests.e2e.isolated_server import IsolatedServer, isolated_server

FIM = "test/tiny-fim"
LEGACY = "test/tiny-fim-legacy"
VOCAB = "test/tiny-fim-vocab"  # FIM tokens in the vocabulary, none named in the header
PLAIN = "test/tiny-chat"
PREFIX, SUFFIX = "def hello(", ")\n    return the world\n"
# llama.vim's layout: the cursor's line (here all of PREFIX) follows the middle token
HAND_WRITTEN = f"<|fim_prefix|><|fim_suffix|>{SUFFIX}<|fim_middle|>{PREFIX}"


def write_fim_models(root: Path) -> Path:
    write_tiny_model(root / "test" / "tiny-fim-GGUF" / "tiny-fim-F32.gguf", name="tiny-fim", fim_keys="fim")
    write_tiny_model(
        root / "test" / "tiny-fim-legacy-GGUF" / "tiny-fim-legacy-F32.gguf",
        name="tiny-fim-legacy",
        fim_keys="legacy",
        seed=5,
    )
    write_tiny_model(
        root / "test" / "tiny-fim-vocab-GGUF" / "tiny-fim-vocab-F32.gguf",
        name="tiny-fim-vocab",
        fim_keys="vocab",
        seed=6,
    )
    write_tiny_model(root / "test" / "tiny-chat-GGUF" / "tiny-chat-F32.gguf")
    return root


@pytest.fixture(scope="module")
def fim_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedServer]:
    folder = tmp_path_factory.mktemp("fim")
    with isolated_server(folder, write_fim_models(folder / "models")) as server:
        yield server


@pytest.fixture(scope="module")
def client(fim_server: IsolatedServer) -> Iterator[httpx.Client]:
    info = fim_server.info
    with httpx.Client(
        base_url=info.url, headers={"Authorization": f"Bearer {info.token}"}, timeout=120
    ) as http:
        yield http


def complete(client: httpx.Client, **body: object) -> dict:
    response = client.post("v1/completions", json={"temperature": 0, "max_tokens": 12, **body})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("model", [FIM, LEGACY, VOCAB])
def test_suffix_renders_the_models_fim_tokens(client, model):
    fim = complete(client, model=model, prompt=PREFIX, suffix=SUFFIX)
    by_hand = complete(client, model=model, prompt=HAND_WRITTEN)
    assert fim["choices"][0]["text"] == by_hand["choices"][0]["text"]
    assert fim["usage"]["prompt_tokens"] == by_hand["usage"]["prompt_tokens"]
    # Empty prefix and suffix: BOS and the three FIM tokens, each one token.
    empty = complete(client, model=model, prompt="", suffix="", max_tokens=1)
    assert empty["usage"]["prompt_tokens"] == 4
    # Code that spells a FIM token is code: its 14 characters are not one token.
    spelled = complete(client, model=model, prompt="<|fim_middle|>", suffix="", max_tokens=1)
    assert spelled["usage"]["prompt_tokens"] > 4 + 1


def test_capabilities_say_which_models_fill_in_the_middle(client):
    models = {m["key"]: m for m in client.get("api/v1/models").json()["models"]}
    assert models[FIM]["capabilities"]["fill_in_middle"] is True
    assert models[LEGACY]["capabilities"]["fill_in_middle"] is True
    assert models[VOCAB]["capabilities"]["fill_in_middle"] is True
    assert models[PLAIN]["capabilities"]["fill_in_middle"] is False


def test_openai_sdk_sends_suffix(fim_server, client):
    from openai import OpenAI

    sdk = OpenAI(base_url=fim_server.info.v1, api_key=fim_server.info.token, max_retries=0)
    answer = sdk.completions.create(model=FIM, prompt=PREFIX, suffix=SUFFIX, temperature=0, max_tokens=12)
    assert answer.choices[0].text == complete(client, model=FIM, prompt=HAND_WRITTEN)["choices"][0]["text"]


def test_streamed_fim_equals_the_whole_answer(client):
    whole = complete(client, model=FIM, prompt=PREFIX, suffix=SUFFIX)["choices"][0]["text"]
    pieces = []
    body = {
        "model": FIM,
        "prompt": PREFIX,
        "suffix": SUFFIX,
        "temperature": 0,
        "max_tokens": 12,
        "stream": True,
    }
    with client.stream("POST", "v1/completions", json=body) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: {"):
                pieces.append(json.loads(line[6:])["choices"][0]["text"])
    assert "".join(pieces) == whole


def test_input_extra_goes_before_the_prefix(client):
    """The tiny model has no file separator token: other files read as code above the prefix."""
    extra = [{"filename": "util.py", "text": "import os"}]
    with_extra = complete(client, model=FIM, prompt=PREFIX, suffix=SUFFIX, input_extra=extra)
    by_hand = complete(
        client, model=FIM, prompt=f"<|fim_prefix|>import os\n<|fim_suffix|>{SUFFIX}<|fim_middle|>{PREFIX}"
    )
    assert with_extra["choices"][0]["text"] == by_hand["choices"][0]["text"]
    assert with_extra["usage"]["prompt_tokens"] == by_hand["usage"]["prompt_tokens"]


def test_a_keystroke_reuses_the_cached_prompt(client):
    """The cursor's line follows the middle token, so typing on it changes only the prompt's
    end and the prefix cache keeps the rest (in plain PSM order the whole suffix came after the
    change and was evaluated again on every keystroke)."""
    lines = "".join(f"value_{i} = compute({i}, scale={i * 3})\n" for i in range(6))
    suffix = "\n\nprint(total)\nprint(value_5)\n"
    first = complete(client, model=FIM, prompt=lines + "total = value_1", suffix=suffix, max_tokens=4)
    second = complete(client, model=FIM, prompt=lines + "total = value_1 +", suffix=suffix, max_tokens=4)
    usage = second["usage"]
    assert first["usage"]["prompt_tokens"] > 40
    # the two typed characters, the token they may re-merge with and the one re-evaluated for
    # its logits; the old layout evaluated the 30-character suffix again (over 30 tokens here)
    assert usage["prompt_tokens"] - usage["prompt_tokens_details"]["cached_tokens"] <= 4, usage


def test_infill_answers_in_llama_servers_shape(client):
    expected = complete(client, model=FIM, prompt=PREFIX, suffix=SUFFIX)
    body = {"model": FIM, "input_prefix": PREFIX, "input_suffix": SUFFIX, "n_predict": 12, "temperature": 0}
    answer = client.post("infill", json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["content"] == expected["choices"][0]["text"]
    assert data["stop"] is True
    assert data["tokens_predicted"] == expected["usage"]["completion_tokens"]
    assert data["tokens_evaluated"] == expected["usage"]["prompt_tokens"]
    assert data["stop_type"] in {"eos", "limit"}

    events = []
    with client.stream("POST", "infill", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert [e["stop"] for e in events] == [False] * (len(events) - 1) + [True]
    assert "".join(e["content"] for e in events) == data["content"]


def test_infill_without_model_uses_the_one_loaded_llm(client):
    body = {"input_prefix": PREFIX, "input_suffix": SUFFIX, "n_predict": 4, "temperature": 0}
    for instance in client.get("api/v1/models?loaded").json()["models"]:
        for loaded in instance["loaded_instances"]:
            client.post("api/v1/models/unload", json={"instance_id": loaded["id"]})
    missing = client.post("infill", json=body)
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "model"
    assert client.post("api/v1/models/load", json={"model": FIM}).status_code == 200
    answer = client.post("infill", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == FIM


def test_model_without_fim_tokens_gets_a_400_naming_suffix(client):
    response = client.post("v1/completions", json={"model": PLAIN, "prompt": "x", "suffix": "y"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "suffix"
    assert error["code"] == "fim_not_supported"
    assert "fim_pre" in error["message"]
    infill = client.post("infill", json={"model": PLAIN, "input_prefix": "x", "input_suffix": "y"})
    assert infill.status_code == 400
    assert infill.json()["error"]["param"] == "suffix"


@pytest.mark.parametrize(
    ("route", "body", "param"),
    [
        ("v1/completions", {"model": FIM, "prompt": "x", "input_extra": [{"text": "y"}]}, "input_extra"),
        ("v1/completions", {"model": FIM, "prompt": "x", "suffix": 3}, "suffix"),
        ("infill", {"model": FIM, "input_prefix": "x", "prompt": "y"}, "prompt"),
        (
            "infill",
            {"model": FIM, "input_prefix": "x", "input_extra": [{"filename": "a"}]},
            "input_extra.0.text",
        ),
        ("infill", {"model": FIM, "input_prefix": "x", "n_predict": 0}, "max_tokens"),
    ],
)
def test_bad_fim_requests_get_a_400_naming_the_field(client, route, body, param):
    response = client.post(route, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert client.get("api/v1/models").status_code == 200


@pytest.mark.slow
def test_qwen_coder_fills_in_the_middle(tmp_path):
    """The real Qwen2.5-Coder file's header names no FIM tokens (it predates the keys), but its
    vocabulary has them; with them the model closes the gap and stops by itself."""
    from lm_jupyter.chat.fim import SPELLINGS, fim_tokens
    from lm_jupyter.engine.gguf_meta import read_metadata
    from tests.conftest import QWEN_SOURCE

    meta = read_metadata(QWEN_SOURCE, find_tokens=SPELLINGS)
    assert not any(key.startswith("tokenizer.ggml.fim_") for key in meta.fields)
    assert fim_tokens(meta.token_text) is None
    tokens = fim_tokens(meta.token_text, meta.token_ids)
    assert tokens is not None
    assert (tokens.repo, tokens.file_sep) == ("<|repo_name|>", "<|file_sep|>")
    assert meta.token_ids["<|fim_prefix|>"] == 151659
    assert (tokens.prefix, tokens.suffix, tokens.middle) == (
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
    )
    models = tmp_path / "models"
    link_qwen(models)
    with isolated_server(tmp_path, models, ["--LmJupyterApp.threads=2"]) as server:
        info = server.info
        with httpx.Client(
            base_url=info.url, headers={"Authorization": f"Bearer {info.token}"}, timeout=600
        ) as http:
            answer = complete(
                http,
                model=QWEN_KEY,
                prompt="def add(a, b):\n    return ",
                suffix="\n\n\nprint(add(1, 2))\n",
                max_tokens=48,
            )
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["choices"][0]["text"].strip()
