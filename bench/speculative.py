"""Speculative decoding: decode speed and acceptance on a task that repeats given text.

    python bench/speculative.py MODEL.gguf [--draft DRAFT.gguf] [--tokens 256] [--runs 5]
                                [--n-draft N] [--threads T]

Each run asks the model (chat template, greedy, repeat penalty off) to copy a piece of code
with one small edit, the kind of answer where drafting pays. Four configurations take turns
within every run (in rotating order, so machine noise hits them alike): raw llama-cpp-python
decoding the same rendered prompt in this process, the server without drafting, the server with
``prompt_lookup``, and, with --draft, the server with ``draft_model``. Decode speed is measured
from the first to the last streamed token as the client sees them. Prints medians, speedups
against the plain server and raw llama-cpp-python, the acceptance rate (accepted / drafted)
and whether each drafting configuration produced exactly the plain server's text.
Target (issue 8): prompt lookup at least 1.3x the plain server on Gemma 3 270M.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import llama_cpp
from _harness import DRAFT_KEY, MODEL_KEY, chat_renderer, raw_llama, serve_model, sse_chunks
from throughput import prompt_tokens

CODE = [
    (
        "Rename the function `mean` to `average`",
        "def mean(values):\n"
        '    """Return the arithmetic mean of a list of numbers."""\n'
        "    if not values:\n"
        '        raise ValueError("mean of an empty list")\n'
        "    total = 0\n"
        "    for value in values:\n"
        "        total += value\n"
        "    return total / len(values)\n\n\n"
        "def variance(values):\n"
        "    m = mean(values)\n"
        "    return sum((value - m) ** 2 for value in values) / len(values)\n",
    ),
    (
        "Change the default port from 8080 to 9090",
        "import socket\n\n\n"
        "def serve(host='127.0.0.1', port=8080, backlog=16):\n"
        "    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
        "    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "    server.bind((host, port))\n"
        "    server.listen(backlog)\n"
        "    while True:\n"
        "        client, address = server.accept()\n"
        "        data = client.recv(1024)\n"
        "        client.sendall(data)\n"
        "        client.close()\n",
    ),
    (
        "Add a `name` parameter to `greet` and use it in the message",
        "class Greeter:\n"
        "    def __init__(self, greeting='Hello'):\n"
        "        self.greeting = greeting\n"
        "        self.count = 0\n\n"
        "    def greet(self):\n"
        "        self.count += 1\n"
        "        return f'{self.greeting}, world! (call number {self.count})'\n\n\n"
        "greeter = Greeter()\n"
        "for _ in range(3):\n"
        "    print(greeter.greet())\n",
    ),
]


def task(run: int) -> list[dict[str, str]]:
    edit, code = CODE[run % len(CODE)]
    return [
        {
            "role": "user",
            "content": f"{edit}. Reply with the complete code only, nothing else.\n\n```python\n{code}```",
        }
    ]


def raw_run(llm: llama_cpp.Llama, prompt: str, tokens: int) -> dict[str, Any]:
    stamps, text = [], ""
    for chunk in llm.create_completion(
        prompt_tokens(llm, prompt), max_tokens=tokens, temperature=0, repeat_penalty=1.0, stream=True
    ):
        if chunk["choices"][0]["text"]:
            stamps.append(time.perf_counter())
            text += chunk["choices"][0]["text"]
    return {"tps": (len(stamps) - 1) / (stamps[-1] - stamps[0]), "text": text, "tokens": len(stamps)}


def server_run(
    http: httpx.Client, messages: list[dict[str, str]], tokens: int, **extra: Any
) -> dict[str, Any]:
    body = {
        "model": MODEL_KEY,
        "messages": messages,
        "max_tokens": tokens,
        "temperature": 0,
        "repeat_penalty": 1.0,
        "stream": True,
        "stream_options": {"include_usage": True},
        **extra,
    }
    stamps, text, usage, stats = [], "", {}, {}
    for chunk in sse_chunks(http, "v1/chat/completions", body):
        usage, stats = chunk.get("usage") or usage, chunk.get("stats") or stats
        if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
            stamps.append(time.perf_counter())
            text += chunk["choices"][0]["delta"]["content"]
    produced = usage["completion_tokens"]
    return {
        "tps": (produced - 1) / (stamps[-1] - stamps[0]),
        "text": text,
        "tokens": produced,
        "stats": stats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path, help="a GGUF file")
    parser.add_argument("--draft", type=Path, help="a draft model (same vocabulary) to benchmark too")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--n-draft", type=int, help="num_draft_tokens (default: the server's)")
    parser.add_argument("--context", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for every side (0: all cores)")
    args = parser.parse_args()

    render = chat_renderer(args.model)
    llm, threads = raw_llama(args.model, args.context, args.threads)
    n_draft = {"num_draft_tokens": args.n_draft} if args.n_draft else {}

    def chat(run: int) -> str:
        return render(task(run))

    configs: dict[str, Any] = {
        "raw": lambda run, tokens: raw_run(llm, chat(run), tokens),
        "plain": lambda run, tokens: server_run(http, task(run), tokens),
        "lookup": lambda run, tokens: server_run(http, task(run), tokens, prompt_lookup=True, **n_draft),
    }
    if args.draft:
        configs["draft"] = lambda run, tokens: server_run(
            http, task(run), tokens, draft_model=DRAFT_KEY, **n_draft
        )
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    with serve_model(args.model, config=[f"--ModelManager.threads={threads}"], draft=args.draft) as http:
        http.post(
            "api/v1/models/load", json={"model": MODEL_KEY, "context_length": args.context, "parallel": 1}
        )
        for name in configs:  # warm every side up (weights paged in, draft model loaded)
            configs[name](0, 16)
        names = list(configs)
        for run in range(args.runs):
            for name in names[run % len(names) :] + names[: run % len(names)]:
                results[name].append(configs[name](run, args.tokens))
                print(f"run {run} {name}: {results[name][-1]['tps']:.1f} tok/s", file=sys.stderr, flush=True)

    def median(name: str) -> float:
        return statistics.median(r["tps"] for r in results[name])

    print(f"model: {args.model.name}  draft: {args.draft.name if args.draft else '-'}  max tokens: "
          f"{args.tokens}  runs: {args.runs}  threads: {threads}")  # fmt: skip
    for name in configs:
        runs = ", ".join(f"{r['tps']:.1f}" for r in results[name])
        tokens = statistics.median(r["tokens"] for r in results[name])
        line = f"{name:>7}: {median(name):6.1f} tok/s (runs: {runs})  tokens {tokens:.0f}"
        if name not in ("raw", "plain"):
            stats = [r["stats"] for r in results[name]]
            accepted = sum(s["accepted_draft_tokens_count"] for s in stats)
            drafted = sum(s["total_draft_tokens_count"] for s in stats)
            same = sum(r["text"] == p["text"] for r, p in zip(results[name], results["plain"], strict=True))
            speed = median(name)
            line += (
                f"  x{speed / median('plain'):.2f} vs plain, x{speed / median('raw'):.2f} vs raw,"
                f" accepted {accepted}/{drafted} ({accepted / max(drafted, 1):.0%}),"
                f" same text as plain {same}/{args.runs}"
            )
        print(line)


if __name__ == "__main__":
    main()
