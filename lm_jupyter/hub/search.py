"""The Hugging Face Hub through the real ``huggingface_hub`` client: search, a repo's files,
and byte ranges of a file (to read a GGUF header before downloading).

Blocking calls: the server runs them in threads. ``HF_ENDPOINT`` (read by huggingface_hub at
import) points them at a mirror or at the tests' stand-in Hub; ``HF_TOKEN`` or ``hf auth
login`` gives access to gated repos. Every failure becomes a :class:`HubError` whose message
is one line a user can act on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx2
from huggingface_hub import HfApi, constants, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from .variants import RemoteFile, Variant, gguf_variants, mlx_variant

FORMATS = ("gguf", "mlx")
TIMEOUT = httpx2.Timeout(constants.HF_HUB_DOWNLOAD_TIMEOUT * 3, connect=constants.HF_HUB_ETAG_TIMEOUT)


class HubError(Exception):
    """A Hub failure as one line; ``status``/``code`` are what the server answers with."""

    def __init__(self, message: str, status: int = 502, code: str = "hub_error", reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.reason = reason or message  # the bare cause, for messages that wrap this one


@dataclass(frozen=True)
class Candidate:
    """One repository a query found, with its download options."""

    repo: str
    format: str
    revision: str | None  # the commit its files were listed at (downloads pin it)
    variants: list[Variant]
    downloads: int | None = None
    likes: int | None = None
    gated: bool = False

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo}"

    def to_json(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "url": self.url,
            "format": self.format,
            "revision": self.revision,
            "downloads": self.downloads,
            "likes": self.likes,
            "gated": self.gated,
            "variants": [variant_json(v) for v in self.variants],
        }


def variant_json(variant: Variant) -> dict[str, Any]:
    return {
        "quantization": variant.quantization,
        "name": variant.name,
        "size_bytes": variant.size_bytes,
        "download_bytes": variant.download_bytes,
        "files": [f.path for f in variant.files],
        "projector": variant.projector.path if variant.projector else None,
        "format": variant.format,
    }


@contextlib.contextmanager
def hub_errors(repo: str, file: str | None = None) -> Iterator[None]:
    """Turn huggingface_hub's and the network's exceptions into one-line ``HubError``s."""
    try:
        yield
    except HubError:
        raise
    except GatedRepoError:
        raise HubError(
            f"{repo} is gated: accept its terms at https://huggingface.co/{repo} and give the server a "
            "Hugging Face token with access (HF_TOKEN, or `hf auth login`).",
            403,
            "gated_repo",
        ) from None
    except RepositoryNotFoundError:
        raise HubError(
            f"{repo} was not found on the Hugging Face Hub (if it is private, give the server a token "
            "with access: HF_TOKEN).",
            404,
            "model_not_found",
        ) from None
    except (RemoteEntryNotFoundError, RevisionNotFoundError):
        message = f"{file or 'A file'} was not found in {repo} on the Hub."
        raise HubError(message, 404, "file_not_found") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 502
        if status == 429 or status >= 500:  # busy or down for now: downloads retry these
            raise HubError(
                f"The Hugging Face Hub is unavailable for {repo} (HTTP {status}); try again later.",
                503,
                "hub_unreachable",
                f"HTTP {status}",
            ) from None
        raise HubError(f"The Hugging Face Hub refused the request for {repo} (HTTP {status}).") from None
    except httpx2.TransportError as exc:
        reason = _reason(exc)
        raise HubError(
            f"Cannot reach the Hugging Face Hub at {constants.ENDPOINT}: {reason}. Check the network "
            "(or HF_ENDPOINT).",
            503,
            "hub_unreachable",
            reason,
        ) from None


def search(text: str, formats: tuple[str, ...] = ("gguf",), limit: int = 10) -> list[Candidate]:
    """Repos matching keywords, most downloaded first, with their variants and sizes."""
    api = HfApi()
    found: dict[str, None] = {}
    with hub_errors(text):
        for fmt in formats:
            for info in api.list_models(search=text, filter=fmt, sort="downloads", limit=limit):
                found.setdefault(info.id)
    repos = list(found)[:limit]
    if not repos:
        return []
    # One request per repo for the file sizes; a few at a time.
    with ThreadPoolExecutor(max_workers=min(8, len(repos))) as pool:
        results = list(pool.map(lambda r: _repo_or_none(r, formats), repos))
    return [c for c in results if c is not None and c.variants]


def repository(repo: str, formats: tuple[str, ...] = FORMATS) -> Candidate:
    """One repo's download options (every file's size and sha256, at the current commit)."""
    with hub_errors(repo):
        info = HfApi().model_info(repo, files_metadata=True)
    files = [
        RemoteFile(s.rfilename, int(s.lfs.size if s.lfs else s.size or 0), s.lfs.sha256 if s.lfs else None)
        for s in info.siblings or []
    ]
    variants: list[Variant] = gguf_variants(files) if "gguf" in formats else []
    fmt = "gguf"
    if not variants and "mlx" in formats and ("mlx" in (info.tags or []) or info.library_name == "mlx"):
        whole = mlx_variant(files, info.id)
        variants, fmt = ([whole] if whole else []), "mlx"
    return Candidate(
        info.id,
        fmt,
        info.sha,
        variants,
        downloads=info.downloads,
        likes=info.likes,
        gated=bool(info.gated),
    )


def _repo_or_none(repo: str, formats: tuple[str, ...]) -> Candidate | None:
    try:
        return repository(repo, formats)
    except HubError as exc:
        if exc.code == "hub_unreachable":
            raise
        return None  # a gated or vanished search hit is left out of the list


def read_range(repo: str, path: str, revision: str | None, start: int, end: int) -> bytes:
    """Bytes ``start..end`` (inclusive) of a file on the Hub, or fewer at its end."""
    url = hf_hub_url(repo, path, revision=revision)
    headers = build_hf_headers()
    headers["Range"] = f"bytes={start}-{end}"
    wanted = end - start + 1
    session = get_session()
    with hub_errors(repo, path), session.stream("GET", url, headers=headers, timeout=TIMEOUT) as response:
        if response.is_error:
            response.read()  # hf_raise_for_status reads the error body
        hf_raise_for_status(response)
        skip = start if response.status_code == 200 else 0  # the server ignored the Range
        data = bytearray()
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) >= skip + wanted:
                break
    return bytes(data[skip : skip + wanted])


def file_url(repo: str, path: str, revision: str | None) -> str:
    return hf_hub_url(repo, path, revision=revision)


def hub_headers() -> dict[str, str]:
    """The headers huggingface_hub sends (user agent, and the token when there is one)."""
    return dict(build_hf_headers())


def _reason(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0]
