"""llm.map / classify / embed against a real server: results aligned with the data, label
probabilities, embeddings, per-row errors, the resume cache (counted with the server's own
request metrics), the instance's parallel as concurrency, and 503 retries."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel

from lm_jupyter import llm
from lm_jupyter.client.discovery import ServerInfo
from lm_jupyter.data.models import resolve
from tests.conftest import GEMMA_KEY, write_test_models
from tests.e2e.isolated_server import isolated_server
from tests.e2e.test_lifecycle import NO_EOS

TINY = "test/tiny-chat"


@pytest.fixture(autouse=True)
def client(server: ServerInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LM_JUPYTER_LLM_CACHE", str(tmp_path / "cache.sqlite3"))
    llm.connect(server.url, server.token)
    yield


@contextlib.contextmanager
def _instance(http: httpx.Client, identifier: str, parallel: int) -> Iterator[str]:
    body = {"model": TINY, "identifier": identifier, "parallel": parallel}
    loaded = http.post("api/v1/models/load", json=body)
    assert loaded.status_code == 200, loaded.text
    yield identifier
    http.post("api/v1/models/unload", json={"instance_id": identifier})


@pytest.fixture(scope="module")
def tiny(http: httpx.Client) -> Iterator[str]:
    with _instance(http, "data-3", 3) as identifier:
        yield identifier


def _requests_finished(http: httpx.Client, instance: str) -> int:
    """The server's own count of finished inference requests on one instance (/metrics)."""
    text = http.get("metrics").text
    pattern = rf'^lm_jupyter_requests_total\{{[^}}]*model="{re.escape(instance)}"[^}}]*\}} ([0-9.e+]+)$'
    return int(sum(float(value) for value in re.findall(pattern, text, re.MULTILINE)))


FRAME = pd.DataFrame(
    {"title": ["Moby Dick", "Emma", "Dracula", "Ulysses"], "year": [1851, 1815, 1897, 1922]},
    index=pd.Index(["md", "em", "dr", "ul"], name="book"),
)


def test_parallel_comes_from_the_server(tiny: str) -> None:
    target = resolve(llm.client(), tiny, "llm")
    assert (target.model, target.key, target.parallel, target.in_flight) == (tiny, TINY, 3, 4)
    assert resolve(llm.client(), "test/tiny-base", "llm").parallel == 4  # JIT: the server's default


def test_map_text_is_aligned_with_the_index(tiny: str) -> None:
    result = llm.map("Tell me about {title} ({year}).", FRAME, model=tiny, max_tokens=4, progress=False)
    assert isinstance(result, pd.Series)
    assert list(result.index) == ["md", "em", "dr", "ul"] and result.index.name == "book"
    assert all(isinstance(text, str) for text in result)
    assert llm.last_run is not None and llm.last_run.done == 4 and not llm.last_run.errors


class Review(BaseModel):
    mood: bool
    stars: int


def test_map_with_a_schema_gives_a_frame(tiny: str) -> None:
    schema = {
        "type": "object",
        "properties": {"genre": {"enum": ["novel", "poem"]}, "classic": {"type": "boolean"}},
        "required": ["genre", "classic"],
    }
    frame = llm.map("Describe {title}.", FRAME, model=tiny, schema=schema, max_tokens=60, progress=False)
    assert list(frame.columns) == ["genre", "classic"] and list(frame.index) == list(FRAME.index)
    assert set(frame["genre"]) <= {"novel", "poem"} and set(frame["classic"]) <= {True, False}


def test_map_with_a_pydantic_model(tiny: str) -> None:
    frame = llm.map("{}", ["good", "bad"], model=tiny, schema=Review, max_tokens=120, progress=False)
    assert list(frame.columns) == ["mood", "stars"] and list(frame.index) == [0, 1]


def test_classify_probabilities_sum_to_one(tiny: str) -> None:
    labels = ["yes", "no", "maybe"]
    result = llm.classify(
        pd.Series(["is it local?", "the model", "hello"]), labels, model=tiny, progress=False
    )
    assert list(result.columns) == ["label", *labels]
    for _, row in result.iterrows():
        assert row["label"] in labels
        assert sum(row[label] for label in labels) == pytest.approx(1.0)
        assert all(0 <= row[label] <= 1 for label in labels)


