"""The MLX side of the benchmarks: mlx-lm's own ``stream_generate`` on an MLX model folder, given
exactly the prompt the server renders and decodes, greedily with end of turn banned."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import mlx.core as mx
from mlx_lm import load, stream_generate

from lm_jupyter.chat.template import render_chat
from lm_jupyter.engine.mlx_meta import read_mlx_metadata


def mlx_chat_renderer(folder: Path) -> Callable[[list[dict[str, str]]], str]:
    """Messages rendered with the folder's own template, as the server renders them."""
    meta = read_mlx_metadata(folder)
    template = meta.chat_template or ""
    bos, eos = meta.token_text("bos_token"), meta.token_text("eos_token")
    return lambda messages: render_chat(template, messages, bos_token=bos, eos_token=eos)


class RawMlx:
    """The baseline: mlx-lm loading the same folder in this process."""

    def __init__(self, folder: Path) -> None:
        self.model, self.tokenizer = load(str(folder))
        self.bias = {int(t): -100.0 for t in self.tokenizer.eos_token_ids}

    def run(self, prompt: str, tokens: int) -> tuple[float, float, int]:
        """(time to first token, decode tokens/s, tokens made) for one greedy answer."""
        ids = self.tokenizer.encode(prompt, add_special_tokens=False)
        banned = mx.array(list(self.bias)), mx.array(list(self.bias.values()))

        def ban(_: mx.array, logits: mx.array) -> mx.array:
            return logits.at[:, banned[0]].add(banned[1])

        start = time.perf_counter()
        stamps = [
            time.perf_counter()
            for _ in stream_generate(
                self.model, self.tokenizer, ids, max_tokens=tokens, logits_processors=[ban]
            )
        ]
        return stamps[0] - start, (len(stamps) - 1) / (stamps[-1] - stamps[0]), len(stamps)
