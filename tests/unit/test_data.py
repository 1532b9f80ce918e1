"""The pure parts of llm.map/classify/embed: rows, templates, label scoring, the cache, the
progress line and the runner's bookkeeping (interrupts, errors, 503 retries)."""

from __future__ import annotations

import io
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from lm_jupyter.data import labels, runner
from lm_jupyter.data._client import LmError
from lm_jupyter.data.cache import ResultCache
from lm_jupyter.data.models import Target
from lm_jupyter.data.progress import State, TextView, line
from lm_jupyter.data.rows import Report, cache_key, record_frame, render, rows_of, schema_of, text_series
from lm_jupyter.data.runner import Cancelled, Job, run, with_retries


def test_rows_of_each_kind_keep_the_index() -> None:
    frame = pd.DataFrame({"title": ["a", "b"]}, index=pd.Index([10, 20], name="id"))
    rows = rows_of(frame)
    assert (
        rows.index == [10, 20] and rows.values == [{"title": "a"}, {"title": "b"}] and rows.index_name == "id"
    )
    series = rows_of(pd.Series(["x", "y"], index=["r1", "r2"]))
    assert series.index == ["r1", "r2"] and series.values == ["x", "y"]
    assert rows_of(iter(["p", "q"])).index == [0, 1]
    with pytest.raises(TypeError):
        rows_of("a string is not rows")


def test_requests_in_flight_fill_the_slots_and_queue_a_few() -> None:
    """More requests than slots (the server queues them), so no slot idles while the next
    row travels from the kernel; one extra at least."""
    assert [Target("m", "m", parallel).in_flight for parallel in (1, 2, 3, 4, 8)] == [2, 3, 4, 6, 12]


def test_render_templates() -> None:
    assert render("Title: {title}", {"title": "Moby"}) == "Title: Moby"
    assert render("{} / {text} / {row}", "x") == "x / x / x"
    assert render("{text} in {labels}", "x", labels="a, b") == "x in a, b"
    assert render(lambda row: row["n"] * 2, {"n": "ab"}) == "abab"
    with pytest.raises(TypeError):
        render(lambda row: 3, "x")
    with pytest.raises(KeyError):
        render("{missing}", {"title": "x"})


def test_cache_key_depends_on_model_and_request_only() -> None:
    a = cache_key("llm.map", "m", {"messages": [1], "max_tokens": 5})
    assert a == cache_key("llm.map", "m", {"max_tokens": 5, "messages": [1]})
    assert a != cache_key("llm.map", "other", {"messages": [1], "max_tokens": 5})
    assert a != cache_key("llm.map", "m", {"messages": [1], "max_tokens": 6})
    assert a != cache_key("llm.classify", "m", {"messages": [1], "max_tokens": 5})


def test_results_align_with_the_index_and_carry_errors() -> None:
    rows = rows_of(pd.Series(["a", "b", "c"], index=["x", "y", "z"]))
    report = Report(total=3, errors={"y": "boom"}, missing=["z"])
    series = text_series(rows, {0: "A"}, report)
    assert series.to_dict() == {"x": "A", "y": None, "z": None}
    assert series.attrs == {"errors": {"y": "boom"}, "missing": ["z"]}
    frame = record_frame(rows, {0: {"n": 1}}, report, ["n"])
    assert list(frame.columns) == ["n", "error"] and frame.loc["y", "error"] == "boom"
    assert frame.loc["x", "n"] == 1 and math.isnan(frame.loc["z", "n"])


def test_schema_from_pydantic_or_dict() -> None:
    from pydantic import BaseModel

    class Book(BaseModel):
        title: str
        year: int

    schema, parse = schema_of(Book)
    assert list(schema["properties"]) == ["title", "year"]
    assert parse('{"title": "t", "year": 1851}') == {"title": "t", "year": 1851}
    with pytest.raises(ValueError):
        parse('{"title": "t"}')
    plain, parse_plain = schema_of({"type": "object", "properties": {"a": {"type": "string"}}})
    assert parse_plain('{"a": "b"}') == {"a": "b"} and plain["type"] == "object"


