"""Render a model's own Jinja chat template, or a fallback chosen by architecture.

Templates come from model files, i.e. from strangers: they run in Jinja's immutable sandbox
so a template can neither touch Python objects nor mutate the messages it is given.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..api.errors import APIError

_GEMMA = (
    "{{ bos_token }}"
    "{% set sys = namespace(text='') %}"
    "{% for m in messages if m['role'] in ['system', 'developer'] %}"
    "{% set sys.text = sys.text + m['content'] + '\n\n' %}"
    "{% endfor %}"
    "{% set turn = namespace(first=true) %}"
    "{% for m in messages if m['role'] not in ['system', 'developer'] %}"
    "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{{ (sys.text if turn.first else '') + m['content'] | trim }}<end_of_turn>\n"
    "{% set turn.first = false %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

_CHATML = (
    "{% for m in messages %}"
    "<|im_start|>{{ 'system' if m['role'] == 'developer' else m['role'] }}\n"
    "{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

FALLBACK_TEMPLATES = {"gemma": _GEMMA, "chatml": _CHATML}

# Architectures whose instruction format is unambiguous; plain "llama" is not (Llama 2,
# Llama 3, Mistral and many fine-tunes share it), so it gets an error instead of a guess.
_FALLBACK_BY_ARCH = {
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3": "gemma",
    "gemma3n": "gemma",
    "qwen2": "chatml",
    "qwen2moe": "chatml",
    "qwen3": "chatml",
    "qwen3moe": "chatml",
}


def choose_template(arch: str, embedded: str | None, model: str) -> str:
    if embedded:
        return embedded
    name = _FALLBACK_BY_ARCH.get(arch)
    if name is None:
        raise APIError(
            f"Model '{model}' has no chat template in its file and no fallback is known for "
            f"architecture '{arch}'. Use /v1/completions with your own prompt format.",
            param="model",
            code="no_chat_template",
        )
    return FALLBACK_TEMPLATES[name]


def render_chat(
    template: str,
    messages: list[dict[str, Any]],
    *,
    bos_token: str,
    eos_token: str,
    tools: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = True,
    reasoning_effort: str | None = None,
) -> str:
    try:
        return _compile(template).render(
            messages=messages,
            tools=tools or None,
            bos_token=bos_token,
            eos_token=eos_token,
            add_generation_prompt=add_generation_prompt,
            # gpt-oss reads reasoning_effort; Qwen 3 style templates read enable_thinking.
            reasoning_effort=reasoning_effort,
        )
    except APIError:
        raise
    except TemplateError as exc:
        raise APIError(
            f"The model's chat template rejected these messages: {exc}",
            param="messages",
            code="chat_template_error",
        ) from None


def _raise_exception(message: str) -> None:
    raise APIError(
        f"The model's chat template rejected these messages: {message}",
        param="messages",
        code="chat_template_error",
    )


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=32)
def _compile(template: str) -> Any:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(template)
    except TemplateError as exc:
        raise APIError(
            f"The model's chat template does not compile: {exc}", param="model", code="chat_template_error"
        ) from None
