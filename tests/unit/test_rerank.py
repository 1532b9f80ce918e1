"""The rerank request and results (pure)."""

from __future__ import annotations

import json

from lm_jupyter.api.requests import parse_request
from lm_jupyter.api.rerank import RerankRequest, rerank_body


def request(**fields: object) -> RerankRequest:
    body = {"model": "m", "query": "q", "documents": ["a", {"text": "b"}, "c"], **fields}
    return parse_request(RerankRequest, json.dumps(body).encode())


def test_results_best_first_and_cut_to_top_n() -> None:
    body = rerank_body(request(top_n=2, return_documents=True), "m", [0.2, 0.9, 0.5], 12)
    assert body == {
        "object": "list",
        "model": "m",
        "results": [
            {"index": 1, "relevance_score": 0.9, "document": {"text": "b"}},
            {"index": 2, "relevance_score": 0.5, "document": {"text": "c"}},
        ],
        "usage": {"prompt_tokens": 12, "total_tokens": 12},
    }
    assert [r["index"] for r in rerank_body(request(), "m", [0.2, 0.9, 0.5], 1)["results"]] == [1, 2, 0]
