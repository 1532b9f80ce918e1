"""Concurrent streams: aggregate tokens/s and time to first token, batched vs. serialized.

    python bench/concurrency.py MODEL.gguf [--tokens 128] [--streams 1 2 4 8]

For each number of concurrent streams N, N clients start a streamed /v1/completions at once
(different prompts, greedy, EOS banned so each makes exactly --tokens tokens) against
(a) raw llama-cpp-python answering the same N requests one after another, (b) this server with
`parallel 1` (a serializing server), (c) this server with `parallel N` (continuous batching).
Prints aggregate decode throughput (all tokens / wall time) and p50/p95 time to first token.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from pathlib import Path

import httpx
import llama_cpp
from _harness import MODEL_KEY, eog_bias, serve_model, sse_chunks

TOPICS = ["the sea", "a robot", "mountains", "the moon", "a garden", "trains", "winter", "a clock"]
PROMPTS = [f"Write a long story about {topic}." for topic in TOPICS]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def raw(llm: llama_cpp.Llama, n: int, tokens: int, bias: dict[int, float]) -> tuple[float, list[float]]:
    start = time.perf_counter()
    ttfts = []
    for prompt in PROMPTS[:n]:  # one after another: request i waits for all before it
        first = None
        for _ in llm.create_completion(
            prompt, max_tokens=tokens, temperature=0, logit_bias=bias, stream=True
        ):
            first = first or time.perf_counter()
        ttfts.append((first or time.perf_counter()) - start)
    return n * tokens / (time.perf_counter() - start), ttfts


def served(
    http: httpx.Client, model: str, n: int, tokens: int, bias: dict[int, float]
) -> tuple[float, list[float]]:
    ttfts: list[float] = [0.0] * n
    body = {"model": model, "max_tokens": tokens, "temperature": 0, "stream": True,
            "logit_bias": {str(k): v for k, v in bias.items()}}  # fmt: skip
    barrier = threading.Barrier(n + 1)

    def client(i: int) -> None:
        barrier.wait()
        sent = time.perf_counter()
        for _chunk in sse_chunks(http, "v1/completions", {**body, "prompt": PROMPTS[i]}):
            if not ttfts[i]:
                ttfts[i] = time.perf_counter() - sent

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return n * tokens / (time.perf_counter() - start), ttfts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8])
    args = parser.parse_args()
    threads = len(os.sched_getaffinity(0))
    llm = llama_cpp.Llama(
        str(args.model), n_ctx=4096, n_threads=threads, n_threads_batch=threads, verbose=False
    )
    bias = eog_bias(llm)
    with serve_model(args.model) as http:
        top = max(args.streams)
        for identifier, parallel in (("serial", 1), ("batched", top)):
            load = {"model": MODEL_KEY, "identifier": identifier, "parallel": parallel}
            http.post("api/v1/models/load", json={**load, "context_length": 8192})
        served(http, "batched", 1, 8, bias)  # warm up
        raw(llm, 1, 8, bias)
        print(f"model {args.model.name}, {args.tokens} tokens per stream, {threads} threads")
        print(f"{'streams':>8} {'raw tok/s':>10} {'p1 tok/s':>10} {'batched':>10} {'x one':>7}"
              f" {'raw p95':>9} {'p1 p95':>9} {'batch p50':>10} {'batch p95':>10}")  # fmt: skip
        one = None
        for n in args.streams:
            r_tps, r_ttft = raw(llm, n, args.tokens, bias)
            s_tps, s_ttft = served(http, "serial", n, args.tokens, bias)
            b_tps, b_ttft = served(http, "batched", n, args.tokens, bias)
            one = one or b_tps
            print(f"{n:>8} {r_tps:>10.1f} {s_tps:>10.1f} {b_tps:>10.1f} {b_tps / one:>6.2f}x"
                  f" {percentile(r_ttft, 0.95):>8.2f}s {percentile(s_ttft, 0.95):>8.2f}s"
                  f" {statistics.median(b_ttft):>9.2f}s {percentile(b_ttft, 0.95):>9.2f}s")  # fmt: skip


if __name__ == "__main__":
    main()
