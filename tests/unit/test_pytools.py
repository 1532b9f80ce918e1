"""Python functions -> JSON-schema tools, and running the calls (kernel/pytools.py)."""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Annotated, Literal

import jsonschema
import pytest
from pydantic import BaseModel

from lm_jupyter.kernel.pytools import (
    ToolError,
    call_tool,
    function_tool,
    parse_docstring,
    result_text,
    tools_from,
    type_schema,
)


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


class Place(BaseModel):
    city: str
    country: str = "CH"


@dataclasses.dataclass
class Span:
    start: int
    end: int = 0


def weather(city: str, days: int = 1, unit: Unit = Unit.C, *, detailed: bool = False) -> str:
    """Forecast the weather for a city.

    Uses the local station network.

    Args:
        city: The city's name,
            in English.
        days (int): How many days ahead.
        unit: Temperature unit.

    Returns:
        A short text.
    """
    return f"{city}: sunny for {days} day(s) in {unit.value}" + (" (detailed)" if detailed else "")


def sphinx_style(x: float, tags: list[str] | None = None) -> dict[str, float]:
    """Scale a number.

    :param x: the number
    :param tags: labels to attach
    :returns: the result
    """
    return {"x": x * 2}


def no_hints(a, b=2):  # type: ignore[no-untyped-def]
    return a


def test_google_docstring_and_signature() -> None:
    tool = function_tool(weather)
    assert tool["type"] == "function"
    fn = tool["function"]
    assert fn["name"] == "weather"
    assert fn["description"] == "Forecast the weather for a city.\n\nUses the local station network."
    assert fn["parameters"] == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The city's name, in English."},
            "days": {"type": "integer", "description": "How many days ahead.", "default": 1},
            "unit": {"enum": ["celsius", "fahrenheit"], "description": "Temperature unit."},
            "detailed": {"type": "boolean", "default": False},
        },
        "required": ["city"],
    }
    jsonschema.Draft202012Validator.check_schema(fn["parameters"])


def test_sphinx_docstring_optional_and_generic_types() -> None:
    fn = function_tool(sphinx_style)["function"]
    assert fn["description"] == "Scale a number."
    assert fn["parameters"]["properties"] == {
        "x": {"type": "number", "description": "the number"},
        "tags": {
            "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
            "description": "labels to attach",
            "default": None,
        },
    }
    assert fn["parameters"]["required"] == ["x"]


def test_untyped_parameters_accept_anything() -> None:
    fn = function_tool(no_hints)["function"]
    assert "description" not in fn
    assert fn["parameters"] == {
        "type": "object",
        "properties": {"a": {}, "b": {"default": 2}},
        "required": ["a"],
    }


@pytest.mark.parametrize(
    ("annotation", "schema"),
    [
        (Literal["a", "b"], {"enum": ["a", "b"]}),
        (dict[str, int], {"type": "object", "additionalProperties": {"type": "integer"}}),
        (
            tuple[int, str],
            {
                "type": "array",
                "prefixItems": [{"type": "integer"}, {"type": "string"}],
                "minItems": 2,
                "maxItems": 2,
            },
        ),
        (tuple[int, ...], {"type": "array", "items": {"type": "integer"}}),
        (int | str, {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
        (Annotated[int, "a count"], {"type": "integer", "description": "a count"}),
        (
            Span,
            {
                "type": "object",
                "properties": {"start": {"type": "integer"}, "end": {"type": "integer", "default": 0}},
                "required": ["start"],
            },
        ),
    ],
)
def test_type_schemas(annotation: object, schema: dict) -> None:
    assert type_schema(annotation) == schema


def test_pydantic_model_parameter() -> None:
    def visit(place: Place) -> str:
        return place.city

    schema = function_tool(visit)["function"]["parameters"]["properties"]["place"]
    assert schema["properties"]["city"] == {"title": "City", "type": "string"}


def test_undescribable_type_is_a_clear_error() -> None:
    def odd(x: complex) -> None:
        pass

    with pytest.raises(ToolError, match="odd: cannot describe the type"):
        function_tool(odd)


def test_tools_from_validates_the_list() -> None:
    tools, table = tools_from([weather, sphinx_style])
    assert [t["function"]["name"] for t in tools] == ["weather", "sphinx_style"]
    assert table["weather"] is weather
    assert tools_from(weather)[1] == {"weather": weather}
    for bad in ([], "weather", 3, [weather, weather]):
        with pytest.raises(ToolError):
            tools_from(bad)


def test_call_tool_runs_and_reports_mistakes_to_the_model() -> None:
    table = {"weather": weather, "sphinx_style": sphinx_style}
    assert call_tool(table, "weather", '{"city": "Bern", "days": 2}') == "Bern: sunny for 2 day(s) in celsius"
    assert json.loads(call_tool(table, "sphinx_style", '{"x": 1.5}')) == {"x": 3.0}
    assert call_tool(table, "nope", "{}").startswith("Error: there is no tool named 'nope'")
    assert call_tool(table, "weather", "{not json").startswith("Error: the arguments are not valid JSON")
    assert call_tool(table, "weather", "[1]") == "Error: the arguments must be a JSON object."
    assert "missing a required argument: 'city'" in call_tool(table, "weather", "{}")
    assert "unexpected keyword argument 'town'" in call_tool(table, "weather", '{"city": "a", "town": 1}')

    def boom() -> None:
        raise ValueError("no data")

    assert call_tool({"boom": boom}, "boom", "") == "Error: ValueError: no data"


def test_result_text() -> None:
    assert result_text("plain") == "plain"
    assert result_text({"a": [1, 2]}) == '{"a": [1, 2]}'
    assert result_text(Place(city="Bern")) == '{"city":"Bern","country":"CH"}'
    assert result_text(Span(1, 2)) == '{"start": 1, "end": 2}'
    assert result_text(None) == "null"


def test_parse_docstring_without_sections() -> None:
    assert parse_docstring("Just text.\nMore.") == ("Just text.\nMore.", {})