def test_classify_on_gemma() -> None:
    texts = ["I loved this film, it was wonderful.", "Terrible food and rude staff."]
    result = llm.classify(texts, ["positive", "negative"], model=GEMMA_KEY, progress=False)
    assert (result[["positive", "negative"]].sum(axis=1) - 1).abs().max() < 1e-9
    # The answer is the label the constrained path took; its probability is real, not 1.
    assert ((result["positive"] > 0) & (result["positive"] < 1)).any()


def test_embed_is_an_array_in_batches() -> None:
    texts = [f"row {i} of the data" for i in range(70)]
    vectors = llm.embed(texts, model="test/tiny-embed", batch_size=32, progress=False)
    assert isinstance(vectors, np.ndarray) and vectors.dtype == np.float32
    assert vectors.shape[0] == 70 and vectors.shape[1] > 0
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    again = llm.embed(texts[:3], model="test/tiny-embed", cache=False, progress=False)
    assert np.allclose(again, vectors[:3], atol=1e-5)


def test_errors_stay_with_their_rows(tiny: str) -> None:
    rows = ["short", "x" * 6000, "also short"]  # 6000 bytes: over the 4096-token context
    result = llm.map("{}", rows, model=tiny, max_tokens=3, progress=False)
    assert result[0] is not None and result[2] is not None and result[1] is None
    assert list(result.attrs["errors"]) == [1] and "context length" in result.attrs["errors"][1]
    frame = llm.map("{}", rows, model=tiny, schema=Review, max_tokens=120, cache=False, progress=False)
    assert frame.loc[1, "error"] and frame["error"].isna().sum() == 2
    with pytest.raises(llm.LmError, match="context length"):
        llm.map("{}", rows, model=tiny, max_tokens=3, cache=False, errors="raise", progress=False)


@pytest.fixture
def own(http: httpx.Client) -> Iterator[str]:
    """An instance of its own, so no other test's late request shows in its request count."""
    with _instance(http, "resume-2", 2) as identifier:
        yield identifier


def test_resume_computes_only_new_rows(http: httpx.Client, own: str) -> None:
    tiny = own
    data = pd.Series([f"item {i}" for i in range(6)])
    start = _requests_finished(http, tiny)
    first = llm.map("Say {}", data, model=tiny, max_tokens=3, progress=False)
    assert _requests_finished(http, tiny) == start + 6
    edited = data.copy()
    edited[1] = "an edited row"
    edited[6] = "a new row"
    second = llm.map("Say {}", edited, model=tiny, max_tokens=3, progress=False)
    assert _requests_finished(http, tiny) == start + 8  # the edited row and the new one
    assert llm.last_run is not None and llm.last_run.cached == 5
    assert second[[0, 2, 3, 4, 5]].tolist() == first[[0, 2, 3, 4, 5]].tolist()
    llm.map("Say {}", edited, model=tiny, max_tokens=4, progress=False)  # other parameters
    assert _requests_finished(http, tiny) == start + 15
    llm.map("Say {}", data, model=tiny, max_tokens=3, cache=False, progress=False)
    assert _requests_finished(http, tiny) == start + 21


def test_a_full_queue_is_retried_after_retry_after(tmp_path: Path) -> None:
    models = write_test_models(tmp_path / "models")
    with isolated_server(tmp_path / "srv", models, ["--ModelManager.max_queued_requests=0"]) as server:
        llm.connect(server.info.url, server.info.token)
        with httpx.Client(
            base_url=server.info.url, headers={"Authorization": f"Bearer {server.info.token}"}, timeout=60
        ) as http:
            loaded = http.post("api/v1/models/load", json={"model": TINY, "parallel": 1})
            assert loaded.status_code == 200, loaded.text
        # Rows long enough (no end-of-text, 500 tokens) that the four overlap: one runs, three get 503.
        result = llm.map(
            "{}",
            ["a", "b", "c", "d"],
            model=TINY,
            max_tokens=500,
            logit_bias=NO_EOS,
            concurrency=4,
            progress=False,
        )
        report = llm.last_run
        assert report is not None and result.notna().all(), (result, report)
        assert report.retries > 0 and not report.errors, report


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="two labels"):
        llm.classify(["x"], ["only"], model=TINY)
    with pytest.raises(ValueError, match="errors"):
        llm.map("{}", ["x"], model=TINY, errors="ignore")
    with pytest.raises(TypeError):
        llm.map("{}", "not rows", model=TINY)
