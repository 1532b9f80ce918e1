"""``ls`` and ``ps`` tables in LM Studio's layout, as text for terminals and HTML for notebooks."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any


def format_size(size: int) -> str:
    """Base-1024 units with two decimals, as ``lms`` prints them since 2026-02 (its
    ``formatSizeBytes1024``). The one unit for sizes and memory everywhere: ``lmj``, ``%lms``
    and the widgets (``model_panel.js`` draws the same figures), so a quantity reads the same."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.2f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{value:.2f} TiB"


@dataclass
class Table:
    """A titled table; IPython shows the HTML form, terminals the padded text form."""

    headers: list[str]
    rows: list[list[str]]
    caption: str = ""
    sections: list[Table] = field(default_factory=list)

    def __str__(self) -> str:
        parts = [self.caption, ""] if self.caption else []
        for table in [self, *self.sections]:
            if table.rows:
                parts += [table._text(), ""]
        return "\n".join(parts).rstrip() + "\n"

    def _text(self) -> str:
        widths = [len(h) for h in self.headers]
        for row in self.rows:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
        lines = ["    ".join(h.ljust(w) for h, w in zip(self.headers, widths, strict=True)).rstrip()]
        for row in self.rows:
            lines.append("    ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        parts = [f"<p>{html.escape(self.caption)}</p>"] if self.caption else []
        for table in [self, *self.sections]:
            if not table.rows:
                continue
            head = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in table.headers)
            body = "".join(
                "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in row) + "</tr>"
                for row in table.rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        return "\n".join(parts)

    def markdown(self) -> str:
        """The table as Markdown (a widget's static copy in a saved notebook)."""
        parts = [self.caption] if self.caption else []
        for table in [self, *self.sections]:
            if not table.rows:
                continue
            cells = [table.headers, ["---"] * len(table.headers), *table.rows]
            lines = ("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells)
            parts.append("\n".join(lines))
        return "\n\n".join(parts)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self).rstrip("\n"))


def ls_table(models: list[dict[str, Any]], *, variants: bool = False) -> Table:
    """Models from ``GET /api/v1/models``, grouped into LLM and EMBEDDING sections.

    With ``variants``, each variant gets its own indented row, `` * `` marking the default.
    """
    total = sum(v["size_bytes"] for m in models for v in m["variant_details"])
    noun = "model" if len(models) == 1 else "models"
    caption = f"You have {len(models)} {noun}, taking up {format_size(total)} of disk space."
    if not models:
        caption = "You have no models. Add one with `lmj import PATH`."
    sections = []
    for kind, title in (("llm", "LLM"), ("embedding", "EMBEDDING")):
        rows = []
        for model in models:
            if model["type"] != kind:
                continue
            if model["format"] == "remote":  # served by a remote upstream (lmj remote)
                state = model["state"]
                rows.append(
                    [
                        model["key"],
                        "",
                        "",
                        "",
                        f"Remote: {model['upstream']}",
                        "" if state == "loaded" else state.upper(),
                    ]
                )
                continue
            loaded = len(model["loaded_instances"])
            mark = "" if not loaded else "✓ LOADED" if loaded == 1 else f"✓ LOADED ({loaded})"
            count = len(model["variants"])
            name = model["key"] + (f" ({count} variants)" if count > 1 else "")
            rows.append(
                [
                    name,
                    model.get("params_string") or "",
                    model.get("architecture", ""),
                    format_size(model["size_bytes"]),
                    "Local",
                    mark,
                ]
            )
            if variants and count > 1:
                for variant in model["variant_details"]:
                    star = " * " if variant["key"] == model["selected_variant"] else "   "
                    rows.append([star + variant["key"], "", "", format_size(variant["size_bytes"]), "", ""])
        sections.append(Table([title, "PARAMS", "ARCH", "SIZE", "DEVICE", ""], rows))
    first, *rest = sections
    first.caption = caption
    first.sections = rest
    return first


def ls_json(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``lms ls --json`` field names (ModelInfo)."""
    out = []
    for model in models:
        entry = {
            "type": model["type"],
            "modelKey": model["key"],
            "format": model["format"],
            "displayName": model["display_name"],
            "publisher": model["publisher"],
            "path": model["path"],
            "sizeBytes": model["size_bytes"],
            "paramsString": model["params_string"],
            "quantization": model["quantization"]
            and {"name": model["quantization"]["name"], "bits": model["quantization"]["bits_per_weight"]},
            "maxContextLength": model["max_context_length"],
            "variants": model["variants"],
            "selectedVariant": model["selected_variant"],
        }
        if model["format"] == "remote":
            entry.update(upstream=model["upstream"], state=model["state"])
        elif model["type"] == "llm":
            entry["architecture"] = model["architecture"]
            entry["trainedForToolUse"] = model["capabilities"]["trained_for_tool_use"]
            entry["vision"] = model["capabilities"]["vision"]
        out.append(entry)
    return out


def ps_table(rows: list[dict[str, Any]], crashed: list[dict[str, Any]] | None = None) -> Table:
    """Loaded instances, then models whose worker died (named cause), like ``lms ps``."""
    deaths = Table(["CRASHED", "WHY"], [[row["modelKey"], row["error"]] for row in crashed or []])
    if not rows:
        caption = "No models are currently loaded. To load a model, run: lmj load <model key>"
        return Table([], [], caption=caption, sections=[deaths])
    return Table(
        [
            "IDENTIFIER",
            "MODEL",
            "STATUS",
            "QUEUED",
            "SIZE",
            "MEMORY",
            "DEVICE",
            "CONTEXT",
            "PARALLEL",
            "TTL",
            "LOADED",
        ],
        [
            [
                row["identifier"],
                row["modelKey"],
                row["status"].upper(),
                str(row["queued"]),
                format_size(row["sizeBytes"]),
                format_size(row["memoryBytes"]) if row["memoryBytes"] else "",
                (row.get("device") or "").upper(),
                str(row["contextLength"]),
                str(row["parallel"]),
                _ttl(row["ttlRemainingMs"], row["ttlMs"]),
                "JIT" if row["loadedBy"] == "jit" else "explicit",
            ]
            for row in rows
        ],
        sections=[deaths],
    )


def format_duration(ms: int) -> str:
    seconds = round(ms / 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {seconds}s" if minutes else f"{seconds}s"


def _ttl(remaining: int | None, total: int | None) -> str:
    """``lms ps`` shows ``<remaining> / <total>``."""
    if total is None or remaining is None:
        return ""
    return f"{format_duration(remaining)} / {format_duration(total)}"
