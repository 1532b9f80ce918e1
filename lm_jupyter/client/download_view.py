"""``get`` as ``lms get`` shows it, shared by ``lmj get`` and ``%lms get``: search results,
download options with their fit, and a progress line, from the server's download routes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .client import Client, LmError
from .tables import format_size

FIT_LABELS = {
    "willNotFit": "[Likely too large for this machine]",
    "fitWithoutGPU": "[Likely fit]",
    "partialGPUOffload": "[Partial GPU offload possible]",
    "fullGPUOffload": "[Full GPU offload possible]",
}
DONE = ("completed", "failed", "paused", "already_downloaded")
BAR_WIDTH = 22


def candidate_line(index: int, result: dict[str, Any]) -> str:
    """``  1. owner/repo  Q4_K_M, Q8_0  664.06 KiB - 2.29 MiB``, like ``lms get``'s model list."""
    quants = ", ".join(v["quantization"] for v in result["variants"])
    exact = "[Exact Match] " if result.get("exact_match") else ""
    return f"{index:3}. {exact}{result['repo']}  {quants}  {size_span(result['variants'])}"


def size_span(variants: list[dict[str, Any]]) -> str:
    """``664.06 KiB - 2.29 MiB``: the smallest and largest of a repo's variants."""
    sizes = sorted(v["size_bytes"] for v in variants)
    span = format_size(sizes[0])
    if sizes[-1] != sizes[0]:
        span += f" - {format_size(sizes[-1])}"
    return span


def option_line(option: dict[str, Any]) -> str:
    """``Q4_K_M    662.03 KiB tiny-chat-Q4_K_M.gguf [Likely fit]  Recommended``."""
    line = f"{option['quantization']} ".ljust(9) + f"{format_size(option['size_bytes'])} ".rjust(11)
    line += option["name"]
    if option.get("projector"):
        line += f" + {option['projector'].rsplit('/', 1)[-1]}"
    if option.get("fit") in FIT_LABELS:
        line += " " + FIT_LABELS[option["fit"]]
    if option.get("recommended"):
        line += "  Recommended"
    if option.get("downloaded"):
        line += "  (downloaded)"
    return line


def option_short(option: dict[str, Any]) -> str:
    """``tiny-chat-Q4_K_M.gguf [Q4_K_M] (662.03 KiB)``."""
    return f"{option['name']} [{option['quantization']}] ({format_size(option['download_bytes'])})"


def progress_parts(status: dict[str, Any]) -> dict[str, Any]:
    """A job's progress as shown: the text line below and the ModelPanel's bars share it.
    ``speed`` and ``eta`` are empty unless the job is moving."""
    total = int(status.get("total_size_bytes") or 0)
    done = int(status.get("downloaded_bytes") or 0)
    ratio = min(1.0, done / total) if total else 0.0
    parts = {
        "ratio": ratio,
        "percent": f"{ratio * 100:.2f}%",
        "bytes": f"{format_size(done)} / {format_size(total)}",
        "speed": "",
        "eta": "",
    }
    speed = float(status.get("bytes_per_second") or 0)
    if speed > 0:
        parts["eta"] = clock((total - done) / speed)
        parts["speed"] = f"{format_size(int(speed))}/s"
    return parts


def clock(seconds: float) -> str:
    """A duration as ``MM:SS``, or ``HH:MM:SS`` from an hour on."""
    left = round(seconds)
    hours, minutes, secs = left // 3600, left // 60 % 60, left % 60
    return f"{hours:02d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def bar(ratio: float, width: int = BAR_WIDTH) -> str:
    """``[█████▌         ]``: a text progress bar with eighth-block resolution (downloads,
    loads and ``llm`` runs draw the same one)."""
    ratio = min(max(ratio, 0.0), 1.0)
    full = int(ratio * width)
    eighths = int((ratio * width - full) * 8)  # of the next cell; none at 0 or on a cell's edge
    partial = "▏▎▍▌▋▊▉"[eighths - 1] if eighths else ""
    return "[" + ("█" * full + partial).ljust(width) + "]"


def progress_line(status: dict[str, Any]) -> str:
    """``[█████▌         ] 45.00% | 1.03 MiB / 2.29 MiB | 83.45 MiB/s | ETA 00:01``."""
    parts = progress_parts(status)
    line = f"{bar(parts['ratio'])} {parts['percent']:>7} | {parts['bytes']}"
    if parts["speed"]:
        line += f" | {parts['speed']} | ETA {parts['eta']}"
    return line


def follow(client: Client, job: dict[str, Any], interval: float = 0.25) -> Iterator[dict[str, Any]]:
    """The job's status now and every ``interval`` seconds until it has ended."""
    status = job
    while True:
        yield status
        if status["status"] in DONE:
            return
        time.sleep(interval)
        status = client.download_status(status["job_id"])


def wanted_quant(query: str, found: dict[str, Any], flag: str | None) -> str | None:
    """The quantization asked for: ``--quant`` or the query's ``@QUANT``, which must agree."""
    named = found["quantization"]
    if flag and named and flag.lower() != named.lower():
        raise LmError(f"'{query}' asks for {named} but --quant says {flag}: give one.")
    return flag or named


@dataclass
class Choice:
    """What ``get -y`` downloads, and a note to show about how it was chosen."""

    repo: str
    option: dict[str, Any]
    note: str | None = None


def choose_automatically(client: Client, query: str, quant: str | None, formats: str) -> Choice:
    """``lms get -y``: the exact match or the first result, then the variant the query names or,
    without one, the one the server recommends for its machine. Problems raise ``LmError``."""
    found = client.search_hub(query, formats)
    results = found["results"]
    if not results:
        raise LmError(f"No models found for '{query}'.")
    quant = wanted_quant(query, found, quant)
    result = next((r for r in results if r["exact_match"]), results[0])
    note = None
    if not result["exact_match"] and len(results) > 1:
        others = ", ".join(r["repo"] for r in results[1:4])
        note = f"Found {len(results)} models; taking {result['repo']} (others: {others})."
    options = client.download_options(result["repo"], quant, formats)
    name = options["selected"] or (None if quant else options["recommended"])
    if name is None:
        names = ", ".join(v["quantization"] for v in options["variants"])
        raise LmError(f"{result['repo']} has no {quant} variant; it has {names}.")
    option = next(v for v in options["variants"] if v["name"] == name)
    return Choice(result["repo"], option, note)
