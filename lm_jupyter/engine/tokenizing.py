"""Tokens without generating: prompt counts and llama-server's ``/tokenize`` and ``/detokenize``.

The worker tokenizes (``tokenize`` and ``detokenize`` commands, on its inference thread), so a
count uses the very tokenizer and prompt rendering a generation would.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..api.errors import APIError
from ..api.requests import ChatCompletionRequest
from .catalog import sole_llm
from .instance import Instance
from .prediction import chat_prediction

if TYPE_CHECKING:
    from .manager import ModelManager


async def count_chat_tokens(manager: ModelManager, request: ChatCompletionRequest) -> tuple[Instance, int]:
    """The tokens a generation of ``request`` would feed the model: its prompt rendered by the
    same ``chat_prediction`` and tokenized in the same parts (markup special, content plain), so
    the count equals that generation's ``prompt_tokens``."""
    manager.limits.check_request(request)
    instance = await manager.llm_for(request)
    prediction = await asyncio.to_thread(chat_prediction, instance.model, request, manager.reasoning_format)
    return instance, await instance.count_prompt(prediction.parts)


async def tokenize(manager: ModelManager, model: str | None, text: str, **options: bool) -> dict[str, Any]:
    """``/tokenize`` with llama-server's options (``add_special``, ``parse_special``, ``with_pieces``)."""
    instance = await _tokenizer(manager, model)
    return await instance.tokenize(text, **options)


async def detokenize(manager: ModelManager, model: str | None, tokens: list[int]) -> str:
    instance = await _tokenizer(manager, model)
    for index, token in enumerate(tokens):
        if not 0 <= token < instance.n_vocab:  # llama.cpp would abort on it
            raise APIError(
                f"Invalid 'tokens.{index}': token id {token} is outside the vocabulary of "
                f"'{instance.identifier}' (0 to {instance.n_vocab - 1}).",
                param=f"tokens.{index}",
                code="invalid_value",
            )
    return await instance.detokenize(tokens)


async def _tokenizer(manager: ModelManager, model: str | None) -> Instance:
    """The named model (loaded just in time), or without a name the one loaded LLM, as
    llama-server, which serves one model, needs no name."""
    return await manager.instance_for(model if model is not None else sole_llm(manager.instances.values()))
