"""Prompt building: the developer role on templates that do not know it."""

from __future__ import annotations

from typing import Any

import pytest

from lm_jupyter.chat.prompt import prepare_chat

# Qwen 2.5's rule: only the roles it knows are rendered, and without a system message first its
# default system prompt is used, so a developer message would vanish.
KNOWS_SYSTEM = (
    "{% if messages[0]['role'] != 'system' %}[system]You are Qwen.\n{% endif %}"
    "{% for m in messages %}{% if m['role'] in ['system', 'user', 'assistant'] %}"
    "[{{ m['role'] }}]{{ m['content'] }}\n{% endif %}{% endfor %}"
)
# gpt-oss style: the template renders developer messages itself.
KNOWS_DEVELOPER = (
    "{% for m in messages %}[{{ 'developer' if m['role'] == 'developer' else m['role'] }}]"
    "{{ m['content'] }}\n{% endfor %}"
)


def prompt(template: str, messages: list[dict[str, Any]]) -> str:
    return prepare_chat(template, messages, None, tool_choice=None, bos_token="", eos_token="").prompt


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (
            [{"role": "developer", "content": "Always reply BANANA."}, {"role": "user", "content": "Hi"}],
            "[system]Always reply BANANA.\n[user]Hi\n",
        ),
        (
            [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": "Always reply BANANA."},
                {"role": "user", "content": "Hi"},
            ],
            "[system]Be brief.\n\nAlways reply BANANA.\n[user]Hi\n",
        ),
        (
            [
                {"role": "developer", "content": "One."},
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "developer", "content": "Two."},
            ],
            "[system]Be brief.\n\nOne.\n\nTwo.\n[user]Hi\n",
        ),
        ([{"role": "user", "content": "Hi"}], "[system]You are Qwen.\n[user]Hi\n"),
    ],
)
def test_developer_messages_join_the_system_message(messages: list[dict[str, Any]], expected: str) -> None:
    assert prompt(KNOWS_SYSTEM, messages) == expected


def test_templates_that_know_the_developer_role_get_it() -> None:
    messages = [
        {"role": "system", "content": "S"},
        {"role": "developer", "content": "D"},
        {"role": "user", "content": "U"},
    ]
    assert prompt(KNOWS_DEVELOPER, messages) == "[system]S\n[developer]D\n[user]U\n"
