"""The llama.cpp backend (llama-cpp-python), driven from one thread of one worker process."""

from __future__ import annotations

import codecs
import json
import os
import random
import time
from collections.abc import Callable
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp.llama_grammar import SchemaConverter, json_schema_to_gbnf

from ...chat.stops import StopMatcher
from ..protocol import Emit, GenerateParams

# LM Studio's default sampling settings for llama.cpp models.
DEFAULTS = {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.1}


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


def _grammar(params: GenerateParams, vocab: Any) -> llama_cpp.LlamaGrammar | None:
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


def _compile(gbnf: str, param: str, vocab: Any) -> llama_cpp.LlamaGrammar:
    """Parse the grammar once here: llama-cpp-python defers parsing to the sampler chain, and a
    grammar llama.cpp rejects there becomes a NULL sampler that crashes the worker."""
    probe = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
    if not probe:
        raise RequestError(
            f"The {param} does not parse as a GBNF grammar with a 'root' rule "
            "(the worker's log has llama.cpp's parse error).",
            code="invalid_grammar",
            param=param,
        )
    llama_cpp.llama_sampler_free(probe)
    return llama_cpp.LlamaGrammar.from_string(gbnf, verbose=False)


class LlamaBackend:
    def __init__(
        self,
        path: str,
        *,
        context_length: int,
        embedding: bool,
        threads: int = 0,
        gpu_layers: int = 0,
        flash_attention: bool = False,
    ) -> None:
        threads = threads or len(os.sched_getaffinity(0))
        self.embedding = embedding
        self.llama = llama_cpp.Llama(
            model_path=path,
            n_ctx=context_length,
            n_batch=context_length if embedding else min(512, context_length),
            n_ubatch=context_length if embedding else min(512, context_length),
            n_threads=threads,
            n_threads_batch=threads,
            n_gpu_layers=gpu_layers,
            embedding=embedding,
            flash_attn=flash_attention,
            verbose=False,
        )
        self._vocab = self.llama._model.vocab
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self._bos = self.llama.token_bos()

    def info(self) -> dict[str, Any]:
        return {
            "context_length": self.llama.n_ctx(),
            "n_vocab": self.llama.n_vocab(),
            "gpu_offload_supported": bool(llama_cpp.llama_supports_gpu_offload()),
        }

    def warm_up(self) -> int:
        """Run one short decode and forget it, so the weights are paged in and the buffers a
        first request touches are resident: memory measured after this is what the model
        really holds (the estimate is checked against it). Returns llama.cpp's weight bytes."""
        if self.embedding:
            self.llama.embed("warm up")
        else:
            self.llama.eval(self.tokenize("Hello"))
            self.llama.reset()
        return int(llama_cpp.llama_model_size(self.llama._model.model))

    def tokenize(self, text: str) -> list[int]:
        """Tokenize with special tokens parsed, adding BOS only if the text lacks it."""
        tokens = self.llama.tokenize(text.encode(), add_bos=False, special=True)
        if self._add_bos and self._bos >= 0 and (not tokens or tokens[0] != self._bos):
            tokens.insert(0, self._bos)
        return tokens

    def generate(self, params: GenerateParams, emit: Emit, cancelled: Callable[[], bool]) -> None:
        started = time.perf_counter()
        tokens = self.tokenize(params["prompt"])
        n_ctx = self.llama.n_ctx()
        if len(tokens) >= n_ctx:
            raise RequestError(
                f"The prompt is {len(tokens)} tokens long, but the model is loaded with a context "
                f"length of {n_ctx} tokens. Shorten the prompt or load the model with a larger "
                f"context (`lmj load MODEL --context-length N`).",
                code="context_length_exceeded",
            )
        grammar = _grammar(params, self._vocab)  # before "started": a bad grammar is still a 400
        emit({"ev": "started", "prompt_tokens": len(tokens)})
        cached = self._cached_prefix(tokens)
        limit = n_ctx - len(tokens)
        requested = params.get("max_tokens")
        budget = limit if requested is None else min(requested, limit)
        self.llama.set_seed(params["seed"] if params.get("seed") is not None else random.getrandbits(31))
        stops = StopMatcher(params.get("stop") or [])
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        bias = _bias_processor(params.get("logit_bias"))
        generated = 0
        first_token_at = 0.0
        stop_reason = "maxPredictedTokensReached" if budget < limit else "contextLengthReached"
        if budget > 0:
            stream = self.llama.generate(
                tokens,
                temp=_pick(params, "temperature"),
                top_k=_pick(params, "top_k"),
                top_p=_pick(params, "top_p"),
                min_p=_pick(params, "min_p"),
                repeat_penalty=_pick(params, "repeat_penalty"),
                presence_penalty=params.get("presence_penalty") or 0.0,
                frequency_penalty=params.get("frequency_penalty") or 0.0,
                logits_processor=bias,
                grammar=grammar,
            )
            for token in stream:
                if not first_token_at:
                    first_token_at = time.perf_counter()
                if llama_cpp.llama_vocab_is_eog(self._vocab, token):
                    stop_reason = "eosFound"
                    break
                generated += 1
                text = stops.feed(decoder.decode(self.llama.detokenize([token])))
                if text:
                    emit({"ev": "text", "text": text})
                if stops.stopped:
                    stop_reason = "stopStringFound"
                    break
                if cancelled():
                    stop_reason = "userStopped"
                    break
                if generated >= budget:
                    break
        tail = "" if stops.stopped else stops.feed(decoder.decode(b"", final=True)) + stops.flush()
        if tail:
            emit({"ev": "text", "text": tail})
        finished = time.perf_counter()
        emit(
            {
                "ev": "done",
                "stop_reason": stop_reason,
                "prompt_tokens": len(tokens),
                "cached_tokens": cached,
                "completion_tokens": generated,
                "time_to_first_token": (first_token_at or finished) - started,
                "generation_time": finished - started,
            }
        )

    def _cached_prefix(self, tokens: list[int]) -> int:
        """Prompt tokens the KV cache already holds from the previous request (llama-cpp-python
        keeps the longest common prefix and evaluates the rest; at least one token is always
        evaluated again to refresh the logits)."""
        held = self.llama._input_ids[: self.llama.n_tokens]
        common = 0
        for mine, theirs in zip(held, tokens, strict=False):
            if mine != theirs:
                break
            common += 1
        return min(common, len(tokens) - 1)

    def embed(self, texts: list[str]) -> dict[str, Any]:
        counts = [len(self.llama.tokenize(text.encode(), add_bos=True, special=False)) for text in texts]
        n_ctx = self.llama.n_ctx()
        for index, count in enumerate(counts):
            if count > n_ctx:
                raise RequestError(
                    f"Input {index} is {count} tokens long, but the model is loaded with a context "
                    f"length of {n_ctx} tokens.",
                    code="context_length_exceeded",
                )
        vectors = self.llama.embed(texts, normalize=True, truncate=False)
        return {"vectors": [list(map(float, v)) for v in vectors], "prompt_tokens": sum(counts)}


def _pick(params: GenerateParams, name: str) -> Any:
    value = params.get(name)
    return DEFAULTS[name] if value is None else value


def _bias_processor(logit_bias: dict[str, float] | None) -> llama_cpp.LogitsProcessorList | None:
    """Token ids were checked against the vocabulary by the manager before we got here."""
    if not logit_bias:
        return None
    ids = np.array([int(k) for k in logit_bias], dtype=np.intc)
    values = np.array(list(logit_bias.values()), dtype=np.single)

    def apply(_input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        scores[ids] += values
        return scores

    return llama_cpp.LogitsProcessorList([apply])
