"""``load --estimate-only`` as ``lms`` prints it, shared by ``lmj`` and ``%lms``.

The format is LM Studio's ``printEstimatedResourceUsage`` (reference/lmstudio-api.md, "lms
load"): base-1024 GiB with two decimals, ``Context Length`` and ``GPU Offload`` only when the
user gave them, ``Confidence: LOW`` only for a low-confidence estimate, then a blank line and
the guardrail verdict.
"""

from __future__ import annotations

from typing import Any

GIB = 1 << 30


def estimate_text(result: dict[str, Any], *, context_length: int | None, gpu: str | float | None) -> str:
    """``result`` is the body of ``POST /api/v1/models/estimate``."""
    memory = result["memory"]
    lines = [f"Model: {result['model']}"]
    if context_length is not None:
        lines.append(f"Context Length: {context_length:,}")
    if gpu is not None:
        ratio = 0.0 if gpu == "off" else 1.0 if gpu == "max" else float(gpu)
        lines.append(f"GPU Offload: {ratio * 100:g}%")
    elif result.get("gpu_offload"):  # chosen by what fits in the GPU's free memory
        lines.append(f"GPU Offload: {result['gpu_offload'] * 100:.0f}% (auto)")
    lines.append(f"Estimated GPU Memory:   {_gib(memory['totalVramBytes'])}")
    lines.append(f"Estimated Total Memory: {_gib(memory['totalBytes'])}")
    if memory.get("confidence") == "low":
        lines.append("Confidence: LOW")
    lines.append("")
    verdict = "may be loaded" if result["passesGuardrails"] else "will fail to load"
    lines.append(f"Estimate: This model {verdict} based on your resource guardrails settings.")
    return "\n".join(lines)


def _gib(size: int) -> str:
    return f"{size / GIB:.2f} GiB"
