"""Preparing a prediction: from a request to what the worker generates and how its output is read.

The manager decides *where* a request runs (which instance, when it loads, whether the
queue has room); this module decides *what* runs there: the chat prompt in the model's own
template, the forced tool call, where reasoning goes, and the worker's typed
:class:`~lm_jupyter.engine.protocol.GenerateParams`. It does no I/O, so what a request
becomes can be read and tested on its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..api.errors import APIError
from ..api.requests import ChatCompletionRequest, CompletionRequest, NamedToolChoice, SamplingRequest
from ..chat.constraints import check_schema, forced_calls
from ..chat.families import Family
from ..chat.fim import render_fim
from ..chat.output import AssistantMessage, OutputParser
from ..chat.prompt import prepare_chat
from ..chat.segments import Part
from ..chat.template import choose_template
from ..chat.toolnames import normalize_tool_name
from .instance import LoadOptions
from .limits import Limits
from .protocol import DraftSpec, GenerateParams
from .registry import LocalModel


@dataclass
class ChatPrediction:
    prompt: str
    parser: OutputParser  # reads reasoning and tool calls out of the generated text
    message: AssistantMessage  # folds the parser's events into deltas and the final message
    tool_calls: dict[str, Any] | None  # the forced-call constraint (tool_choice required or named)
    parts: list[Part]  # the prompt as markup (special tokens) and content (plain text)


def chat_prediction(
    model: LocalModel, request: ChatCompletionRequest, reasoning_format: str
) -> ChatPrediction:
    """A chat request for ``model``: its family is detected once, from the template rendered."""
    template = choose_template(model.facts.arch, model.chat_template, model.facts.key)
    tool_choice = request.tool_choice if isinstance(request.tool_choice, str) else None
    prepared = prepare_chat(
        template,
        [message.for_template() for message in request.messages],
        [tool.model_dump(exclude_none=True) for tool in request.tools or []],
        tool_choice=tool_choice,
        bos_token=model.bos_token,
        eos_token=model.eos_token,
        reasoning_effort=request.reasoning_effort,
        continue_final=request.continue_final_message,
    )
    field = reasoning_field(request.reasoning_format or reasoning_format, prepared.family)
    parser = OutputParser(
        prepared.family, template, tool_names=prepared.tool_names, split_reasoning=field is not None
    )
    forced = None
    if request.tools and (tool_choice == "required" or isinstance(request.tool_choice, NamedToolChoice)):
        choice = request.tool_choice
        named = choice.function.name if isinstance(choice, NamedToolChoice) else None
        model_tools = [
            {"function": {**t.function.model_dump(), "name": normalize_tool_name(t.function.name)}}
            for t in request.tools
        ]
        forced = forced_calls(
            prepared.family,
            model_tools,
            normalize_tool_name(named) if named else None,
            several=request.parallel_tool_calls and named is None,
        )
    message = AssistantMessage(field, prepared.names)
    return ChatPrediction(prepared.prompt, parser, message, forced, prepared.parts)


def completion_prompt(model: LocalModel, request: CompletionRequest) -> tuple[str, list[Part] | None]:
    """A completion's prompt: as sent, or with a ``suffix`` the fill-in-the-middle prompt in the
    model's own FIM tokens, and its parts (a model without them gets a 400 naming ``suffix``)."""
    if request.suffix is None:
        return request.prompt_text(), None
    if request.prompt_tokens() is not None:
        raise APIError("'suffix' needs a text prompt, not token ids.", param="prompt", code="invalid_value")
    if model.fim is None:
        raise APIError(
            f"'{request.model}' cannot fill in the middle: its GGUF metadata names no FIM tokens "
            "(tokenizer.ggml.fim_pre/fim_suf/fim_mid_token_id) and its vocabulary has none of the "
            "known ones, so 'suffix' cannot be used with it. Leave 'suffix' out, or use a code model "
            "trained for infilling such as Qwen2.5-Coder, CodeLlama, StarCoder or DeepSeek-Coder.",
            param="suffix",
            code="fim_not_supported",
        )
    parts = render_fim(model.fim, request.prompt_text(), request.suffix, request.input_extra)
    return "".join(text for text, _ in parts), parts


def reasoning_field(choice: str, family: Family) -> str | None:
    """Where reasoning goes (the request's ``reasoning_format``, else the server's setting);
    ``auto`` is the family's field (gpt-oss uses ``reasoning``, as LM Studio does for it)."""
    if choice == "auto":
        choice = family.reasoning_field
    return None if choice == "none" else choice


