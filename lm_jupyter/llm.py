"""Run a local model over data in a notebook: ``from lm_jupyter import llm``.

- ``llm.map(template, data, schema=None)``: one answer per row, as a Series (text) or, with a
  schema (a pydantic model or a JSON schema, enforced by the server's ``response_format``), a
  DataFrame with one column per field.
- ``llm.classify(data, labels)``: one label per row (constrained with a grammar) and every
  label's probability (from logprobs; see ``lm_jupyter.data.labels`` for multi-token labels).
- ``llm.embed(data)``: a numpy array, rows x dimensions, requested in batches.

Every call keeps the serving instance's ``parallel`` slots busy (and a few requests queued
behind them, so no slot waits for the notebook), so the server batches them; shows progress;
keeps rows that fail (``result.attrs["errors"]`` and an ``error`` column; ``errors="raise"``
raises instead); returns the rows already done when interrupted (the others are missing: None
or NaN); and caches finished rows on disk (``cache=False`` to skip), so re-running a cell
computes only rows it has not seen.
``llm.last_run`` describes the last call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from .data import labels as label_scores
from .data._client import Client, LmError, ServerInfo
from .data.cache import ResultCache
from .data.calls import chat_answer, embedding_batch
from .data.models import Target, resolve
from .data.progress import State, view_for
from .data.rows import (
    Report,
    Rows,
    Template,
    cache_key,
    columns_of,
    record_frame,
    render,
    rows_of,
    schema_of,
    text_series,
)
from .data.runner import Job, run

# The instructions come before the text: they are the same for every row, so the prefix cache
# keeps them, and a row costs only its own text (an instruction after it is new every time).
CLASSIFY_TEMPLATE = "Label the text with exactly one of: {labels}.\n\nText: {text}"
EMBED_BATCH = 32

last_run: Report | None = None
_client: Client | None = None


def connect(url: str | None = None, token: str = "") -> Client:
    """Talk to this server from now on (any OpenAI-compatible one: a remote lm_jupyter,
    llama-server, vLLM); without a URL, find the notebook's own as ``%lms`` does."""
    global _client
    if _client is not None:
        _client.close()
    _client = Client(ServerInfo(url.rstrip("/") + "/", token)) if url else Client.discover()
    return _client


def client() -> Client:
    """The client calls use: the one `connect` made, else the notebook's own server."""
    return _client or connect()


def map(
    template: Template,
    data: Any,
    *,
    model: str | None = None,
    schema: Any = None,
    system: str | None = None,
    max_tokens: int = 256,
    temperature: float = 0.0,
    concurrency: int | None = None,
    cache: bool = True,
    errors: str = "keep",
    progress: bool | str = True,
    **params: Any,
) -> Any:
    """Ask the model ``template`` (a format string over the row, or a function of it) for
    every row of ``data``. Extra keyword arguments go into each request (``top_p``, ``seed``,
    ``stop``...)."""
    rows = rows_of(data)
    server = client()
    target = resolve(server, model, "llm")
    parse: Callable[[str], Any] = str
    base: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature, **params}
    columns: list[str] = []
    if schema is not None:
        json_schema, parse = schema_of(schema)
        columns = columns_of(json_schema)
        base["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "row", "schema": json_schema},
        }
    bodies = [{**base, "messages": _messages(system, render(template, row))} for row in rows.values]

    def answer(body: dict[str, Any], stop: Any) -> list[Any]:
        text, _ = chat_answer(server, {**body, "model": target.model}, stop)
        return [parse(text)]

    values = _run("llm.map", rows, target, bodies, answer, concurrency, cache, errors, progress)
    if schema is not None:
        return record_frame(rows, values, _last(), columns)
    return text_series(rows, values, _last())


