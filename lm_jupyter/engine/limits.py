"""What one request may ask of a model, checked before it can occupy the model's worker.

A model's requests share one worker and one inference thread, so a single oversized request
(a chat of 100,000 messages, a prompt of megabytes, an enum of 20,000 values) would hold
everyone else's for as long as it takes. These limits keep every request's cost bounded; they
are ``ModelManager`` settings (settings.py) and each refusal names the field and the setting.
The request body size is checked earlier, by the handlers (``LmJupyterApp.max_request_bytes``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..api.errors import APIError
from ..api.requests import ChatCompletionRequest, NamedToolChoice, SamplingRequest
from .protocol import shifts


@dataclass(frozen=True)
class Limits:
    max_messages: int
    max_prompt_tokens: int
    max_constraint_bytes: int  # a JSON schema (response_format, forced tools) or a grammar
    grammar_timeout: float  # seconds to compile one output constraint

    @classmethod
    def of(cls, settings: Any) -> Limits:
        """The limits a ``ModelManager``'s settings (engine/settings.py) give."""
        names = ("max_messages", "max_prompt_tokens", "max_constraint_bytes", "grammar_timeout")
        return cls(*(getattr(settings, name) for name in names))

    def check_request(self, request: SamplingRequest) -> None:
        """What can be judged before a model is even loaded: messages and constraint sizes."""
        if isinstance(request, ChatCompletionRequest):
            self.check_messages(len(request.messages))
            choice = request.tool_choice
            if request.tools and (choice == "required" or isinstance(choice, NamedToolChoice)):
                self.check_constraint([tool.function.parameters for tool in request.tools], "tools")
        schema = request.response_format.schema() if request.response_format else None
        self.check_constraint(schema, "response_format")
        self.check_constraint(request.grammar, "grammar")

    def check_messages(self, count: int) -> None:
        if count > self.max_messages:
            raise APIError(
                f"Invalid 'messages': {count} messages, more than this server accepts in one request "
                f"({self.max_messages}, ModelManager.max_messages).",
                param="messages",
                code="too_many_messages",
            )

    def check_constraint(self, value: Any, param: str) -> None:
        """A schema or grammar: its compiled grammar, and the cost of applying it at every
        token, grow with its size."""
        if value is None:
            return
        size = len(value.encode()) if isinstance(value, str) else len(json.dumps(value).encode())
        if size > self.max_constraint_bytes:
            raise APIError(
                f"Invalid '{param}': the output constraint is {size} bytes, more than this server "
                f"compiles ({self.max_constraint_bytes}, ModelManager.max_constraint_bytes). "
                "Simplify the schema (fewer enum values, fewer properties).",
                status=413,
                param=param,
                code="constraint_too_large",
            )

    def check_prompt(
        self, prompt: str, request: SamplingRequest, n_ctx: int, max_token_bytes: int, param: str
    ) -> None:
        """A rendered prompt against the request's token limit, without tokenizing it."""
        limit = self.prompt_token_limit(n_ctx, shifts(request.context_overflow_policy))
        self.check_prompt_chars(len(prompt), limit, max_token_bytes, param)

    def prompt_token_limit(self, n_ctx: int, shifting: bool) -> int:
        """The most prompt tokens a request may have: the context's room unless the overflow
        policy cuts the prompt, and never more than ``max_prompt_tokens``."""
        return self.max_prompt_tokens if shifting else min(n_ctx - 1, self.max_prompt_tokens)

    def check_prompt_chars(self, chars: int, limit: int, max_token_bytes: int, param: str) -> None:
        """Refuse, without tokenizing it, a prompt that must be longer than ``limit`` tokens.

        No token covers more characters than its text has bytes (``max_token_bytes``, measured
        by the worker at load), so a prompt of ``chars`` characters has at least
        ``chars / max_token_bytes`` tokens. Tokenizing megabytes takes minutes; this takes nothing.
        """
        if max_token_bytes <= 0:
            return
        at_least = chars // max_token_bytes
        if at_least > limit:
            raise APIError(
                f"The prompt is at least {at_least} tokens long ({chars} characters), more than this "
                f"request may have ({limit} tokens: the model's context, or "
                "ModelManager.max_prompt_tokens). Shorten it.",
                param=param,
                code="context_length_exceeded",
            )
