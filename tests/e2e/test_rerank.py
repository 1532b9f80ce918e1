"""``/v1/rerank`` and ``/v2/rerank`` with a reranker GGUF (rank pooling) written by the tests.

The tiny reranker's weights are random, so its scores mean nothing; what is checked is what
the engine guarantees: scores are the classifier's probabilities, the same pair scores the
same, results come best first, and the listing marks the model as a reranker.
"""

from __future__ import annotations

import httpx
import pytest

RERANK = "test/tiny-rerank"
DOCS = ["hello world", "the local model", "yes and no", "hello world"]


def rerank(http: httpx.Client, route: str = "v1/rerank", **body: object) -> dict:
    response = http.post(route, json={"model": RERANK, "query": "hello", "documents": DOCS, **body})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("route", ["v1/rerank", "v2/rerank", "rerank"])
def test_results_best_first_with_usage(http: httpx.Client, route: str) -> None:
    body = rerank(http, route)
    assert body["model"] == RERANK and body["object"] == "list"
    results = body["results"]
    assert sorted(r["index"] for r in results) == [0, 1, 2, 3]
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)
    by_index = {r["index"]: r["relevance_score"] for r in results}
    assert by_index[0] == by_index[3]  # the same document scores the same
    assert len(set(by_index.values())) == 3  # and different ones differently
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > len(DOCS)
    assert all("document" not in r for r in results)


def test_top_n_and_return_documents(http: httpx.Client) -> None:
    full = rerank(http)["results"]
    top = rerank(http, "v2/rerank", top_n=2, return_documents=True)["results"]
    assert [r["index"] for r in top] == [r["index"] for r in full[:2]]
    assert all(r["document"] == {"text": DOCS[r["index"]]} for r in top)
    cohere = http.post(
        "v2/rerank", json={"model": RERANK, "query": "hello", "documents": [{"text": d} for d in DOCS]}
    ).json()
    assert cohere["results"] == full


def test_listings_mark_rerankers(http: httpx.Client) -> None:
    v0 = http.get(f"api/v0/models/{RERANK}").json()
    assert v0["type"] == "reranker"
    v1 = next(m for m in http.get("api/v1/models").json()["models"] if m["key"] == RERANK)
    assert v1["type"] == "reranker"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"query": "q", "documents": ["a"]}, 400, "model"),
        ({"model": RERANK, "documents": ["a"]}, 400, "query"),
        ({"model": RERANK, "query": "q", "documents": []}, 400, "documents"),
        ({"model": RERANK, "query": "q", "documents": ["a", 3]}, 400, "documents.1"),
        ({"model": RERANK, "query": "q", "documents": ["a"], "top_n": 0}, 400, "top_n"),
        ({"model": "test/tiny-embed", "query": "q", "documents": ["a"]}, 400, "model"),
        ({"model": "test/tiny-chat", "query": "q", "documents": ["a"]}, 400, "model"),
        ({"model": "nobody/nothing", "query": "q", "documents": ["a"]}, 404, "model"),
        ({"model": RERANK, "query": "q", "documents": ["ok", "word " * 5000]}, 400, "documents.1"),
    ],
)
def test_bad_input(http: httpx.Client, body: dict, status: int, param: str) -> None:
    response = http.post("v1/rerank", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param


def test_cosine_fallback_only_when_asked(http: httpx.Client) -> None:
    body = {"model": "test/tiny-embed", "query": "hello world", "documents": DOCS}
    refused = http.post("v1/rerank", json=body)
    assert refused.status_code == 400 and "cosine_fallback" in refused.json()["error"]["message"]
    results = http.post("v1/rerank", json={**body, "cosine_fallback": True}).json()["results"]
    by_index = {r["index"]: r["relevance_score"] for r in results}
    assert by_index[0] == pytest.approx(by_index[3]) == pytest.approx(1.0)  # the query itself
    assert all(-1 <= s <= 1 for s in by_index.values()) and results[0]["index"] in (0, 3)
    vectors = http.post(
        "v1/embeddings", json={"model": "test/tiny-embed", "input": ["hello world", DOCS[1]]}
    ).json()
    a, b = (item["embedding"] for item in vectors["data"])
    # the same vectors up to rounding: llama.cpp's flash attention (on by default) sums a batch of
    # five texts in another order than a batch of two
    assert by_index[1] == pytest.approx(sum(x * y for x, y in zip(a, b, strict=True)), abs=1e-4)


def test_a_reranker_is_not_a_chat_model(http: httpx.Client) -> None:
    response = http.post(
        "v1/chat/completions", json={"model": RERANK, "messages": [{"role": "user", "content": "x"}]}
    )
    assert response.status_code == 400 and "/v1/rerank" in response.json()["error"]["message"]
