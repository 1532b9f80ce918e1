"""apply_preset, preset validation, parse_with_preset and the presets folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lm_jupyter.api.errors import APIError
from lm_jupyter.api.presets import Preset, apply_preset, parse_preset, parse_with_preset
from lm_jupyter.api.requests import ChatCompletionRequest, CompletionRequest
from lm_jupyter.server.presets import PresetStore

MSGS = [{"role": "user", "content": "hi"}]
CHAT = {"model": "m", "messages": MSGS}


def preset(**fields: object) -> Preset:
    return parse_preset(json.dumps(fields).encode())


def test_preset_fills_what_the_request_leaves_out() -> None:
    merged = apply_preset(
        {**CHAT, "temperature": 0.2, "top_k": None}, preset(temperature=1.5, top_k=5, seed=3)
    )
    assert merged == {**CHAT, "temperature": 0.2, "top_k": 5, "seed": 3}  # null counts as left out


def test_max_completion_tokens_counts_as_max_tokens() -> None:
    merged = apply_preset({**CHAT, "max_completion_tokens": 9}, preset(max_tokens=3))
    assert "max_tokens" not in merged
    assert apply_preset(CHAT, preset(max_tokens=3))["max_tokens"] == 3


def test_system_prompt_is_prepended_unless_the_request_has_one() -> None:
    p = preset(system_prompt="Be brief.")
    assert apply_preset(CHAT, p)["messages"] == [{"role": "system", "content": "Be brief."}, *MSGS]
    for role in ("system", "developer"):
        own = [{"role": role, "content": "Mine."}, *MSGS]
        assert apply_preset({**CHAT, "messages": own}, p)["messages"] == own
    completion = {"model": "m", "prompt": "a"}
    assert apply_preset(completion, p) == completion  # no messages: nothing to prepend to
    assert apply_preset({"model": "m", "messages": "junk"}, p)["messages"] == "junk"  # validation reports it


def test_apply_preset_does_not_change_its_input() -> None:
    request = {**CHAT}
    apply_preset(request, preset(system_prompt="x", temperature=1.0))
    assert request == CHAT


def test_everything_else_is_carried() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}}
    merged = apply_preset(CHAT, preset(response_format=fmt, context_length=512, stop=["x"]))
    assert merged["response_format"] == fmt and merged["context_length"] == 512 and merged["stop"] == ["x"]
    assert "system_prompt" not in merged


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 2}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"context_length": 0}, "context_length"),
        ({"system_prompt": 5}, "system_prompt"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"temprature": 1}, "temprature"),
    ],
)
def test_invalid_presets_name_the_field(body: dict, param: str) -> None:
    with pytest.raises(APIError) as caught:
        parse_preset(json.dumps(body).encode())
    assert caught.value.status == 400 and caught.value.param == param


def test_preset_json_round_trip() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}}
    p = preset(system_prompt="s", temperature=0.5, response_format=fmt)
    assert parse_preset(json.dumps(p.to_json()).encode()) == p
    assert p.to_json()["response_format"]["json_schema"]["schema"] == {"type": "object"}


def _lookup(name: str) -> Preset:
    if name != "p":
        raise APIError(f"no preset {name}", param="preset", code="preset_not_found")
    return preset(system_prompt="Be brief.", max_tokens=3)


def test_parse_with_preset() -> None:
    body = json.dumps({**CHAT, "preset": "p", "temperature": 0.1}).encode()
    request = parse_with_preset(ChatCompletionRequest, body, _lookup)
    assert request.max_tokens == 3 and request.temperature == 0.1
    assert [m.role for m in request.messages] == ["system", "user"]
    no_preset = parse_with_preset(CompletionRequest, b'{"model": "m", "prompt": "a"}', _lookup)
    assert no_preset.max_tokens is None
    with pytest.raises(APIError) as unknown:
        parse_with_preset(ChatCompletionRequest, json.dumps({**CHAT, "preset": "q"}).encode(), _lookup)
    assert unknown.value.code == "preset_not_found"
    with pytest.raises(APIError) as wrong_type:
        parse_with_preset(ChatCompletionRequest, json.dumps({**CHAT, "preset": 1}).encode(), _lookup)
    assert wrong_type.value.param == "preset" and wrong_type.value.code == "invalid_type"
    with pytest.raises(APIError) as bad_json:
        parse_with_preset(ChatCompletionRequest, b'{"preset": "p", ', _lookup)
    assert bad_json.value.code == "invalid_json"


def test_errors_name_fields_as_the_client_sent_them() -> None:
    messages = [*MSGS, {"role": "wizard", "content": "x"}]
    body = json.dumps({"model": "m", "messages": messages, "preset": "p"}).encode()
    with pytest.raises(APIError) as caught:
        parse_with_preset(ChatCompletionRequest, body, _lookup)
    assert caught.value.param == "messages.1.role"  # not messages.2: the system prompt is ours


def test_store(tmp_path: Path) -> None:
    store = PresetStore(tmp_path / "presets")
    assert store.names() == [] and store.listing() == []
    assert store.get("x") is None
    saved = store.save("fast", preset(temperature=0.1, system_prompt="s"))
    assert saved == {"name": "fast", "temperature": 0.1, "system_prompt": "s"}
    assert json.loads((tmp_path / "presets" / "fast.json").read_text()) == {
        "system_prompt": "s",
        "temperature": 0.1,
    }
    assert store.require("fast").temperature == 0.1
    (tmp_path / "presets" / "broken.json").write_text('{"temperature": 9}')
    listing = {entry["name"]: entry for entry in store.listing()}
    assert "'temperature'" in listing["broken"]["error"] and listing["fast"]["temperature"] == 0.1
    with pytest.raises(APIError) as broken:
        store.for_request("broken")
    assert broken.value.param == "preset" and broken.value.code == "invalid_preset"
    with pytest.raises(APIError) as missing:
        store.for_request("nope")
    assert (missing.value.status, missing.value.param, missing.value.code) == (
        400,
        "preset",
        "preset_not_found",
    )
    with pytest.raises(APIError) as route_missing:
        store.require("nope")
    assert route_missing.value.status == 404
    store.delete("fast")
    assert store.get("fast") is None
    with pytest.raises(APIError):
        store.delete("fast")
    with pytest.raises(APIError, match="Invalid preset name"):
        store.get("../etc/passwd")
