"""LM Studio's context-overflow policies, as plain arithmetic on token lists.

``stopAtLimit`` (the default) refuses a prompt that does not fit and ends an answer that fills
the context with ``finish_reason: length``. ``truncateMiddle`` keeps the first tokens (the
system prompt, most often) and drops tokens after them; ``rollingWindow`` keeps only the
beginning-of-sequence token and drops the oldest. The same two numbers drive both the prompt
that is cut before it is evaluated and the context shift of an answer that outgrows the
context while it is generated (llama.cpp's ``n_keep`` / ``n_discard``). Whether a policy cuts
at all (``shifts``) is in engine/protocol.py: the server checks it too. ``fit_request`` applies
all this to a request's prompt for every backend.
"""

from __future__ import annotations

from ..protocol import GenerateParams, shifts
from .backend import RequestError


def fit_request(tokens: list[int], params: GenerateParams, n_ctx: int, bos: int | None) -> list[int]:
    """A prompt checked against the server's limit and the loaded context: a 400 that names
    the fix, or the prompt cut by the request's shifting policy."""
    limit = params.get("max_prompt_tokens")
    if limit is not None and len(tokens) > limit:
        raise RequestError(
            f"The prompt is {len(tokens)} tokens long, more than this server accepts "
            f"({limit}, ModelManager.max_prompt_tokens).",
            code="prompt_too_long",
        )
    if len(tokens) < n_ctx:
        return tokens
    policy = params.get("context_overflow_policy") or "stopAtLimit"
    if not shifts(policy):
        raise RequestError(
            f"The prompt is {len(tokens)} tokens long, but the model is loaded with a context "
            f"length of {n_ctx} tokens. Shorten the prompt, load the model with a larger "
            "context (`lmj load MODEL --context-length N`), or let the server cut it with "
            "'context_overflow_policy': 'truncateMiddle' or 'rollingWindow'.",
            code="context_length_exceeded",
        )
    return fit_prompt(tokens, n_ctx, keep_count(policy, tokens, n_ctx, bos), params.get("max_tokens"))


def keep_count(policy: str, prompt: list[int], n_ctx: int, bos: int | None) -> int:
    """How many leading tokens a policy never drops (``n_keep``)."""
    if policy == "truncateMiddle":
        return min(len(prompt), n_ctx // 4)
    return 1 if bos is not None and prompt[:1] == [bos] else 0


def reserve(n_ctx: int, max_tokens: int | None) -> int:
    """Room a cut prompt leaves for the answer: what was asked for, within a quarter to half
    of the context (a cut prompt with no room to answer in would be cut again at once)."""
    wanted = max_tokens if max_tokens is not None else n_ctx // 4
    return max(1, min(wanted, n_ctx // 2))


def fit_prompt(prompt: list[int], n_ctx: int, keep: int, max_tokens: int | None) -> list[int]:
    """A prompt of ``n_ctx`` tokens or more, cut to leave room for the answer: the first
    ``keep`` tokens (at most half of what remains) and then the most recent ones."""
    target = n_ctx - reserve(n_ctx, max_tokens)
    head = min(keep, target // 2)
    return prompt[:head] + prompt[len(prompt) - (target - head) :]


def discard_count(n_tokens: int, keep: int) -> int:
    """Tokens a context shift drops after the kept ones: half of the rest, as llama.cpp does."""
    return max(1, (n_tokens - keep) // 2)
