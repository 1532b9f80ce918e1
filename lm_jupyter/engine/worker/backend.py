"""What the worker's main loop drives: one loaded model behind the ``Backend`` protocol.

A backend lives in one worker process and is touched by two of its threads: the preparation
thread calls ``prepare``, ``tokens`` and ``detokenize`` (the model's tokenizer only, never its
running state); the inference thread calls everything else. Adding an engine means a package
next to ``llama/`` with an ``open_backend(command)`` and an entry in ``BACKENDS``; the server
picks it by the ``format`` of the ``load`` command (engine/protocol.py) and never imports it.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from typing import Any, Protocol

from ..protocol import Emit, GenerateParams

# A model format -> the worker package whose ``open_backend`` loads it (imported only when used,
# so a GGUF worker never pays for importing MLX and the other way round).
BACKENDS = {"gguf": "llama.backend", "mlx": "mlx.backend"}


class Cancelled(Exception):
    """The client went away while its request was being prepared."""


class RequestError(ValueError):
    """A problem with the request that only the model can see; reported as a 400 naming ``param``."""

    def __init__(self, message: str, *, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.param = param


class Prepared(Protocol):
    """A request made ready on the preparation thread, waiting for the inference thread."""

    def discard(self) -> None:
        """Free what preparing it allocated (it was cancelled before it started)."""


class Backend(Protocol):
    embedding: bool  # an embedding model: ``embed`` only

    @property
    def busy(self) -> bool:
        """Requests are running: the main loop keeps calling ``step`` between commands."""

    def info(self) -> dict[str, Any]:
        """``context_length``, ``n_vocab`` and ``gpu_offload_supported`` for the ``loaded`` event."""

    def warm_up(self) -> int:
        """Run once so the memory measured next is what the model holds; returns weight bytes."""

    def max_token_bytes(self) -> int:
        """The longest token in bytes (the server's cheap upper bound on prompt tokens)."""

    def prepare(self, params: GenerateParams, cancelled: Callable[[], bool]) -> Prepared:
        """Tokenize and check a request off the inference thread; ``RequestError`` is a 400."""

    def submit(self, rid: str, prepared: Prepared, emit: Emit, cancelled: Callable[[], bool]) -> None:
        """Start a prepared request: ``started`` now, ``text`` events and ``done`` from ``step``."""

    def step(self) -> None:
        """Advance every running request by one decode step (and notice cancellations)."""

    def embed(self, texts: list[str]) -> dict[str, Any]:
        """``{"vectors", "prompt_tokens"}``."""

    def rank(self, query: str, documents: list[str]) -> dict[str, Any]:
        """``{"scores", "prompt_tokens"}``."""

    def tokens(
        self,
        text: str,
        *,
        parts: list[tuple[str, bool]] | None,
        add_special: bool,
        parse_special: bool,
        with_pieces: bool,
    ) -> dict[str, Any]:
        """``/tokenize``: ``{"tokens"}`` (and ``"pieces"``)."""

    def detokenize(self, tokens: list[int]) -> str: ...


def done_event(reason: str, request: Any, stop_string: str | None) -> dict[str, Any]:
    """A request's ``done``: LM Studio's stop reason and the counts and timings usage and stats
    report. ``request`` has ``tokens``, ``cached``, ``generated``, ``started`` and
    ``first_token_at`` (each backend's running request)."""
    finished = time.perf_counter()
    done = {
        "ev": "done",
        "stop_reason": reason,
        "prompt_tokens": len(request.tokens),
        "cached_tokens": request.cached,
        "completion_tokens": request.generated,
        "time_to_first_token": (request.first_token_at or finished) - request.started,
        "generation_time": finished - request.started,
    }
    if stop_string is not None:
        done["stop_string"] = stop_string
    return done


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens two sequences share: what a backend's prefix cache can reuse."""
    n = 0
    for mine, theirs in zip(a, b, strict=False):
        if mine != theirs:
            break
        n += 1
    return n


Progress = Callable[[float], None]  # the load's progress, 0..1, where the engine reports it


Opener = Callable[[dict[str, Any], Progress], tuple[Backend, dict[str, int]]]


def backend_opener(model_format: str) -> Opener:
    """The ``open_backend`` for a model format: it loads the model a ``load`` command names
    (reporting progress where the engine tells it) and also returns the engine's own account
    of the buffers it allocated (empty if it keeps none). Importing the engine happens here,
    before the worker measures its memory, so the libraries' own code is not counted as the
    model's."""
    return importlib.import_module(f".{BACKENDS[model_format]}", __package__).open_backend
