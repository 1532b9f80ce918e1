"""The llama.cpp backend (llama-cpp-python), driven from one thread of one worker process."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import llama_cpp
from llama_cpp import _internals
from llama_cpp.llama_grammar import SchemaConverter, json_schema_to_gbnf

from ...protocol import DraftSpec, Emit, GenerateParams
from ..backend import Cancelled, Progress, RequestError
from ..overflow import fit_request, keep_count
from .grammar_mask import GrammarState
from .log import BufferSizes
from .logprobs import token_piece
from .sampling import Sampler, make_context, make_sampler
from .scheduler import Scheduler
from .speculative import DraftModel, PromptLookup, Speculation, VocabMismatch, check_compatible

# Drafted tokens verified per step when the request does not say (``num_draft_tokens``).
LOOKUP_DRAFT_TOKENS = 8
MODEL_DRAFT_TOKENS = 4
DRAFT_MIN_PROBABILITY = 0.5


# llama.cpp's SentencePiece tokenizer takes time quadratic in the length of one call's text
# (Gemma 3: 30k characters 0.2 s, 300k characters 6 s), so long text is tokenized in pieces.
TOKENIZE_CHUNK = 8192


def line_chunks(text: str, size: int) -> list[str]:
    """``text`` cut into pieces of about ``size`` characters, each cut just after a newline
    that is followed by a non-space character: no token of the tokenizers we run (Gemma's
    SentencePiece, byte-level BPE whose pre-tokenizer splits there) spans such a place, so the
    pieces tokenize as the whole does. Text without such a place stays whole."""
    chunks: list[str] = []
    start = 0
    while len(text) - start > size:
        cut = start + size
        while cut < len(text) and not (text[cut - 1] == "\n" and not text[cut].isspace()):
            cut += 1
        if cut >= len(text):
            break
        chunks.append(text[start:cut])
        start = cut
    chunks.append(text[start:])
    return [chunk for chunk in chunks if chunk]


@dataclass
class Prepared:
    """A generate request made ready off the inference thread: its tokens and sampler."""

    params: GenerateParams
    tokens: list[int]
    keep: int
    sampler: Sampler
    added_bos: bool = False  # BOS is not the prompt's text (echo leaves it out)
    mask: GrammarState | None = None  # constrained_logprobs: a grammar that only masks alternatives

    def discard(self) -> None:
        self.sampler.free()
        if self.mask is not None:
            self.mask.free()


def _tool_call_gbnf(forced: dict[str, Any]) -> str:
    """One grammar for "call one of these tools" (or several, one after another)."""
    converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    calls = []
    for index, alternative in enumerate(forced["alternatives"]):
        args = converter.visit(
            converter.resolve_refs(alternative["schema"], f"tool{index}"), f"tool{index}-args"
        )
        literal = [json.dumps(alternative[k], ensure_ascii=False) for k in ("prefix", "suffix")]
        calls.append(f"{literal[0]} {args} {literal[1]}")
    converter._add_rule("call", " | ".join(f"( {call} )" for call in calls))
    converter._add_rule("root", 'call ("\n" call)*' if forced["repeat"] else "call")
    return converter.format_grammar()


def _grammar(params: GenerateParams, vocab: Any) -> str | None:
    """Compile the request's output constraint: a JSON schema or a raw GBNF grammar."""
    forced = params.get("tool_calls")
    if forced is not None:
        try:
            gbnf = _tool_call_gbnf(forced)
        except Exception as exc:  # as below: the converter's own failures are the schema's fault
            raise RequestError(
                f"The tools' parameter schemas cannot be enforced: {type(exc).__name__} {exc}",
                code="unsupported_schema",
                param="tools",
            ) from None
        return _compile(gbnf.replace(_LOOSE_JSON_CHAR, _STRICT_JSON_CHAR), "tool_choice", vocab)
    schema = params.get("json_schema")
    if schema is not None:
        try:
            gbnf = json_schema_to_gbnf(json.dumps(schema))
        except Exception as exc:  # the converter raises assorted types for unsupported features
            raise RequestError(
                f"This JSON schema cannot be enforced: {exc}",
                code="unsupported_schema",
                param="response_format",
            ) from None
        # llama-cpp-python's converter lets raw control characters into strings, which JSON
        # forbids (llama.cpp's own converter excludes them); tighten its string character class.
        gbnf = gbnf.replace(_LOOSE_JSON_CHAR, _STRICT_JSON_CHAR)
        return _compile(gbnf, "response_format", vocab)
    if params.get("grammar"):
        return _compile(params["grammar"], "grammar", vocab)
    return None


