"""Classification: constrain an answer to one of the labels and score every label.

The answer is constrained with a GBNF grammar (the server's ``grammar`` field), so it is
exactly one label. The scores come from the answer's logprobs, which the server computes on
the model's raw distribution (log-softmax of the logits, before the grammar and sampling);
with ``constrained_logprobs`` the 20 alternatives at each position are the likeliest tokens
the grammar allows there, i.e. the tokens that continue some label. At every position, each
alternative that starts another label's remaining text credits that label with the
probability of the path so far times the alternative's; the label the answer took gets the
whole path's probability. The credits are then normalised over the labels.

This is exact for labels whose first tokens differ (single-token labels always). Labels that
share leading tokens are told apart where they part, assuming the rest of a label is certain
once it is distinguishable; an alternative token that starts several labels splits its
probability evenly among them, and a label that is a prefix of another is scored as if the
longer one could not follow. Where more than 20 tokens start labels at one position, labels
reached only through the less likely ones score 0.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any


def check_labels(labels: Sequence[str]) -> list[str]:
    """The labels as a list; empty, duplicate or non-string labels are the caller's mistake."""
    found = list(labels)
    if len(found) < 2:
        raise ValueError("classify needs at least two labels")
    for label in found:
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"labels must be non-empty strings, got {label!r}")
    if len(set(found)) != len(found):
        raise ValueError("labels must be distinct")
    if "label" in found:
        raise ValueError("'label' names the result's answer column: rename that label")
    return found


def grammar(labels: Sequence[str]) -> str:
    """A GBNF grammar whose only sentences are the labels (JSON string escapes are GBNF's)."""
    return "root ::= " + " | ".join(json.dumps(label, ensure_ascii=False) for label in labels)


def probabilities(entries: list[dict[str, Any]], labels: Sequence[str], chosen: str) -> dict[str, float]:
    """Each label's probability from the answer's logprob entries (OpenAI's chat shape)."""
    mass = dict.fromkeys(labels, 0.0)
    prefix, path = "", 0.0
    for item in entries:
        for alt in item["top_logprobs"]:
            if alt["token"] == item["token"]:
                continue  # the answer's own path: credited at the end
            text = prefix + alt["token"] if prefix else alt["token"].lstrip()
            if len(text) <= len(prefix):
                continue
            matching = [label for label in labels if label.startswith(text)]
            for label in matching:
                mass[label] += math.exp(path + alt["logprob"]) / len(matching)
        path += item["logprob"]
        prefix += item["token"]
    if chosen in mass:
        mass[chosen] += math.exp(path)
    total = sum(mass.values())
    if total <= 0:  # every probability underflowed: all we know is what was answered
        return {label: float(label == chosen) for label in labels}
    return {label: value / total for label, value in mass.items()}
