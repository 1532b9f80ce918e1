"""Tool names as models see them: snake_case, short, stable, distinct."""

from __future__ import annotations

import re

import pytest

from lm_jupyter.chat.toolnames import normalize_tool_name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("get_weather", "get_weather"),
        ("Get Weather!", "get_weather"),
        ("getWeather", "get_weather"),
        ("get-weather", "get_weather"),
        ("HTTPServerStatus", "http_server_status"),
        ("getV2Weather", "get_v2_weather"),
        ("  search  the   web ", "search_the_web"),
        ("wetter_zürich", "wetter_zurich"),
        ("fetch.url", "fetch_url"),
    ],
)
def test_normalize_tool_name(name: str, expected: str) -> None:
    assert normalize_tool_name(name) == expected


@pytest.mark.parametrize("name", ["東京", "!!!", "x" * 200, "getWeather", "a" * 64 + "B"])
def test_normalized_names_are_valid_and_stable(name: str) -> None:
    normalized = normalize_tool_name(name)
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", normalized)
    assert normalize_tool_name(normalized) == normalized
    assert normalize_tool_name(name) == normalized


def test_distinct_names_without_usable_characters_stay_distinct() -> None:
    assert normalize_tool_name("東京") != normalize_tool_name("大阪")
    assert normalize_tool_name("x" * 100 + "a") != normalize_tool_name("x" * 100 + "b")
