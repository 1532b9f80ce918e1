"""The llama.cpp backend (llama-cpp-python), driven from one thread of one worker process."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import llama_cpp
from llama_cpp import _internals
from llama_cpp.llama_grammar import SchemaConverter, json_schema_to_gbnf

from ..overflow import fit_prompt, keep_count, shifts
from ..protocol import DraftSpec, Emit, GenerateParams
from ..scheduler import Scheduler, Speculation, make_context, make_sampler
from ..speculative import DraftModel, PromptLookup, VocabMismatch, check_compatible

# Drafted tokens verified per step when the request does not say (``num_draft_tokens``).
LOOKUP_DRAFT_TOKENS = 8
MODEL_DRAFT_TOKENS = 4
DRAFT_MIN_PROBABILITY = 0.5


class RequestError(ValueError):
    """A problem with the request that only the model can see; reported as a 400 naming ``param``."""

    def __init__(self, message: str, *, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.param = param


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
        gbnf = _tool_call_gbnf(forced).replace(_LOOSE_JSON_CHAR, _STRICT_JSON_CHAR)
        return _compile(gbnf, "tool_choice", vocab)
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


def _load_model(path: str, gpu_layers: int) -> Any:
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = gpu_layers
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
        threads: int = 0,
        gpu_layers: int = 0,
        flash_attention: bool = False,
        parallel: int = 4,
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
            self.model = _load_model(path, gpu_layers)
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
        tokens = self.model.tokenize(text.encode(), add_bos=False, special=True)
        if self._add_bos and self._bos >= 0 and (not tokens or tokens[0] != self._bos):
            tokens.insert(0, self._bos)
        return tokens

    @property
    def busy(self) -> bool:
        return not self.embedding and self.scheduler.busy

    def submit(self, rid: str, params: GenerateParams, emit: Emit, cancelled: Callable[[], bool]) -> None:
        """Check a request and queue it; errors here are the client's and reach it as a 400."""
        tokens = self.tokenize(params["prompt"])
        policy = params.get("context_overflow_policy") or "stopAtLimit"
        bos = self._bos if self._add_bos else None
        if len(tokens) >= self.n_ctx:
            if not shifts(policy):
                raise RequestError(
                    f"The prompt is {len(tokens)} tokens long, but the model is loaded with a context "
                    f"length of {self.n_ctx} tokens. Shorten the prompt, load the model with a larger "
                    "context (`lmj load MODEL --context-length N`), or let the server cut it with "
                    "'context_overflow_policy': 'truncateMiddle' or 'rollingWindow'.",
                    code="context_length_exceeded",
                )
            keep = keep_count(policy, tokens, self.n_ctx, bos)
            tokens = fit_prompt(tokens, self.n_ctx, keep, params.get("max_tokens"))
        speculation = self._speculation(params, tokens)
        sampler = make_sampler(self.model, params, _grammar(params, self._vocab))
        emit({"ev": "started", "prompt_tokens": len(tokens)})
        self.scheduler.submit(
            rid,
            tokens,
            params,
            sampler,
            emit,
            cancelled,
            keep=keep_count(policy, tokens, self.n_ctx, bos),
            speculation=speculation,
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
