"""Logprob arithmetic and OpenAI's two wire shapes (pure)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lm_jupyter.api.errors import APIError
from lm_jupyter.api.logprobs import ChoiceLogprobs, LegacyLogprobs, upstream_entries
from lm_jupyter.api.requests import ChatCompletionRequest, CompletionRequest, parse_request
from lm_jupyter.chat.upstream_output import ChunkReader
from lm_jupyter.engine.worker.llama.logprobs import FLOOR, entry, log_softmax_at


def test_log_softmax_matches_the_definition() -> None:
    logits = np.array([2.0, 1.0, 0.5, -1.0, 3.0], dtype=np.float32)
    chosen, top = log_softmax_at(logits, [0, 3], 3)
    norm = math.log(sum(math.exp(v) for v in logits.tolist()))
    assert chosen == pytest.approx([2.0 - norm, -1.0 - norm], abs=1e-6)
    assert [token for token, _ in top] == [4, 0, 1]
    assert [value for _, value in top] == pytest.approx([3.0 - norm, 2.0 - norm, 1.0 - norm], abs=1e-6)


def test_ties_rank_the_lower_token_first_and_zero_top_gives_none() -> None:
    logits = np.zeros(6, dtype=np.float32)
    _, top = log_softmax_at(logits, [0], 3)
    assert [token for token, _ in top] == [0, 1, 2]
    assert log_softmax_at(logits, [5], 0)[1] == []


def test_a_tie_at_the_cut_keeps_the_lower_ids_also_among_allowed_ids() -> None:
    logits = np.array([1.0, 2.0, 2.0, 2.0, 0.0, 2.0], dtype=np.float32)
    assert [token for token, _ in log_softmax_at(logits, [0], 2)[1]] == [1, 2]
    allowed = np.array([0, 3, 4, 5])
    assert [token for token, _ in log_softmax_at(logits, [0], 2, allowed)[1]] == [3, 5]
    assert [token for token, _ in log_softmax_at(logits, [0], 9, allowed)[1]] == [3, 5, 0, 4]


def test_huge_gaps_are_floored_not_infinite() -> None:
    logits = np.array([0.0, -1e30], dtype=np.float32)
    (value,), _ = log_softmax_at(logits, [1], 0)
    assert value == FLOOR


def test_entry_keeps_bytes_of_partial_utf8() -> None:
    item = entry(b"\xe2\x82", -0.5, [(b"a", -0.1)])
    assert item["bytes"] == [0xE2, 0x82] and item["token"] == "\ufffd"
    assert item["top_logprobs"] == [{"token": "a", "logprob": -0.1, "bytes": [97]}]


def _item(token: str, logprob: float | None, top: list[tuple[str, float]]) -> dict:
    return entry(token.encode(), logprob, [(t.encode(), v) for t, v in top])


def test_legacy_shape_runs_offsets_across_chunks() -> None:
    legacy = LegacyLogprobs()
    first = legacy.block([_item("Hello", None, []), _item(" world", -1.0, [(" world", -1.0), ("!", -2.0)])])
    assert first == {
        "tokens": ["Hello", " world"],
        "token_logprobs": [None, -1.0],
        "top_logprobs": [None, {" world": -1.0, "!": -2.0}],
        "text_offset": [0, 5],
    }
    assert legacy.block([_item(".", -0.2, [])])["text_offset"] == [11]


def test_duplicate_token_texts_keep_the_likelier() -> None:
    block = LegacyLogprobs().block([_item("a", -0.1, [("a", -0.1), ("b", -1.0), ("b", -3.0)])])
    assert block["top_logprobs"] == [{"a": -0.1, "b": -1.0}]


def test_choice_logprobs_per_route() -> None:
    items = [_item("x", -0.3, [])]
    assert ChoiceLogprobs(chat=True, wanted=True).of(items) == {"content": items, "refusal": None}
    assert ChoiceLogprobs(chat=True, wanted=False).of(items) is None
    assert ChoiceLogprobs(chat=False, wanted=True).of_some([]) is None


CHAT = '{"model": "m", "messages": [{"role": "user", "content": "hi"}]'


@pytest.mark.parametrize(
    ("extra", "count"),
    [
        ("", None),
        (', "logprobs": false', None),
        (', "logprobs": true', 0),
        (', "logprobs": true, "top_logprobs": 7', 7),
    ],
)
def test_chat_logprob_counts(extra: str, count: int | None) -> None:
    assert parse_request(ChatCompletionRequest, (CHAT + extra + "}").encode()).top_logprobs_count() == count


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (', "top_logprobs": 2', "top_logprobs"),
        (', "logprobs": true, "top_logprobs": 21', "top_logprobs"),
        (', "logprobs": 1', "logprobs"),
        (', "max_tokens": 0', "max_tokens"),
    ],
)
def test_bad_chat_logprobs(extra: str, param: str) -> None:
    with pytest.raises(APIError) as caught:
        parse_request(ChatCompletionRequest, (CHAT + extra + "}").encode())
    assert caught.value.param == param


def test_completions_echo_and_zero_tokens() -> None:
    body = b'{"model": "m", "prompt": "p", "echo": true, "max_tokens": 0, "logprobs": 5}'
    request = parse_request(CompletionRequest, body)
    assert request.token_limit() == 0 and request.top_logprobs_count() == 5
    for bad, param in (
        (b'{"model": "m", "prompt": "p", "max_tokens": 0}', "max_tokens"),
        (b'{"model": "m", "prompt": "p", "logprobs": 21}', "logprobs"),
        (b'{"model": "m", "prompt": "p", "logprobs": true}', "logprobs"),
    ):
        with pytest.raises(APIError) as caught:
            parse_request(CompletionRequest, bad)
        assert caught.value.param == param


def test_upstream_logprobs_read_back_into_entries() -> None:
    """A remote upstream's chunk logprobs become the worker's entries: chat's as they are,
    legacy completions' parallel lists read back (bytes from the text); bad shapes raise."""
    item = {"token": "é", "logprob": -0.5, "bytes": [195, 169], "top_logprobs": []}
    assert upstream_entries({"content": [item], "refusal": None}, chat=True) == [item]
    assert upstream_entries(None, chat=True) == [] and upstream_entries({"content": None}, chat=True) == []
    legacy = {
        "tokens": ["a", "é"],
        "token_logprobs": [-0.1, -2.0],
        "top_logprobs": [{"a": -0.1, "b": -3.0}, {"é": -2.0}],
        "text_offset": [0, 1],
    }
    entries = upstream_entries(legacy, chat=False)
    assert entries[1] == {
        "token": "é",
        "logprob": -2.0,
        "bytes": [195, 169],
        "top_logprobs": [{"token": "é", "logprob": -2.0, "bytes": [195, 169]}],
    }
    assert LegacyLogprobs().block(entries) == legacy  # the round trip is exact
    for bad, chat in (
        ([item], True),
        ({"content": [{"logprob": -1}]}, True),
        ({"tokens": ["a"], "token_logprobs": []}, False),
        ({"tokens": "a", "token_logprobs": [-1.0]}, False),
    ):
        with pytest.raises(ValueError):
            upstream_entries(bad, chat=chat)
    reader = ChunkReader(chat=True)
    chunk = {"choices": [{"index": 0, "delta": {"content": "é"}, "logprobs": {"content": [item]}}]}
    reader.feed(json.dumps(chunk))
    assert reader.logprobs == [item]
    with pytest.raises(ValueError):
        reader.feed(json.dumps({"choices": [{"index": 0, "delta": {}, "logprobs": {"content": 3}}]}))
