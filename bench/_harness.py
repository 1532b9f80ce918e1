"""What every benchmark needs: one model file served by a real headless lm_jupyter server."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import llama_cpp

from lm_jupyter.kernel.discovery import free_port, start_headless, stop_process

MODEL_KEY = "bench/model"


DRAFT_KEY = "bench/draft"


@contextlib.contextmanager
def serve_model(model: Path, config: Sequence[str] = (), draft: Path | None = None) -> Iterator[httpx.Client]:
    """A server whose models folder holds just ``model`` (hard-linked) as ``bench/model``
    (and ``draft``, a speculative-decoding draft model, as ``bench/draft``)."""
    with tempfile.TemporaryDirectory() as tmp:
        for source, name in ((model, "model"), (draft, "draft")):
            if source is not None:
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


def eog_bias(llm: llama_cpp.Llama) -> dict[int, float]:
    """Ban every end-of-generation token, so each run makes exactly the tokens asked for."""
    vocab = llm._model.vocab
    return {t: -100.0 for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)}
