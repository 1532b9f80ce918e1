"""The state of ``%%chat`` in one notebook (one kernel), kept out of the magic itself.

- :class:`ChatSession`: the conversation (messages with tool calls and results), the system
  prompt and the model, until ``--new``; it builds each request body.
- :class:`Reply`: one streamed answer folded from ``/v1/chat/completions`` chunks: text,
  reasoning, tool calls whose arguments arrive in pieces, usage, LM Studio ``stats`` (draft
  acceptance under speculative decoding) and timings.
- :func:`interpolate`: ``{var}`` in a cell from the user namespace.
- :func:`response_format` / :func:`parse_structured`: ``--json-schema VAR`` (a dict or a
  pydantic model class).

Pure: no I/O, no IPython; time is passed in, so every piece is unit-tested on its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from string import Formatter
from typing import Any

Message = dict[str, Any]


class ChatInputError(Exception):
    """Something in the cell or its options that the user must fix (one line, no traceback)."""


# {name}, {name.attr}, {name[key]}, optionally !r/!s/!a and a format spec; {{ and }} are literal.
_FIELD = re.compile(r"\{\{|\}\}|\{([A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[[^\[\]{}]+\])*)(![rsa])?(:[^{}]*)?\}")


def interpolate(text: str, namespace: dict[str, Any]) -> str:
    """Replace ``{var}`` with the variable's value; ``{{`` and ``}}`` are literal braces.

    Braces that do not hold a name (``{"a": 1}`` in a JSON example, code) are left alone, so
    pasted code needs no escaping; only a name that is not defined is an error.
    """
    formatter = Formatter()

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole in ("{{", "}}"):
            return whole[0]
        name, conversion, spec = match.group(1), match.group(2), match.group(3)
        try:
            value, _ = formatter.get_field(name, (), namespace)
        except (KeyError, AttributeError, IndexError, TypeError) as exc:
            root = re.match(r"\w+", name)
            if root and root.group(0) not in namespace:
                raise ChatInputError(
                    f"{{{name}}}: {root.group(0)!r} is not defined (write {{{{ and }}}} for literal braces)."
                ) from None
            raise ChatInputError(f"{{{name}}}: {type(exc).__name__}: {exc}") from None
        if conversion:
            value = formatter.convert_field(value, conversion[1])
        try:
            return format(value, spec[1:] if spec else "")
        except (ValueError, TypeError) as exc:
            raise ChatInputError(f"{{{name}{spec or ''}}}: {exc}") from None

    return _FIELD.sub(replace, text)


def response_format(schema: Any, name: str) -> tuple[dict[str, Any], Any]:
    """``--json-schema VAR``: the request's ``response_format`` and the pydantic class (or None)."""
    model_class = schema if isinstance(schema, type) and hasattr(schema, "model_json_schema") else None
    if model_class is not None:
        body = model_class.model_json_schema()
        name = model_class.__name__
    elif isinstance(schema, dict):
        body = schema
    else:
        raise ChatInputError(f"--json-schema {name}: give a dict (JSON schema) or a pydantic model class.")
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "schema"
    return {"type": "json_schema", "json_schema": {"name": safe, "schema": body, "strict": True}}, model_class


def parse_structured(text: str, model_class: Any) -> Any:
    """The reply of a ``--json-schema`` request as Python data (a model instance for pydantic)."""
    try:
        if model_class is not None:
            return model_class.model_validate_json(text)
        return json.loads(text)
    except ValueError as exc:
        message = " ".join(str(exc).split())
        raise ChatInputError(f"The reply is not valid for the schema: {message[:200]}") from None


