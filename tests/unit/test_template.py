from __future__ import annotations

import pytest

from lm_jupyter.api.errors import APIError
from lm_jupyter.chat.template import FALLBACK_TEMPLATES, choose_template, render_chat

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Bye"},
]


def test_gemma_fallback_folds_system_into_first_user_turn() -> None:
    template = choose_template("gemma3", None, "google/gemma-3-270m")
    prompt = render_chat(template, MESSAGES, bos_token="<bos>", eos_token="<eos>")
    assert prompt == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
    )


def test_chatml_fallback() -> None:
    prompt = render_chat(FALLBACK_TEMPLATES["chatml"], MESSAGES[:2], bos_token="", eos_token="")
    assert (
        prompt
        == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_embedded_template_wins() -> None:
    assert choose_template("gemma3", "{{ messages[0]['content'] }}", "m") == "{{ messages[0]['content'] }}"


def test_ambiguous_arch_without_template_is_a_clear_error() -> None:
    with pytest.raises(APIError) as caught:
        choose_template("llama", None, "x/base")
    assert caught.value.code == "no_chat_template" and "/v1/completions" in caught.value.message


def test_template_features_used_by_real_models() -> None:
    template = (
        "{%- for m in messages %}{{ m.content | tojson }}{% if loop.last %}{% break %}{% endif %}{% endfor %}"
        "{{ strftime_now('%Y') | length }}{% if tools %}{{ tools | tojson(indent=2) }}{% endif %}"
    )
    out = render_chat(template, [{"role": "user", "content": "é"}], bos_token="", eos_token="", tools=None)
    assert out == '"é"4'


def test_raise_exception_becomes_a_400() -> None:
    with pytest.raises(APIError) as caught:
        render_chat("{{ raise_exception('roles must alternate') }}", MESSAGES, bos_token="", eos_token="")
    assert caught.value.status == 400 and "roles must alternate" in caught.value.message


def test_sandbox_blocks_python_internals() -> None:
    with pytest.raises(APIError):
        render_chat(
            "{{ messages.__class__.__mro__[1].__subclasses__() }}", MESSAGES, bos_token="", eos_token=""
        )
    with pytest.raises(APIError):  # immutable: templates cannot mutate the request
        render_chat("{{ messages.append(1) }}", MESSAGES, bos_token="", eos_token="")
