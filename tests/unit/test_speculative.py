"""Prompt-lookup drafting and LM Studio's draft counters."""

from __future__ import annotations

from lm_jupyter.engine.worker.llama.speculative import Counters, PromptLookup, Speculation


def test_lookup_proposes_what_followed_the_longest_matching_suffix() -> None:
    lookup = PromptLookup([1, 2, 3, 4, 5, 9, 2, 3, 7, 8])
    lookup.append(2)
    lookup.append(3)
    # "2 3" was followed by 4 then by 7; the latest occurrence wins.
    assert lookup.draft(3) == [7, 8, 2]
    lookup.append(4)  # now "2 3 4" matches its first occurrence, a longer suffix
    assert lookup.draft(2) == [5, 9]


def test_lookup_needs_two_matching_tokens() -> None:
    lookup = PromptLookup([5, 6, 7, 8])
    lookup.append(6)
    assert lookup.draft(4) == []  # a single matching token is too weak a hint
    lookup.append(7)
    assert lookup.draft(4) == [8, 6, 7]


def test_lookup_stops_at_the_limit_and_the_end() -> None:
    lookup = PromptLookup([1, 2, 3, 1, 2])
    assert lookup.draft(1) == [3]
    assert lookup.draft(10) == [3, 1, 2]


def test_counters_in_lmstudio_names() -> None:
    stats = Counters(total=10, accepted=6, rejected=3, ignored=1).to_json("draft/key")
    assert stats == {
        "draft_model": "draft/key",
        "total_draft_tokens_count": 10,
        "accepted_draft_tokens_count": 6,
        "rejected_draft_tokens_count": 3,
        "ignored_draft_tokens_count": 1,
    }
    assert "draft_model" not in Counters().to_json(None)


def test_draft_window_grows_after_full_acceptance_and_shrinks_after_rejection() -> None:
    spec = Speculation(6)
    assert spec.window == 6
    spec.adapt(6, 2)
    assert spec.window == 5
    spec.adapt(5, 5)
    assert spec.window == 6  # never past num_draft_tokens
    for _ in range(10):
        spec.adapt(spec.window, 0)
    assert spec.window == 1  # always drafts at least one token
    spec.adapt(0, 0)  # a step without drafts changes nothing
    assert spec.window == 1
    spec.adapt(1, 1)
    assert spec.window == 3
