"""Multi-turn chat: time to first token at turn 10 against turn 1, with a long history.

    python bench/prefix_cache.py MODEL.gguf [--history-tokens 2000] [--turns 10]

A chat opens with a long system prompt (about --history-tokens tokens of text); each turn adds a
short question and the model's short answer. With prefix reuse the server evaluates only the
new turn, so the time to first token should stay flat; without it, it grows with the history.
Target (issue 8): turn 10 within 1.5x of turn 1. Prints every turn's time to first token and
the cached prompt tokens the server reported.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _harness import MODEL_KEY, serve_model, sse_chunks


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path)
    parser.add_argument("--history-tokens", type=int, default=2000)
    parser.add_argument("--turns", type=int, default=10)
    args = parser.parse_args()
    system = " ".join(
        f"Fact {i}: the notebook cell number {i} computes a value." for i in range(args.history_tokens // 12)
    )
    with serve_model(args.model) as http:
        http.post("api/v1/models/load", json={"model": MODEL_KEY, "context_length": 8192})
        messages = [{"role": "system", "content": system}]
        first = None
        for turn in range(1, args.turns + 1):
            messages.append({"role": "user", "content": f"Question {turn}: what does cell {turn} do?"})
            body = {"model": MODEL_KEY, "messages": messages, "max_tokens": 16, "temperature": 0,
                    "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
            sent = time.perf_counter()
            ttft, text, usage = None, "", {}
            for chunk in sse_chunks(http, "v1/chat/completions", body):
                usage = chunk.get("usage") or usage
                for choice in chunk["choices"]:
                    piece = choice["delta"].get("content")
                    if piece:
                        ttft = ttft or time.perf_counter() - sent
                        text += piece
            messages.append({"role": "assistant", "content": text})
            first = first or ttft
            cached = usage.get("prompt_tokens_details", {}).get("cached_tokens")
            ratio = (ttft or 0) / (first or 1)
            print(f"turn {turn:>2}: prompt {usage.get('prompt_tokens')} tokens, cached {cached}, "
                  f"time to first token {ttft:.3f}s ({ratio:.2f}x turn 1)")  # fmt: skip


if __name__ == "__main__":
    main()