def classify(
    data: Any,
    labels: Sequence[str],
    *,
    template: Template = CLASSIFY_TEMPLATE,
    model: str | None = None,
    system: str | None = None,
    concurrency: int | None = None,
    cache: bool = True,
    errors: str = "keep",
    progress: bool | str = True,
) -> Any:
    """One of ``labels`` per row, and each label's probability (summing to 1 over the
    labels): a DataFrame with a ``label`` column and one column per label. The default
    template shows the row as ``{text}`` and the labels as ``{labels}``."""
    choices = label_scores.check_labels(labels)
    rows = rows_of(data)
    server = client()
    target = resolve(server, model, "llm")
    listed = ", ".join(choices)
    base = {
        "max_tokens": 64,
        "temperature": 0.0,
        "grammar": label_scores.grammar(choices),
        "logprobs": True,
        "top_logprobs": 20,
        "constrained_logprobs": True,  # the alternatives are the tokens the labels allow
    }
    bodies = [
        {**base, "messages": _messages(system, render(template, row, labels=listed))} for row in rows.values
    ]

    def answer(body: dict[str, Any], stop: Any) -> list[Any]:
        text, entries = chat_answer(server, {**body, "model": target.model}, stop)
        if text not in choices:
            raise LmError(f"the answer {text!r} is not one of the labels")
        return [{"label": text, **label_scores.probabilities(entries, choices, text)}]

    values = _run("llm.classify", rows, target, bodies, answer, concurrency, cache, errors, progress)
    return record_frame(rows, values, _last(), ["label", *choices])


def embed(
    data: Any,
    *,
    model: str | None = None,
    template: Template | None = None,
    batch_size: int = EMBED_BATCH,
    concurrency: int | None = None,
    cache: bool = True,
    errors: str = "keep",
    progress: bool | str = True,
) -> Any:
    """A float32 array with one row per input row (NaN where a row failed or was not
    computed), from an embedding model, ``batch_size`` texts per request."""
    import numpy as np

    rows = rows_of(data)
    server = client()
    target = resolve(server, model, "embedding")
    texts = [render(template, row) if template is not None else str(row) for row in rows.values]

    def answer(batch: list[str], stop: Any) -> list[Any]:
        return embedding_batch(server, target.model, batch)

    values = _run(
        "llm.embed", rows, target, texts, answer, concurrency, cache, errors, progress, batch_size=batch_size
    )
    dims = len(next(iter(values.values()))) if values else 0
    array = np.full((len(rows.values), dims), np.nan, dtype=np.float32)
    for position, vector in values.items():
        array[position] = vector
    return array


def _messages(system: str | None, prompt: str) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]


def _last() -> Report:
    assert last_run is not None
    return last_run


def _run(
    title: str,
    rows: Rows,
    target: Target,
    requests: list[Any],
    answer: Callable[[Any, Any], list[Any]],
    concurrency: int | None,
    cache: bool,
    errors: str,
    progress: bool | str,
    batch_size: int = 1,
) -> dict[int, Any]:
    """Results by row position: cached ones first, the rest computed ``concurrency`` (else
    ``target.in_flight``: the instance's ``parallel`` and a few queued) at a time;
    ``last_run`` says how it went."""
    global last_run
    if errors not in ("keep", "raise"):
        raise ValueError("errors must be 'keep' or 'raise'")
    started = time.monotonic()
    keys = [cache_key(title, target.key, request) for request in requests]
    store = ResultCache() if cache else None
    values: dict[int, Any] = {}
    try:
        if store is not None:
            found = store.get_many(keys)
            values = {position: found[key] for position, key in enumerate(keys) if key in found}
        todo = [position for position in range(len(requests)) if position not in values]
        jobs = [
            Job(chunk, requests[chunk[0]] if batch_size == 1 else [requests[p] for p in chunk])
            for chunk in (todo[i : i + batch_size] for i in range(0, len(todo), batch_size))
        ]
        report = Report(total=len(requests), cached=len(values))
        state = State(title, total=len(requests), done=len(values), cached=len(values))

        def on_result(job: Job, results: list[Any]) -> None:
            for position, value in zip(job.positions, results, strict=True):
                values[position] = value
                if store is not None:
                    store.put(keys[position], value)

        def on_error(job: Job, error: BaseException) -> None:
            message = str(error) if isinstance(error, LmError) else f"{type(error).__name__}: {error}"
            for position in job.positions:
                report.errors[rows.index[position]] = message

        last_run = report
        report.interrupted = run(
            jobs,
            answer,
            concurrency=concurrency or target.in_flight,
            on_result=on_result,
            on_error=on_error,
            state=state,
            view=view_for(progress),
            raise_errors=errors == "raise",
        )
    finally:
        if store is not None:
            store.close()
    failed = set(report.errors)
    report.done = len(values)
    report.missing = [label for p, label in enumerate(rows.index) if p not in values and label not in failed]
    report.retries = state.retries
    report.seconds = time.monotonic() - started
    return values
