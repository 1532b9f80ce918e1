"""What every benchmark needs: one model file served by a real headless lm_jupyter server."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import llama_cpp

from lm_jupyter.chat.template import choose_template, render_chat
from lm_jupyter.client.discovery import free_port, start_headless, stop_process
from lm_jupyter.engine.gguf_meta import read_metadata

MODEL_KEY = "bench/model"


DRAFT_KEY = "bench/draft"


@contextlib.contextmanager
def serve_model(model: Path, config: Sequence[str] = (), draft: Path | None = None) -> Iterator[httpx.Client]:
    """A server whose models folder holds just ``model`` (hard-linked) as ``bench/model``
    (and ``draft``, a speculative-decoding draft model, as ``bench/draft``). An MLX model is a
    folder: its files are linked into ``bench/model/``."""
    with tempfile.TemporaryDirectory() as tmp:
        for source, name in ((model, "model"), (draft, "draft")):
            if source is None:
                continue
            if source.is_dir():
                folder = Path(tmp) / "models" / "bench" / name
                folder.mkdir(parents=True)
                for file in source.iterdir():
                    if file.is_file():
                        os.link(file.resolve(), folder / file.name)
                continue
            folder = Path(tmp) / "models" / "bench" / f"{name}-GGUF"
            folder.mkdir(parents=True)
            os.link(source.resolve(), folder / source.name)
        os.environ["JUPYTER_RUNTIME_DIR"] = str(Path(tmp) / "runtime")
        server = start_headless(
            port=free_port("127.0.0.1", 0), models_dir=str(Path(tmp) / "models"), config=config
        )
        try:
            with httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=900
            ) as http:
                yield http
        finally:
            stop_process(server.pid or 0)


def sse_chunks(http: httpx.Client, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The JSON chunks of one streamed request, each as soon as it arrives (timing reads them)."""
    with http.stream("POST", path, json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data: {"):
                yield json.loads(line[6:])


def chat_renderer(model: Path) -> Callable[[list[dict[str, str]]], str]:
    """Messages rendered with the model's own template, as the server renders them, so raw
    llama-cpp-python is given exactly the prompt the server decodes."""
    meta = read_metadata(model)
    template = choose_template(meta.arch, meta.fields.get("tokenizer.chat_template"), model.name)
    bos = meta.token_text("tokenizer.ggml.bos_token_id")
    eos = meta.token_text("tokenizer.ggml.eos_token_id")
    return lambda messages: render_chat(template, messages, bos_token=bos, eos_token=eos)


def raw_llama(model: Path, context: int, threads: int) -> tuple[llama_cpp.Llama, int]:
    """The baseline: llama-cpp-python on the same file and threads (0: every core allowed),
    with flash attention as the server loads models by default."""
    threads = threads or len(os.sched_getaffinity(0))
    llm = llama_cpp.Llama(
        str(model), n_ctx=context, n_threads=threads, n_threads_batch=threads, flash_attn=True, verbose=False
    )
    return llm, threads


def eog_bias(llm: llama_cpp.Llama) -> dict[int, float]:
    """Ban every end-of-generation token, so each run makes exactly the tokens asked for."""
    vocab = llm._model.vocab
    return {t: -100.0 for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)}