def generate_params(
    request: SamplingRequest,
    prompt: str,
    *,
    tool_calls: dict[str, Any] | None = None,
    draft_model: DraftSpec | None = None,
    parts: list[Part] | None = None,
    limits: Limits | None = None,
    load: LoadOptions | None = None,
) -> GenerateParams:
    """The worker's parameters for one generation of ``prompt`` (given as ``parts`` for a chat
    or a fill-in-the-middle completion); ``load``: the instance's load options, whose speculative
    decoding settings apply where the request sets none."""
    return GenerateParams(
        prompt=prompt,
        prompt_parts=parts or [(prompt, True)],
        max_prompt_tokens=limits.max_prompt_tokens if limits else None,
        grammar_timeout=limits.grammar_timeout if limits else None,
        max_tokens=request.token_limit(),
        temperature=request.temperature,
        top_k=request.top_k,
        top_p=request.top_p,
        min_p=request.min_p,
        repeat_penalty=request.repeat_penalty,
        presence_penalty=request.presence_penalty,
        frequency_penalty=request.frequency_penalty,
        seed=request.seed,
        stop=request.stop_list(),
        logit_bias=request.logit_bias,
        json_schema=_checked_schema(request),
        grammar=request.grammar,
        tool_calls=tool_calls,
        context_overflow_policy=request.context_overflow_policy,
        prompt_lookup=request.prompt_lookup,
        num_draft_tokens=request.num_draft_tokens or (load.num_draft_tokens if load else None),
        draft_min_probability=_first(
            request.draft_min_probability, load.draft_min_probability if load else None
        ),
        draft_model=draft_model,
        logprobs=request.top_logprobs_count(),
        echo=isinstance(request, CompletionRequest) and request.echo,
        prompt_tokens=request.prompt_tokens() if isinstance(request, CompletionRequest) else None,
        constrained_logprobs=request.constrained_logprobs,
        progress=request.return_progress,
    )


def _first(*values: float | None) -> float | None:
    return next((value for value in values if value is not None), None)


def check_llm_request(request: SamplingRequest, model_type: str, n_vocab: int) -> None:
    """A generation needs an LLM, and a bias for a token the model does not have is a 400, not
    a worker crash."""
    if model_type != "llm":
        route = "/v1/rerank" if model_type == "reranker" else "/v1/embeddings"
        raise APIError(
            f"'{request.model}' is a {model_type} model, not an LLM; use {route} with it.",
            param="model",
            code="model_not_llm",
        )
    tokens = request.prompt_tokens() if isinstance(request, CompletionRequest) else None
    if tokens and max(tokens) >= n_vocab:
        raise APIError(
            f"Invalid 'prompt': token id {max(tokens)} is outside the vocabulary of '{request.model}' "
            f"({n_vocab} tokens).",
            param="prompt",
            code="invalid_value",
        )
    for token_id in request.logit_bias or {}:
        if int(token_id) >= n_vocab:
            raise APIError(
                f"Invalid 'logit_bias': token id {token_id} is outside the vocabulary of "
                f"'{request.model}' ({n_vocab} tokens).",
                param="logit_bias",
                code="invalid_value",
            )


async def draft_spec(
    find: Callable[[str], Awaitable[LocalModel]], name: str | None, target: LocalModel
) -> DraftSpec | None:
    """The draft model a request (or its instance's load options) names, found on disk."""
    if name is None:
        return None
    try:
        model = await find(name)
    except APIError:
        raise APIError(
            f"Draft model '{name}' is not downloaded. Run `lmj ls` to see the models you have.",
            status=404,
            param="draft_model",
            code="model_not_found",
        ) from None
    if model.facts.type != "llm":
        raise APIError(
            f"Draft model '{name}' is an embedding model; a draft model must be an LLM.",
            param="draft_model",
            code="model_not_llm",
        )
    return {"key": model.facts.key, "path": str(model.file), "target": target.facts.key}


def check_embedding_model(name: str, model_type: str) -> None:
    if model_type != "embeddings":
        raise APIError(
            f"'{name}' is not an embedding model; /v1/embeddings needs one (type 'embeddings' in `lmj ls`).",
            param="model",
            code="model_not_embedding",
        )


def _checked_schema(request: SamplingRequest) -> dict[str, Any] | None:
    schema = request.response_format.schema() if request.response_format else None
    if schema is not None:
        check_schema(schema)
    return schema