@dataclass
class ToolCall:
    """One call as it streams in: the id and name arrive first, the arguments in pieces."""

    id: str
    name: str
    arguments: str = ""
    result: str | None = None
    status: str = "streaming"  # streaming -> pending -> running -> done | denied

    def message(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass
class Reply:
    """One streamed answer (one request), folded chunk by chunk."""

    requested_at: float
    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    finish_reason: str | None = None
    first_token_at: float | None = None
    ended_at: float | None = None
    deltas: int = 0  # content, reasoning and argument pieces received (when there is no usage)
    # llama-server's prompt_progress (``return_progress``): prompt tokens processed of total.
    prompt_progress: dict[str, int] = field(default_factory=dict)

    def fold(self, chunk: dict[str, Any], now: float) -> bool:
        """Add one chunk; True when it changed something visible."""
        progress = chunk.get("prompt_progress")
        if isinstance(progress, dict):  # before the first token: not an answer's piece
            self.prompt_progress = {"processed": int(progress["processed"]), "total": int(progress["total"])}
            return True
        changed = False
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        if isinstance(chunk.get("stats"), dict) and chunk["stats"]:
            self.stats = chunk["stats"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning:
                self.reasoning += reasoning
                changed = True
            if delta.get("content"):
                self.text += delta["content"]
                changed = True
            for piece in delta.get("tool_calls") or []:
                self._fold_call(piece)
                changed = True
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        if changed:
            self.deltas += 1
            if self.first_token_at is None:
                self.first_token_at = now
        return changed

    def _fold_call(self, piece: dict[str, Any]) -> None:
        index = int(piece.get("index", len(self.tool_calls)))
        function = piece.get("function") or {}
        while len(self.tool_calls) <= index:
            self.tool_calls.append(ToolCall(id="", name=""))
        call = self.tool_calls[index]
        if piece.get("id"):
            call.id = piece["id"]
        if function.get("name"):
            call.name += function["name"]
        if function.get("arguments"):
            call.arguments += function["arguments"]

    def assistant_message(self) -> Message:
        message: Message = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            message["tool_calls"] = [call.message() for call in self.tool_calls]
        return message

    @property
    def completion_tokens(self) -> int:
        return int(self.usage["completion_tokens"]) if self.usage else self.deltas

    def footer_stats(self) -> dict[str, Any]:
        """What the footer shows: speed, time to first token, token counts, draft acceptance."""
        stats: dict[str, Any] = {"completion_tokens": self.completion_tokens}
        if self.usage:
            stats["prompt_tokens"] = int(self.usage.get("prompt_tokens", 0))
            cached = (self.usage.get("prompt_tokens_details") or {}).get("cached_tokens")
            if cached:
                stats["cached_tokens"] = int(cached)
        if self.first_token_at is not None:
            stats["ttft_s"] = round(self.first_token_at - self.requested_at, 3)
            generating = (self.ended_at or self.first_token_at) - self.first_token_at
            if generating > 0 and self.completion_tokens > 1:
                stats["tokens_per_second"] = round(self.completion_tokens / generating, 1)
        if self.stats.get("tokens_per_second"):
            stats["tokens_per_second"] = round(float(self.stats["tokens_per_second"]), 1)
        total = self.stats.get("total_draft_tokens_count")
        accepted = self.stats.get("accepted_draft_tokens_count")
        if total is not None and accepted is not None:
            stats["draft_total"], stats["draft_accepted"] = int(total), int(accepted)
            if self.stats.get("draft_model"):
                stats["draft_model"] = self.stats["draft_model"]
        if self.finish_reason:
            stats["finish_reason"] = self.finish_reason
        return stats


def footer_text(model: str, stats: dict[str, Any]) -> str:
    """The footer line: ``model · 42 tokens · 81.3 tok/s · 0.12s to first token · draft 30/40``."""
    tokens = stats.get("completion_tokens", 0)
    items = [model, f"{tokens} token" if tokens == 1 else f"{tokens} tokens"]
    if "tokens_per_second" in stats:
        items.append(f"{stats['tokens_per_second']:,.1f} tok/s")
    if "ttft_s" in stats:
        items.append(f"{stats['ttft_s']:.2f}s to first token")
    if "prompt_tokens" in stats:
        items.append(f"{stats['prompt_tokens']} prompt tokens")
    if "draft_total" in stats:
        total, accepted = stats["draft_total"], stats["draft_accepted"]
        share = f" ({accepted / total:.0%})" if total else ""
        items.append(f"draft {accepted}/{total} accepted{share}")
    if stats.get("finish_reason") == "length":
        items.append("stopped at the token limit")
    return " · ".join(items)


@dataclass
class ChatSession:
    """One notebook's conversation: what ``%lms history`` shows and every request continues."""

    messages: list[Message] = field(default_factory=list)
    system: str | None = None
    model: str | None = None
    last_reply: str | None = None
    last_result: Any = None

    def reset(self) -> None:
        self.messages, self.system = [], None

    def request(self, model: str, turn: list[Message], options: dict[str, Any]) -> dict[str, Any]:
        """The request body: system prompt, history, this turn's messages, then the options."""
        system = [{"role": "system", "content": self.system}] if self.system else []
        body: dict[str, Any] = {"model": model, "messages": [*system, *self.messages, *turn]}
        body.update({key: value for key, value in options.items() if value is not None})
        return body

    def commit(self, turn: list[Message], reply: str) -> None:
        """A finished exchange joins the history (an interrupted one does not)."""
        self.messages += turn
        self.last_reply = reply

    def transcript(self) -> str:
        """The conversation as Markdown (``%lms history``)."""
        parts = []
        if self.system:
            parts.append(f"**system:** {self.system}")
        for message in self.messages:
            role = message["role"]
            if role == "tool":
                call_id = message.get("tool_call_id", "")
                parts.append(f"**tool result** (`{call_id}`):\n\n```\n{message['content']}\n```")
                continue
            text = message.get("content") or ""
            if text:
                parts.append(f"**{role}:** {text}")
            for call in message.get("tool_calls") or []:
                function = call["function"]
                parts.append(f"**{role}** calls `{function['name']}({function['arguments']})`")
        return "\n\n".join(parts) if parts else "*No conversation yet.*"
