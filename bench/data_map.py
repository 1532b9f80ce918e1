"""llm.map / llm.classify over a DataFrame vs. a sequential openai loop vs. raw llama-cpp-python.

    python bench/data_map.py MODEL.gguf [--rows 200] [--parallel 4] [--tasks classify extract]

Rows are the first --rows reviews of notebooks/data/reviews.csv. Two short tasks:
- classify: one of three sentiment labels per row (grammar-constrained, logprobs for the
  label probabilities);
- extract: two fields per row as JSON (topic enum, mentions_price bool) via response_format.

Each task runs three ways in the same process, on the same model file and threads:
(a) raw llama-cpp-python, one row after another (the same rendered prompt and grammar; no
logprobs, which llama-cpp-python only computes with logits_all);
(b) the openai SDK against this server, one request after another: the loop people write;
(c) llm.classify / llm.map against the same server (an instance with --parallel slots), which
keeps the slots busy and a few requests queued (``Target.in_flight``), so continuous batching
fills the slots.
Prints rows per second and the ratios of (c) to (a) and (b). Caching is off (cache=False).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import llama_cpp
import pandas as pd
from _harness import MODEL_KEY, chat_renderer, raw_llama, serve_model
from llama_cpp.llama_grammar import LlamaGrammar
from openai import OpenAI
from throughput import prompt_tokens

from lm_jupyter import llm
from lm_jupyter.data import labels as label_scores

DATA = Path(__file__).resolve().parents[1] / "notebooks" / "data" / "reviews.csv"
LABELS = ["positive", "negative", "neutral"]
EXTRACT = "Review: {text}\n\nWhat is it about, and does it mention the price?"
SCHEMA = {
    "type": "object",
    "properties": {
        "topic": {"enum": ["food", "hotel", "phone", "film", "garden"]},
        "mentions_price": {"type": "boolean"},
    },
    "required": ["topic", "mentions_price"],
}
EXTRACT_TOKENS = 48


def prompts(task: str, texts: list[str]) -> list[str]:
    if task == "classify":
        listed = ", ".join(LABELS)
        return [llm.CLASSIFY_TEMPLATE.format(text=text, labels=listed) for text in texts]
    return [EXTRACT.format(text=text) for text in texts]


def request(task: str, prompt: str) -> dict[str, Any]:
    """The body llm sends for one row (so the loop sends the same work)."""
    body: dict[str, Any] = {"messages": [{"role": "user", "content": prompt}], "temperature": 0}
    if task == "classify":
        extra = {"grammar": label_scores.grammar(LABELS), "constrained_logprobs": True}
        return {**body, "max_tokens": 64, "logprobs": True, "top_logprobs": 20, "extra_body": extra}
    response_format = {"type": "json_schema", "json_schema": {"name": "row", "schema": SCHEMA}}
    return {**body, "max_tokens": EXTRACT_TOKENS, "response_format": response_format}


def raw(llm_raw: llama_cpp.Llama, render: Any, task: str, rows: list[str]) -> float:
    gbnf = (
        LlamaGrammar.from_string(label_scores.grammar(LABELS), verbose=False)
        if task == "classify"
        else LlamaGrammar.from_json_schema(json.dumps(SCHEMA), verbose=False)
    )
    start = time.perf_counter()
    for prompt in rows:
        text = render([{"role": "user", "content": prompt}])
        llm_raw.create_completion(
            prompt_tokens(llm_raw, text),
            max_tokens=64 if task == "classify" else EXTRACT_TOKENS,
            temperature=0,
            grammar=gbnf,
        )
    return len(rows) / (time.perf_counter() - start)


def loop(client: OpenAI, task: str, rows: list[str]) -> float:
    start = time.perf_counter()
    for prompt in rows:
        client.chat.completions.create(model=MODEL_KEY, **request(task, prompt))
    return len(rows) / (time.perf_counter() - start)


def batched(task: str, texts: list[str]) -> float:
    start = time.perf_counter()
    if task == "classify":
        result = llm.classify(texts, LABELS, model=MODEL_KEY, cache=False, progress=False)
    else:
        result = llm.map(EXTRACT, pd.DataFrame({"text": texts}), model=MODEL_KEY, schema=SCHEMA,
                         max_tokens=EXTRACT_TOKENS, cache=False, progress=False)  # fmt: skip
    elapsed = time.perf_counter() - start
    assert llm.last_run is not None and not llm.last_run.errors, llm.last_run
    assert len(result) == len(texts)
    return len(texts) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument(
        "--tasks", nargs="+", default=["classify", "extract"], choices=["classify", "extract"]
    )
    args = parser.parse_args()
    texts = pd.read_csv(DATA)["text"].head(args.rows).tolist()
    llm_raw, threads = raw_llama(args.model, 4096, 0)
    render = chat_renderer(args.model)
    with serve_model(args.model) as http:
        load = {"model": MODEL_KEY, "parallel": args.parallel, "context_length": 4096}
        http.post("api/v1/models/load", json=load).raise_for_status()
        token = http.headers["Authorization"].split()[1]
        llm.connect(str(http.base_url), token)
        client = OpenAI(base_url=f"{http.base_url}v1", api_key=token, max_retries=0, timeout=600)
        print(f"model {args.model.name}, {len(texts)} rows, parallel {args.parallel}, {threads} threads")
        header = ("task", "raw rows/s", "loop rows/s", "llm rows/s", "x loop", "x raw")
        print(" ".join(f"{name:>11}" for name in header))
        for task in args.tasks:
            rows = prompts(task, texts)
            loop(client, task, rows[:2])  # warm up the server and the raw model
            raw(llm_raw, render, task, rows[:2])
            r = raw(llm_raw, render, task, rows)
            s = loop(client, task, rows)
            b = batched(task, texts)
            print(f"{task:>11} {r:>11.2f} {s:>11.2f} {b:>11.2f} {b / s:>10.2f}x {b / r:>10.2f}x")


if __name__ == "__main__":
    main()
