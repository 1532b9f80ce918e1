"""Output constraints: response_format (JSON, JSON schema) and GBNF grammars, enforced while generating."""

from __future__ import annotations

import json

import httpx
import jsonschema
import pytest
from openai import OpenAI

CHAT = "test/tiny-chat"
MSGS = [{"role": "user", "content": "Describe a person."}]
# Random weights happily emit lone UTF-8 continuation bytes; keep the tiny model to ASCII so
# string lengths mean the same to the grammar and to the JSON parser.
ASCII_ONLY = {str(5 + byte): -100 for byte in range(0x80, 0x100)}

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer"},
        "address": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 10},
                "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
            },
            "required": ["city", "zip"],
            "additionalProperties": False,
        },
        "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3},
    },
    "required": ["name", "age", "address", "tags"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_json_schema_output_validates(openai_client: OpenAI, seed: int) -> None:
    reply = openai_client.chat.completions.create(
        model=CHAT,
        messages=MSGS,  # type: ignore[arg-type]
        max_tokens=300,
        seed=seed,
        logit_bias=ASCII_ONLY,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "strict": True, "schema": PERSON},
        },
    )
    jsonschema.validate(json.loads(reply.choices[0].message.content or ""), PERSON)
    assert reply.choices[0].finish_reason == "stop"


def test_json_schema_streams_the_same_text(openai_client: OpenAI) -> None:
    args = {
        "model": CHAT,
        "messages": MSGS,
        "max_tokens": 300,
        "seed": 5,
        "temperature": 0,
        "logit_bias": ASCII_ONLY,
        "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}},
    }
    whole = openai_client.chat.completions.create(**args).choices[0].message.content  # type: ignore[call-overload]
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in openai_client.chat.completions.create(**args, stream=True)
        if c.choices  # type: ignore[call-overload]
    )
    assert streamed == whole
    jsonschema.validate(json.loads(streamed), PERSON)


def test_json_object(http: httpx.Client) -> None:
    body = {
        "model": CHAT,
        "messages": MSGS,
        "max_tokens": 100,
        "logit_bias": ASCII_ONLY,
        "seed": 4,
        "response_format": {"type": "json_object"},
    }
    content = http.post("v1/chat/completions", json=body).json()["choices"][0]["message"]["content"]
    assert isinstance(json.loads(content), dict)
    text = http.post("v1/chat/completions", json={**body, "response_format": {"type": "text"}}).json()
    assert text["choices"][0]["message"]["content"] is not None


def test_raw_grammar_forces_exact_text(http: httpx.Client) -> None:
    grammar = 'root ::= "hello " ("world" | "jupyter") "!"'
    for route, extra in (("v1/completions", {"prompt": "x"}), ("v1/chat/completions", {"messages": MSGS})):
        reply = http.post(route, json={"model": CHAT, "grammar": grammar, "max_tokens": 20, **extra}).json()
        choice = reply["choices"][0]
        text = choice.get("text", choice.get("message", {}).get("content"))
        assert text in {"hello world!", "hello jupyter!"} and choice["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("extra", "param", "code"),
    [
        ({"grammar": "root ::= ("}, "grammar", "invalid_grammar"),
        ({"grammar": 'start ::= "x"'}, "grammar", "invalid_grammar"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema", None),
        ({"response_format": {"type": "xml"}}, "response_format.type", "invalid_value"),
        ({"grammar": 'root ::= "x"', "response_format": {"type": "json_object"}}, "grammar", None),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"schema": {"type": "integer", "maximum": 9}},
                }
            },
            "response_format",
            "unsupported_schema",
        ),
    ],
)
def test_bad_constraints_are_400s(http: httpx.Client, extra: dict, param: str, code: str | None) -> None:
    for stream in (False, True):
        response = http.post(
            "v1/chat/completions", json={"model": CHAT, "messages": MSGS, "stream": stream, **extra}
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == param
        if code:
            assert error["code"] == code
    # A rejected grammar never reaches llama.cpp's sampler, so the worker is still alive.
    assert (
        http.post("v1/chat/completions", json={"model": CHAT, "messages": MSGS, "max_tokens": 2}).status_code
        == 200
    )
