"""A load's memory estimate as text and as bars, shared by ``lmj``, ``%lms`` and the widgets.

``estimate_text`` is ``load --estimate-only`` in LM Studio's ``printEstimatedResourceUsage``
layout (reference/lmstudio-api.md, "lms load"): ``Context Length`` and ``GPU Offload`` only when
the user gave them, ``Confidence: LOW`` only for a low-confidence estimate, then a blank line
and the guardrail verdict. Sizes use :func:`format_size`, the one unit everywhere, so the
estimate reads the same in the terminal, in ``%lms``, in the model manager's bars and in the
``%lms load`` view. ``estimate_bars`` are the memory bars both widgets draw.
"""

from __future__ import annotations

from typing import Any

from .tables import format_size


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
    lines.append(f"Estimated GPU Memory:   {format_size(memory['totalVramBytes'])}")
    lines.append(f"Estimated Total Memory: {format_size(memory['totalBytes'])}")
    if memory.get("confidence") == "low":
        lines.append("Confidence: LOW")
    lines.append("")
    verdict = "may be loaded" if result["passesGuardrails"] else "will fail to load"
    lines.append(f"Estimate: This model {verdict} based on your resource guardrails settings.")
    return "\n".join(lines)


def estimate_bars(result: dict[str, Any]) -> list[dict[str, Any]]:
    """What the load needs against what is free, per kind of memory: a GPU bar only where the
    server reports GPU memory, then the total. Each bar: ``label``, ``need`` and ``room`` (the
    figures as :func:`format_size` writes them), ``caption``, ``fill`` (0..1) and ``bad`` (red:
    it does not fit, or the guardrail refuses)."""
    memory, available = result["memory"], result.get("available") or {}
    refused = not result["passesGuardrails"]
    vram = int(available.get("vram_bytes") or 0)
    bars = []
    if vram > 0:
        need = int(memory["totalVramBytes"])
        bars.append(_bar("GPU", need, vram, refused and need > 0))
    bars.append(
        _bar("Total", int(memory["totalBytes"]), int(available.get("ram_bytes") or 0) + vram, refused)
    )
    return bars


def _bar(label: str, need: int, room: int, refused: bool) -> dict[str, Any]:
    fits = need <= room if room > 0 else need == 0
    if room > 0:
        caption = f"{format_size(need)} of {format_size(room)} free"
    else:
        caption = f"{format_size(need)} (none available)" if need > 0 else "none"
    fill = min(1.0, need / room) if room > 0 else (1.0 if need > 0 else 0.0)
    return {
        "label": label,
        "need": format_size(need),
        "room": format_size(room),
        "caption": caption,
        "fill": fill,
        "bad": refused or not fits,
    }


def where_text(result: dict[str, Any]) -> str:
    """Where the model will run, from the offload the estimate chose (or was given)."""
    offload = float(result.get("gpu_offload") or 0.0)
    if offload <= 0:
        return "on the CPU"
    if offload >= 1:
        return "on the GPU"
    return f"on the GPU and CPU ({offload * 100:.0f}% of the layers on the GPU)"


def verdict_text(result: dict[str, Any]) -> str:
    if result["passesGuardrails"]:
        return "Fits in memory."
    return "Will not fit: lower the context length or the GPU offload."
