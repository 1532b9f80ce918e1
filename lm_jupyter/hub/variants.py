"""A Hub repository's files as download options: one variant per quantization.

GGUF repos hold one file per quantization (``Model-Q4_K_M.gguf``), sometimes split into
shards (``Model-Q8_0-00001-of-00002.gguf``, possibly in a ``Q8_0/`` folder), and vision models
add a projector (``mmproj-*.gguf``) that every variant needs. MLX repos are one variant: the
whole repository. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ..api.models import quant_bits
from .store import QUANT_IN_NAME

SHARD = re.compile(r"(?i)-(\d{5})-of-(\d{5})(?=\.gguf$)")
# Files an MLX download leaves out: documentation and repo plumbing, not the model.
_MLX_SKIP = re.compile(r"(?i)(^|/)(\.gitattributes|readme\.md|.*\.(png|jpe?g|gif|md))$")

# What a variant's fit check says, in LM Studio's ``fitEstimation`` words.
Fit = Literal["fullGPUOffload", "partialGPUOffload", "fitWithoutGPU", "willNotFit"]
FITS: tuple[Fit, ...] = ("fullGPUOffload", "partialGPUOffload", "fitWithoutGPU")


@dataclass(frozen=True)
class RemoteFile:
    path: str  # within the repository
    size: int
    sha256: str | None = None  # the LFS object's sha256 (what the Hub's x-linked-etag carries)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Variant:
    quantization: str
    files: tuple[RemoteFile, ...]  # the model (shards in order)
    projector: RemoteFile | None = None
    format: str = "gguf"

    @property
    def name(self) -> str:
        return self.files[0].name

    @property
    def size_bytes(self) -> int:
        """The model's size, as LM Studio lists it (without the projector)."""
        return sum(f.size for f in self.files)

    @property
    def download_files(self) -> tuple[RemoteFile, ...]:
        return self.files + ((self.projector,) if self.projector else ())

    @property
    def download_bytes(self) -> int:
        return sum(f.size for f in self.download_files)

    def matches(self, quantization: str) -> bool:
        wanted = quantization.lower()
        name = self.name.lower()
        return wanted in (self.quantization.lower(), name, name.removesuffix(".gguf"))


@dataclass
class Ranking:
    """Variants with the fit of those that were judged and the one to download by default."""

    variants: list[Variant]
    recommended: Variant | None
    fits: dict[str, Fit | None] = field(default_factory=dict)  # by variant name


def quantization_of(filename: str) -> str | None:
    """``Model-Q4_K_M.gguf`` -> ``Q4_K_M`` (shard suffixes ignored), or None."""
    match = QUANT_IN_NAME.search(SHARD.sub("", filename.rsplit("/", 1)[-1]))
    return match.group(1).upper() if match else None


def is_projector(path: str) -> bool:
    return "mmproj" in path.rsplit("/", 1)[-1].lower()


def gguf_variants(files: list[RemoteFile]) -> list[Variant]:
    """Group a repo's GGUF files into variants, smallest first, each with the projector."""
    ggufs = [f for f in files if f.path.lower().endswith(".gguf")]
    projectors = sorted((f for f in ggufs if is_projector(f.path)), key=_projector_preference)
    groups: dict[str, list[RemoteFile]] = {}
    for file in ggufs:
        if is_projector(file.path):
            continue
        groups.setdefault(SHARD.sub("", file.path).lower(), []).append(file)
    variants = []
    for members in groups.values():
        members.sort(key=lambda f: f.name)
        shard = SHARD.search(members[0].name)
        if shard and len(members) != int(shard.group(2)):
            continue  # an incomplete set of shards cannot load
        quant = quantization_of(members[0].name) or SHARD.sub("", members[0].name).removesuffix(".gguf")
        variants.append(Variant(quant, tuple(members), projectors[0] if projectors else None))
    return sorted(variants, key=lambda v: (v.size_bytes, v.name))


def mlx_variant(files: list[RemoteFile], repo: str) -> Variant | None:
    """An MLX repo downloads whole; its quantization is in the repo name (``-4bit``).
    ``config.json`` comes first: a download puts its first file in place last, and the models
    folder lists an MLX folder once it has its config, so never before its weights."""
    ordered = sorted(files, key=lambda f: (f.path != "config.json", f.path))
    kept = tuple(f for f in ordered if not _MLX_SKIP.search(f.path))
    if not any(f.path.endswith(".safetensors") for f in kept):
        return None
    bits = re.search(r"(?i)(\d+)[-_]?bit", repo)
    return Variant(f"{bits.group(1)}bit" if bits else "mlx", kept, None, format="mlx")


def rank(variants: list[Variant], fit: Callable[[Variant], Fit | None]) -> Ranking:
    """Pick the default download as ``Registry.find`` picks a local variant: the best
    quantization that fits this machine; if none fits, the smallest.

    ``fit`` can be costly (it reads each file's header from the Hub), so it runs best
    quantization first and stops at the first that fits; variants no larger than that one fit
    too (same architecture and context, fewer weights) and are not checked.
    """
    ranking = Ranking(variants, None)
    if not variants:
        return ranking
    order = sorted(variants, key=lambda v: (quant_bits(v.quantization) or 0, v.size_bytes), reverse=True)
    for variant in order:
        chosen = ranking.recommended
        if chosen is not None and variant.size_bytes <= chosen.size_bytes:
            ranking.fits[variant.name] = ranking.fits[chosen.name]
            continue
        verdict = fit(variant)
        ranking.fits[variant.name] = verdict
        if chosen is None and verdict in FITS:
            ranking.recommended = variant
    if ranking.recommended is None:
        ranking.recommended = min(variants, key=lambda v: v.size_bytes)
    return ranking


def _projector_preference(file: RemoteFile) -> tuple[int, str]:
    """F16 projectors first (what model cards tell people to use), then by name."""
    quant = (quantization_of(file.name) or "").upper()
    return (0 if quant == "F16" else 1 if quant in ("BF16", "F32") else 2, file.name)
