"""Decode speed and time to first token: the raw library vs. a streamed /v1/chat/completions.

    python bench/throughput.py MODEL.gguf [--tokens 128] [--runs 5] [--context 4096] [--parallel 4]
    python bench/throughput.py MLX_MODEL_FOLDER [--tokens 128] [--runs 5] [--context 4096]

A GGUF file is compared with llama-cpp-python, an MLX folder with mlx-lm's ``stream_generate``.

Both sides load the same file with the same context and thread count, with flash attention
(the server's default); the server's instance has --parallel slots (what users load; one stream
runs, so this is what the slots cost a single stream). Both get the same rendered chat prompt
(the server's template, so prompt token counts match), decode greedily with EOS
banned so every run makes exactly --tokens tokens, and alternate run by run so machine noise
hits both alike. Each run uses a different question so neither side answers from a warm cache
more than the other. Prints medians and the ratios the project targets (>= 0.97 of raw decode
speed, < 10 ms added to time to first token).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import llama_cpp
from _harness import MODEL_KEY, chat_renderer, eog_bias, raw_llama, serve_model, sse_chunks

TOPICS = [
    "the sea",
    "a lighthouse",
    "mountains",
    "a robot",
    "the moon",
    "a library",
    "rain",
    "a garden",
    "trains",
    "winter",
    "a clock",
    "the desert",
]


def question(run: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Write a long story about {TOPICS[run % len(TOPICS)]}."}]


def prompt_tokens(llm: llama_cpp.Llama, prompt: str) -> list[int]:
    """Tokenize exactly as the worker does: special tokens parsed, a single BOS."""
    tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    if llama_cpp.llama_vocab_get_add_bos(llm._model.vocab) and tokens[:1] != [llm.token_bos()]:
        tokens.insert(0, llm.token_bos())
    return tokens


def raw_run(
    llm: llama_cpp.Llama, prompt: str, tokens: int, bias: dict[int, float]
) -> tuple[float, float, int]:
    start = time.perf_counter()
    stamps = []
    for _chunk in llm.create_completion(
        prompt_tokens(llm, prompt),
        max_tokens=tokens,
        temperature=0,
        repeat_penalty=1.0,
        logit_bias=bias,
        stream=True,
    ):
        stamps.append(time.perf_counter())
    return stamps[0] - start, (tokens - 1) / (stamps[-1] - stamps[0]), tokens


def server_run(
    http: httpx.Client, model: str, messages: list[dict[str, str]], tokens: int, bias: dict[int, float]
) -> tuple[float, float, int]:
    body = {
        "model": model,
        "messages": messages,
        "max_tokens": tokens,
        "temperature": 0,
        "repeat_penalty": 1.0,
        "logit_bias": {str(k): v for k, v in bias.items()},
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    stamps = []
    produced = 0
    for chunk in sse_chunks(http, "v1/chat/completions", body):
        if chunk.get("usage"):
            produced = chunk["usage"]["completion_tokens"]
        elif chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
            stamps.append(time.perf_counter())
    return stamps[0] - start, (produced - 1) / (stamps[-1] - stamps[0]), produced


def raw_side_for(
    args: argparse.Namespace,
) -> tuple[Callable[[int, int], tuple[float, float, int]], str, dict[int, float], int]:
    """The baseline's run(run, tokens), its name, the end-of-turn ban and the thread count."""
    if args.model.is_dir():  # MLX: mlx-lm's threads are its own
        from _mlx import RawMlx, mlx_chat_renderer

        render_mlx = mlx_chat_renderer(args.model)
        mlx = RawMlx(args.model)
        return lambda run, n: mlx.run(render_mlx(question(run)), n), "raw mlx-lm", mlx.bias, 0
    render = chat_renderer(args.model)
    llm, threads = raw_llama(args.model, args.context, args.threads)
    bias = eog_bias(llm)
    return lambda run, n: raw_run(llm, render(question(run)), n, bias), "raw llama-cpp-python", bias, threads


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path, help="a GGUF file or an MLX model folder")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--context", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for both sides (0: all cores)")
    parser.add_argument("--parallel", type=int, default=4, help="the server instance's parallel slots")
    args = parser.parse_args()

    baseline, raw_side, bias, threads = raw_side_for(args)

    with serve_model(args.model, config=[f"--ModelManager.threads={threads}"]) as http:
        load = {"model": MODEL_KEY, "context_length": args.context, "parallel": args.parallel}
        loaded = http.post("api/v1/models/load", json=load)
        loaded.raise_for_status()
        # Warm both sides once (page in weights, build caches) before measuring.
        baseline(99, 8)
        server_run(http, MODEL_KEY, question(99), 8, bias)
        raw, ours = [], []
        for run in range(args.runs):
            raw.append(baseline(run, args.tokens))
            ours.append(server_run(http, MODEL_KEY, question(run), args.tokens, bias))
            assert ours[-1][2] == args.tokens, ours[-1]

    raw_ttft = statistics.median(r[0] for r in raw)
    our_ttft = statistics.median(r[0] for r in ours)
    raw_tps = statistics.median(r[1] for r in raw)
    our_tps = statistics.median(r[1] for r in ours)
    print(
        f"model: {args.model.name}  tokens/run: {args.tokens}  runs: {args.runs}  threads: {threads}  "
        f"context: {args.context}  parallel: {args.parallel}"
    )
    print(f"{'':28}{raw_side:>22}{'lm_jupyter /v1 stream':>24}")
    print(f"{'decode tokens/s (median)':28}{raw_tps:>22.1f}{our_tps:>24.1f}")
    print(f"{'time to first token (ms)':28}{raw_ttft * 1000:>22.1f}{our_ttft * 1000:>24.1f}")
    print(f"decode speed ratio (server/raw): {our_tps / raw_tps:.3f}   (target >= 0.97)")
    print(f"added time to first token: {(our_ttft - raw_ttft) * 1000:+.1f} ms   (target < 10 ms)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
