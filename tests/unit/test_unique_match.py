"""Partial model names (client/command.py ``unique_match``): ``%lms load qwen2.5``, ``%%chat qwen2.5``."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from lm_jupyter.client.command import CommandError, resolve_model, unique_match

MODELS = [
    {
        "key": "qwen/qwen2.5-coder-1.5b-instruct",
        "variant_details": [{"key": "qwen/qwen2.5-coder-1.5b-instruct@q4_k_m"}],
        "loaded_instances": [{"id": "qwen/qwen2.5-coder-1.5b-instruct"}, {"id": "mine"}],
    },
    {"key": "google/gemma-3-270m", "variant_details": [], "loaded_instances": []},
    {"key": "google/gemma-3-1b", "variant_details": [], "loaded_instances": []},
]


def test_exact_names_stay() -> None:
    assert unique_match("mine", MODELS) == "mine"
    assert unique_match("google/gemma-3-1b", MODELS) == "google/gemma-3-1b"


def test_a_unique_part_resolves_to_its_model() -> None:
    assert unique_match("qwen2.5", MODELS) == "qwen/qwen2.5-coder-1.5b-instruct"  # key, variant, instance
    assert unique_match("Gemma-3-270", MODELS) == "google/gemma-3-270m"


def test_an_ambiguous_part_lists_the_models_and_an_unknown_one_is_left_to_the_server() -> None:
    with pytest.raises(
        CommandError, match=r"'gemma' matches 2 models \(google/gemma-3-1b, google/gemma-3-270m\)"
    ):
        unique_match("gemma", MODELS)
    assert unique_match("llama", MODELS) == "llama"


class _Listing:
    """Answers ``models()`` as the server would, counting how often it is asked."""

    def __init__(self) -> None:
        self.asked = 0

    def models(self) -> list[dict[str, Any]]:
        self.asked += 1
        return MODELS


def test_a_command_resolves_its_model_once() -> None:
    """``lmj load qwen2.5`` resolves the name for its progress bar and again in the load: the
    models are listed once."""
    listing = _Listing()
    args = argparse.Namespace(model="qwen2.5")
    for _ in range(2):
        assert resolve_model(listing, args) == "qwen/qwen2.5-coder-1.5b-instruct"  # type: ignore[arg-type]
    assert listing.asked == 1