def _constraint_param(params: GenerateParams) -> str:
    if params.get("tool_calls") is not None:
        return "tool_choice"
    return "response_format" if params.get("json_schema") is not None else "grammar"


_LOOSE_JSON_CHAR = 'char ::= [^"\\\\] |'
_STRICT_JSON_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'


def _compile(gbnf: str, param: str, vocab: Any) -> str:
    """Parse the grammar once here, where a failure is a 400: in the sampler chain a grammar
    llama.cpp rejects becomes a NULL sampler that would crash the worker."""
    probe = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
    if not probe:
        raise RequestError(
            f"The {param} does not parse as a GBNF grammar with a 'root' rule "
            "(the worker's log has llama.cpp's parse error).",
            code="invalid_grammar",
            param=param,
        )
    llama_cpp.llama_sampler_free(probe)
    return gbnf


def open_backend(command: dict[str, Any], progress: Progress) -> tuple[LlamaBackend, dict[str, int]]:
    """The worker's ``load``, with llama.cpp's own account of the buffers it allocated."""
    with BufferSizes() as buffers:
        backend = LlamaBackend(
            command["path"],
            context_length=command["context_length"],
            embedding=command["embedding"],
            threads=command.get("threads", 0),
            gpu_layers=command.get("gpu_layers", 0),
            flash_attention=command["flash_attention"],
            parallel=command.get("parallel", 1),
            progress=progress,
        )
    return backend, buffers.sizes


def _load_model(path: str, gpu_layers: int, progress: Progress = lambda _fraction: None) -> Any:
    """llama.cpp calls back with the share of the weights read so far (from this thread)."""
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = gpu_layers

    def report(fraction: float, _user_data: Any) -> bool:
        progress(fraction)
        return True  # go on loading

    callback = llama_cpp.llama_progress_callback(report)  # kept alive until the load returns
    params.progress_callback = callback
    return _internals.LlamaModel(path_model=path, params=params, verbose=False)