def _alt(token: str, logprob: float) -> dict:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


def _item(token: str, logprob: float, top: list[tuple[str, float]]) -> dict:
    return {**_alt(token, logprob), "top_logprobs": [_alt(t, v) for t, v in top]}


def test_single_token_labels_are_exact() -> None:
    entries = [
        _item("pos", math.log(0.5), [("pos", math.log(0.5)), ("neg", math.log(0.3)), ("The", math.log(0.1))])
    ]
    probs = labels.probabilities(entries, ["pos", "neg", "neutral"], "pos")
    assert probs["pos"] == pytest.approx(0.5 / 0.8) and probs["neg"] == pytest.approx(0.3 / 0.8)
    assert probs["neutral"] == 0.0 and sum(probs.values()) == pytest.approx(1.0)


def test_multi_token_labels_part_where_they_differ() -> None:
    # "negative" and "neutral" share "ne"; the answer went ne|g|ative.
    entries = [
        _item(
            "ne", math.log(0.6), [("ne", math.log(0.6)), ("positive", math.log(0.2)), (" ne", math.log(0.1))]
        ),
        _item("g", math.log(0.75), [("g", math.log(0.75)), ("ut", math.log(0.25))]),
        _item("ative", 0.0, [("ative", 0.0)]),
    ]
    probs = labels.probabilities(entries, ["positive", "negative", "neutral"], "negative")
    # " ne" (leading space at the start) splits its 0.1 between the two "ne" labels.
    raw = {"positive": 0.2, "negative": 0.6 * 0.75 + 0.05, "neutral": 0.6 * 0.25 + 0.05}
    total = sum(raw.values())
    assert probs == pytest.approx({k: v / total for k, v in raw.items()})


def test_underflow_falls_back_to_the_answer() -> None:
    entries = [_item("a", -9999.0, [("a", -9999.0)])]
    assert labels.probabilities(entries, ["a", "b"], "a") == {"a": 1.0, "b": 0.0}


def test_label_grammar_and_checks() -> None:
    assert labels.grammar(["yes", 'say "no"']) == 'root ::= "yes" | "say \\"no\\""'
    for bad in (["one"], ["a", "a"], ["a", ""], ["a", "label"]):
        with pytest.raises(ValueError):
            labels.check_labels(bad)


def test_cache_round_trip(tmp_path: Path) -> None:
    store = ResultCache(tmp_path / "c.sqlite3")
    store.put("k1", {"label": "a", "a": 0.9})
    store.put("k2", [0.5, 0.25])
    again = ResultCache(tmp_path / "c.sqlite3")
    assert again.get_many(["k1", "k2", "k3"]) == {"k1": {"label": "a", "a": 0.9}, "k2": [0.5, 0.25]}
    assert len(again.get_many([f"k{i}" for i in range(1200)])) == 2  # more keys than one query binds
    store.close()
    again.close()


def test_progress_line() -> None:
    state = State("llm.map", total=10, done=6, errors=1, cached=2, started=0.0)
    text = line(state, 4.0)
    assert "6/10 rows" in text and "1.0 rows/s" in text and "ETA 00:04" in text
    assert "2 cached" in text and "1 errors" in text
    out = io.StringIO()
    view = TextView(out)
    state.status = "interrupted"
    view.close(state)
    assert out.getvalue().endswith("interrupted\n") and "ETA" not in out.getvalue()


def _run(jobs: list[Job], work, **options) -> tuple[dict, dict, bool, State]:
    results: dict = {}
    errors: dict = {}
    state = State("t", total=len(jobs))

    def on_result(job: Job, value: object) -> None:
        results[job.positions[0]] = value

    def on_error(job: Job, error: BaseException) -> None:
        errors[job.positions[0]] = str(error)

    interrupted = run(
        jobs,
        work,
        concurrency=2,
        on_result=on_result,
        on_error=on_error,
        state=state,
        view=TextView(io.StringIO()),
        **options,
    )
    return results, errors, interrupted, state


