from __future__ import annotations

import pytest

from lm_jupyter.api.errors import APIError
from lm_jupyter.chat.constraints import check_schema


def test_enforceable_schema_passes() -> None:
    check_schema(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "title": "Person",
            "properties": {
                "name": {"type": "string", "maxLength": 5},
                "kids": {"type": "array", "items": {"$ref": "#/$defs/kid"}},
            },
            "$defs": {"kid": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
            "required": ["name"],
            "additionalProperties": False,
        }
    )


@pytest.mark.parametrize(
    ("schema", "keyword", "path"),
    [
        ({"type": "integer", "minimum": 0}, "minimum", "#"),
        (
            {"type": "object", "properties": {"n": {"type": "number", "multipleOf": 2}}},
            "multipleOf",
            "#/properties/n",
        ),
        ({"$defs": {"a": {"type": "array", "uniqueItems": True}}}, "uniqueItems", "#/$defs/a"),
        ({"anyOf": [{"type": "string"}, {"not": {"type": "null"}}]}, "not", "#/anyOf/1"),
        (
            {"type": "array", "items": {"type": "object", "patternProperties": {}}},
            "patternProperties",
            "#/items",
        ),
    ],
)
def test_unenforceable_keywords_are_named(schema: dict, keyword: str, path: str) -> None:
    with pytest.raises(APIError) as caught:
        check_schema(schema)
    assert caught.value.code == "unsupported_schema" and caught.value.param == "response_format"
    assert f"'{keyword}' at {path}," in caught.value.message