class LlamaBackend:
    """An LLM runs through the continuous-batching scheduler on a context of its own (one
    sequence per parallel slot); an embedding model through llama-cpp-python's ``embed``."""

    def __init__(
        self,
        path: str,
        *,
        context_length: int,
        embedding: bool,
        flash_attention: bool,  # the load command's: the default lives in engine.instance.LoadOptions
        threads: int = 0,
        gpu_layers: int = 0,
        parallel: int = 4,
        progress: Progress = lambda _fraction: None,
    ) -> None:
        threads = threads or len(os.sched_getaffinity(0))
        self.embedding = embedding
        if embedding:
            self.llama = llama_cpp.Llama(
                model_path=path,
                n_ctx=context_length,
                n_batch=context_length,
                n_ubatch=context_length,
                n_threads=threads,
                n_threads_batch=threads,
                n_gpu_layers=gpu_layers,
                embedding=True,
                flash_attn=flash_attention,
                verbose=False,
            )
            self.model = self.llama._model
            self.n_ctx = self.llama.n_ctx()
        else:
            self.model = _load_model(path, gpu_layers, progress)
            n_batch = min(512, context_length)
            # Draft models get a context like the target's (same slots, same length).
            self._context_options = {
                "context_length": context_length,
                "parallel": parallel,
                "n_batch": n_batch,
                "threads": threads,
                "flash_attention": flash_attention,
            }
            self._gpu_layers = gpu_layers
            self.context = make_context(self.model, **self._context_options)
            self.scheduler = Scheduler(self.model, self.context.ctx, parallel=parallel, n_batch=n_batch)
            self.n_ctx = self.scheduler.n_ctx
            self._drafts: dict[str, tuple[DraftModel, Any] | RequestError] = {}
        self._vocab = self.model.vocab
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self._bos = self.model.token_bos()

    def info(self) -> dict[str, Any]:
        return {
            "context_length": self.n_ctx,
            "n_vocab": self.model.n_vocab(),
            "gpu_offload_supported": bool(llama_cpp.llama_supports_gpu_offload()),
        }

    def warm_up(self) -> int:
        """Run one short decode and forget it, so the weights are paged in and the buffers a
        first request touches are resident: memory measured after this is what the model
        really holds (the estimate is checked against it). Returns llama.cpp's weight bytes."""
        if self.embedding:
            self.llama.embed("warm up")
        else:
            self.scheduler.warm_up(self.tokenize("Hello"))
        return int(llama_cpp.llama_model_size(self.model.model))

    def tokenize(self, text: str) -> list[int]:
        """Tokenize with special tokens parsed, adding BOS only if the text lacks it."""
        return self.tokenize_parts([(text, True)], lambda: False)

    def tokenize_parts(self, parts: list[tuple[str, bool]], cancelled: Callable[[], bool]) -> list[int]:
        """Tokenize a prompt given as (text, parse special tokens?) parts, adding BOS only if
        it lacks it. Chat prompts parse special tokens only in the template's own markup, so
        ``<end_of_turn>`` typed by a user stays text (chat/segments.py)."""
        return self._with_bos(self._parts_tokens(parts, cancelled))[0]

    def _parts_tokens(self, parts: list[tuple[str, bool]], cancelled: Callable[[], bool]) -> list[int]:
        tokens: list[int] = []
        for text, special in parts:
            for chunk in line_chunks(text, TOKENIZE_CHUNK):
                if cancelled():
                    raise Cancelled
                tokens += self.model.tokenize(chunk.encode(), add_bos=False, special=special)
        return tokens

    def tokens(
        self,
        text: str,
        *,
        parts: list[tuple[str, bool]] | None,
        add_special: bool,
        parse_special: bool,
        with_pieces: bool,
    ) -> dict[str, Any]:
        """``/tokenize`` with llama-server's options; or, given a chat prompt's ``parts``, exactly
        as a generation tokenizes its prompt, so a count is what the model is fed."""
        if parts is not None:
            tokens = self.tokenize_parts([(piece, bool(special)) for piece, special in parts], lambda: False)
        else:
            tokens = self.model.tokenize(text.encode(), add_bos=add_special, special=parse_special)
        result: dict[str, Any] = {"tokens": tokens}
        if with_pieces:
            result["pieces"] = [_piece_json(token_piece(self._vocab, t, special=True)) for t in tokens]
        return result

    def detokenize(self, tokens: list[int]) -> str:
        """``/detokenize``: the pieces joined, control tokens as their text (as llama-server)."""
        data = b"".join(token_piece(self._vocab, token, special=True) for token in tokens)
        return data.decode("utf-8", errors="replace")

    def _with_bos(self, tokens: list[int]) -> tuple[list[int], bool]:
        """BOS first unless the text starts with it; True when it was added (so it is not the
        prompt's text: echo leaves it out)."""
        if self._add_bos and self._bos >= 0 and (not tokens or tokens[0] != self._bos):
            return [self._bos, *tokens], True
        return tokens, False

    def max_token_bytes(self) -> int:
        """The longest token text in bytes: a text of N characters is at least N / this
        many tokens, which lets the server refuse a prompt without tokenizing it."""
        vocab = self._vocab
        return max(
            len(llama_cpp.llama_vocab_get_text(vocab, token) or b"")
            for token in range(llama_cpp.llama_vocab_n_tokens(vocab))
        )

    @property
    def busy(self) -> bool:
        return not self.embedding and self.scheduler.busy

    def prepare(self, params: GenerateParams, cancelled: Callable[[], bool]) -> Prepared:
        """Tokenize, check the limits and compile the output constraint: the costly part of a
        request, run on the worker's preparation thread so the inference thread (and every
        request it is generating) never waits for it. Touches the model, never the context.
        Errors here are the client's and reach it as a 400."""
        parts = params.get("prompt_parts") or [(params["prompt"], True)]
        raw = params.get("prompt_tokens") or self._parts_tokens(
            [(text, bool(special)) for text, special in parts], cancelled
        )
        tokens, added_bos = self._with_bos(raw)
        policy = params.get("context_overflow_policy") or "stopAtLimit"
        bos = self._bos if self._add_bos else None
        tokens = fit_request(tokens, params, self.n_ctx, bos)
        if cancelled():
            raise Cancelled
        started = time.perf_counter()
        grammar = _grammar(params, self._vocab)
        elapsed = time.perf_counter() - started
        timeout = params.get("grammar_timeout")
        if grammar is not None and timeout is not None and elapsed > timeout:
            raise RequestError(
                f"The output constraint took {elapsed:.1f}s to compile, more than this server "
                f"allows ({timeout:g}s, ModelManager.grammar_timeout). Simplify the schema or grammar.",
                code="grammar_too_complex",
                param=_constraint_param(params),
            )
        sampler = make_sampler(self.model, params, grammar)
        # A second copy of the grammar that only says which tokens it allows at each step.
        mask = GrammarState(self._vocab, grammar) if grammar and params.get("constrained_logprobs") else None
        keep = keep_count(policy, tokens, self.n_ctx, bos)
        return Prepared(params, tokens, keep, sampler, added_bos, mask)

    def submit(self, rid: str, prepared: Prepared, emit: Emit, cancelled: Callable[[], bool]) -> None:
        """Start a prepared request in the running batch (on the inference thread)."""
        try:
            speculation = self._speculation(prepared.params, prepared.tokens)
        except Exception:
            prepared.discard()
            raise
        emit({"ev": "started", "prompt_tokens": len(prepared.tokens)})
        self.scheduler.submit(
            rid,
            prepared.tokens,
            prepared.params,
            prepared.sampler,
            emit,
            cancelled,
            keep=prepared.keep,
            speculation=speculation,
            added_bos=prepared.added_bos,
            mask=prepared.mask,
        )

    def _speculation(self, params: GenerateParams, tokens: list[int]) -> Speculation | None:
        draft = params.get("draft_model")
        n_draft = params.get("num_draft_tokens")
        if draft is not None:
            model = self._draft_model(draft)
            probability = params.get("draft_min_probability")
            return Speculation(
                n_draft or MODEL_DRAFT_TOKENS,
                model=model,
                model_key=draft["key"],
                min_probability=DRAFT_MIN_PROBABILITY if probability is None else probability,
            )
        if params.get("prompt_lookup"):
            return Speculation(n_draft or LOOKUP_DRAFT_TOKENS, lookup=PromptLookup(tokens))
        return None

    def _draft_model(self, draft: DraftSpec) -> DraftModel:
        """The draft model, loaded into this worker the first time a request names it."""
        loaded = self._drafts.get(draft["path"])
        if loaded is None:
            loaded = self._drafts[draft["path"]] = self._load_draft(draft)
        if isinstance(loaded, RequestError):
            raise loaded
        return loaded[0]

    def _load_draft(self, draft: DraftSpec) -> tuple[DraftModel, Any] | RequestError:
        model = _load_model(draft["path"], self._gpu_layers)
        try:
            check_compatible(self.model, model)
        except VocabMismatch as exc:
            model.close()
            return RequestError(
                f"The draft model '{draft['key']}' cannot draft for '{draft['target']}': {exc}. "
                "A draft model must have the same vocabulary as the model it drafts for "
                "(a smaller model of the same family).",
                code="draft_model_incompatible",
                param="draft_model",
            )
        options = self._context_options
        context = make_context(model, **options)
        drafter = DraftModel(model, context.ctx, parallel=options["parallel"], n_batch=options["n_batch"])
        return drafter, context

    def step(self) -> None:
        self.scheduler.step()

    def rank(self, query: str, documents: list[str]) -> dict[str, Any]:
        from .rank import rank

        return rank(self.llama, query, documents)

    def embed(self, texts: list[str]) -> dict[str, Any]:
        counts = [len(self.model.tokenize(text.encode(), add_bos=True, special=False)) for text in texts]
        n_ctx = self.n_ctx
        for index, count in enumerate(counts):
            if count > n_ctx:
                raise RequestError(
                    f"Input {index} is {count} tokens long, but the model is loaded with a context "
                    f"length of {n_ctx} tokens.",
                    code="context_length_exceeded",
                )
        vectors = self.llama.embed(texts, normalize=True, truncate=False)
        return {"vectors": [list(map(float, v)) for v in vectors], "prompt_tokens": sum(counts)}


def _piece_json(piece: bytes) -> str | list[int]:
    """llama-server's ``with_pieces``: the text when it is valid UTF-8, else the byte values."""
    try:
        return piece.decode("utf-8")
    except UnicodeDecodeError:
        return list(piece)
