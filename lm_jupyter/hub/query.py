"""What ``lmj get QUERY`` (and ``POST /api/v1/models/download``'s ``model``) may name.

A search keyword (``qwen2.5 coder``), a repository (``owner/repo``), a Hugging Face URL
(``https://huggingface.co/owner/repo[/blob/main/file.gguf]``, where a trailing ``.gguf`` file
name is a preference among the variants), each optionally followed by ``@QUANT``
(``owner/repo@q4_k_m``), as ``lms get`` accepts them. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

HUB_HOSTS = {"huggingface.co", "www.huggingface.co", "hf.co"}
# Hugging Face's repo-name rule: letters, digits, '-', '_', '.', not starting with '-' or '.'.
_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.\-]*"
REPO_ID = re.compile(rf"^{_NAME}/{_NAME}$")
_QUANT = re.compile(r"^[A-Za-z0-9_.\-]+$")


class QueryError(ValueError):
    """A query that names nothing: the message says what is wrong and how to write it."""


@dataclass(frozen=True)
class HubQuery:
    text: str  # the search keywords, or the repo id
    repo: str | None = None  # set when the query names one repository exactly
    quantization: str | None = None  # from ``@QUANT``
    file: str | None = None  # a file name preference from a URL

    @property
    def exact(self) -> bool:
        return self.repo is not None


def parse_query(query: str, quantization: str | None = None) -> HubQuery:
    """Parse a query; ``quantization`` (``--quant``) must agree with an ``@QUANT`` in it."""
    text = " ".join(query.split())
    if not text:
        raise QueryError("Name a model to download: a search term, owner/repo, or a huggingface.co URL.")
    quant: str | None = None
    if "@" in text and not text.lower().startswith(("http://", "https://")):
        text, _, quant = text.partition("@")
        if "@" in quant:
            raise QueryError(f"'{query}' has more than one '@': write NAME@QUANT, e.g. owner/repo@q4_k_m.")
        text, quant = text.strip(), quant.strip()
        if not text or not quant or not _QUANT.match(quant):
            raise QueryError(f"'{query}' is not NAME@QUANT, e.g. owner/repo@q4_k_m.")
    if quantization:
        if quant and quant.lower() != quantization.lower():
            raise QueryError(f"'{query}' asks for {quant} but --quant says {quantization}: give one.")
        quant = quantization
    if text.lower().startswith(("http://", "https://")):
        repo, file = _parse_url(text)
        return HubQuery(repo, repo=repo, quantization=quant, file=file)
    if REPO_ID.match(text):
        return HubQuery(text, repo=text, quantization=quant)
    if "/" in text:
        raise QueryError(f"'{text}' is not a repository id: write owner/repo, or search with plain words.")
    return HubQuery(text, quantization=quant)


def _parse_url(url: str) -> tuple[str, str | None]:
    parts = urlsplit(url)
    if parts.scheme != "https" or parts.hostname not in HUB_HOSTS:
        raise QueryError(
            f"'{url}' is not a Hugging Face model URL: only https://huggingface.co/OWNER/REPO works."
        )
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if len(segments) < 2 or segments[0] in {"datasets", "spaces"}:
        raise QueryError(f"'{url}' does not name a model repository (https://huggingface.co/OWNER/REPO).")
    repo = f"{segments[0]}/{segments[1]}"
    if not REPO_ID.match(repo):
        raise QueryError(f"'{url}' does not name a model repository (https://huggingface.co/OWNER/REPO).")
    last = segments[-1] if len(segments) > 2 else None
    return repo, last if last and last.lower().endswith(".gguf") else None
