"""The plain-Markdown copy of a chat exchange (saved notebooks, GitHub, nbviewer, terminals)."""

from __future__ import annotations

from typing import Any


def exchange_markdown(
    prompt: str, blocks: list[dict[str, Any]], footer: str, error: str = "", reasoning_mode: str = "collapse"
) -> str:
    parts = [f"> {line}" if line else ">" for line in prompt.splitlines()] if prompt else []
    out = ["\n".join(parts)] if parts else []
    for block in blocks:
        kind = block.get("type")
        if kind == "reasoning" and block.get("text") and reasoning_mode != "hide":
            text = block["text"].strip()
            if reasoning_mode == "show":
                out.append("*Reasoning:*\n\n" + "\n".join(f"> {line}" for line in text.splitlines()))
            else:
                out.append(f"<details><summary>Reasoning</summary>\n\n{text}\n\n</details>")
        elif kind == "text" and block.get("text"):
            out.append(block["text"])
        elif kind == "tool":
            call = f"**Tool call** `{block.get('name', '')}({block.get('arguments', '')})`"
            status = block.get("status")
            if block.get("result") is not None:
                out.append(f"{call}\n\n```\n{block['result']}\n```")
            elif status == "denied":
                out.append(f"{call}: *not allowed*")
            else:
                out.append(call)
    if error:
        out.append(f"*{error}*")
    if footer:
        out.append(f"<sub>{footer}</sub>")
    return "\n\n".join(out)