def test_runner_keeps_errors_per_row() -> None:
    def work(n: int, stop: threading.Event) -> int:
        if n == 2:
            raise LmError("bad row")
        return n * 10

    results, errors, interrupted, state = _run([Job([i], i) for i in range(4)], work)
    assert results == {0: 0, 1: 10, 3: 30} and errors == {2: "bad row"} and not interrupted
    assert state.done == 4 and state.errors == 1 and state.status == "done"


def test_runner_raises_the_first_error_when_asked() -> None:
    def work(n: int, stop: threading.Event) -> int:
        raise LmError(f"row {n}")

    with pytest.raises(LmError):
        _run([Job([i], i) for i in range(3)], work, raise_errors=True)


def test_retry_after_a_503() -> None:
    calls = []

    def work(n: int, stop: threading.Event) -> int:
        calls.append(n)
        if len(calls) < 3:
            raise LmError("busy", status=503, retry_after=0.01)
        return n

    assert with_retries(work, 7, threading.Event()) == 7 and len(calls) == 3
    stopped = threading.Event()
    stopped.set()
    with pytest.raises(Cancelled):
        with_retries(work, 7, stopped)


def test_a_full_queue_is_waited_for_beyond_the_retries_of_other_503s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 503 with Retry-After (the server's queue is full) is retried for as long as
    ``QUEUE_WAIT_SECONDS``, however many times; one without Retry-After ``RETRIES`` times."""
    calls = []

    def queue_full_for(n: int, stop: threading.Event) -> int:
        calls.append(n)
        if len(calls) <= 2 * runner.RETRIES:
            raise LmError("busy", status=503, code="queue_full", retry_after=0.001)
        return n

    assert with_retries(queue_full_for, 7, threading.Event()) == 7
    assert len(calls) == 2 * runner.RETRIES + 1

    def always(status: int, retry_after: float | None) -> Callable[[int, threading.Event], int]:
        def work(n: int, stop: threading.Event) -> int:
            calls.append(n)
            raise LmError("no", status=status, retry_after=retry_after)

        return work

    monkeypatch.setattr(runner, "QUEUE_WAIT_SECONDS", 0.2)
    started = time.monotonic()
    with pytest.raises(LmError):
        with_retries(always(503, 0.01), 7, threading.Event())
    assert 0.15 <= time.monotonic() - started < 5

    monkeypatch.setattr(runner, "DEFAULT_RETRY_AFTER", 0.001)
    calls.clear()
    with pytest.raises(LmError, match="no"):
        with_retries(always(503, None), 7, threading.Event())  # a model that failed to load
    assert len(calls) == runner.RETRIES
    calls.clear()
    with pytest.raises(LmError):
        with_retries(always(400, None), 7, threading.Event())
    assert len(calls) == 1


def test_an_interrupt_keeps_the_finished_rows() -> None:
    """Ctrl+C while waiting: queued jobs never start, running ones see ``stop``, and every
    job that finished is handed over."""
    started: list[int] = []

    def work(n: int, stop: threading.Event) -> int:
        started.append(n)
        if n >= 2:  # a long generation: it ends when the run is stopped
            stop.wait(30)
            raise Cancelled
        return n

    class InterruptAfterTwo(TextView):
        def show(self, state: State) -> None:
            if state.done >= 2:
                raise KeyboardInterrupt

    results: dict = {}
    state = State("t", total=6)
    interrupted = run(
        [Job([i], i) for i in range(6)],
        work,
        concurrency=2,
        on_result=lambda job, value: results.update({job.positions[0]: value}),
        on_error=lambda job, error: None,
        state=state,
        view=InterruptAfterTwo(io.StringIO()),
    )
    assert interrupted and results == {0: 0, 1: 1} and state.status == "interrupted"
    assert len(started) < 6  # jobs still queued at the interrupt never ran
