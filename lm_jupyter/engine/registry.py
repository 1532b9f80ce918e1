"""The models folder: LM Studio's ``publisher/repo/file.gguf`` layout (and ``publisher/repo/``
for an MLX model folder), listed from metadata.

Nothing here loads a model. Metadata is cached per (path, size, mtime) so listing a folder of
large models stays instant after the first look.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gguf

from ..api.errors import APIError, model_not_found
from ..api.models import ModelFacts, quant_bits
from ..chat.families import FALLBACK, detect_family
from ..chat.fim import SPELLINGS, FimTokens, fim_tokens
from ..chat.reasoning import reasoning_markers
from ..hub.store import QUANT_IN_NAME
from ..hub.variants import SHARD
from .gguf_meta import GGUFError, GGUFMetadata, read_metadata
from .mlx_meta import MLXError, MLXMetadata, is_mlx_folder, read_mlx_metadata

log = logging.getLogger("lm_jupyter")

EMBEDDING_ARCHS = {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "t5encoder", "modern-bert"}


@dataclass(frozen=True)
class LocalModel:
    """A model file (an MLX model's folder) plus what a worker and the chat template need to run it."""

    facts: ModelFacts
    file: Path
    meta: GGUFMetadata | MLXMetadata
    chat_template: str | None
    bos_token: str
    eos_token: str
    fim: FimTokens | None = None


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[Path, tuple[tuple[int, int], GGUFMetadata | MLXMetadata]] = {}
        self._lock = threading.Lock()
        # Files that are not usable models (truncated, not GGUF), with why: left out of
        # listings, and named when a request asks for one of them.
        self.broken: dict[Path, str] = {}

    def _cached(
        self, path: Path, stamp: tuple[int, int], read: Callable[[], GGUFMetadata | MLXMetadata]
    ) -> GGUFMetadata | MLXMetadata | None:
        """A model's metadata, read again only when its files changed; None (and the reason
        in ``broken``) when they are not a usable model."""
        with self._lock:
            cached = self._cache.get(path)
        if cached and cached[0] == stamp:
            return cached[1]
        try:
            meta = read()
        except (GGUFError, MLXError, OSError) as exc:
            with self._lock:
                if self.broken.get(path) != str(exc):
                    log.warning("Not listing %s: %s", path, exc)
                self.broken[path] = str(exc)
            return None
        with self._lock:
            self.broken.pop(path, None)
            self._cache[path] = (stamp, meta)
        return meta

    def scan(self) -> list[LocalModel]:
        """Every model file under the root, keyed as LM Studio keys them.

        Files in one repo folder are variants of one model: each gets ``key@quant`` (or
        ``key@file-stem`` when two share a quantization) and the same ``model_key``.
        """
        found: list[tuple[Path, GGUFMetadata, tuple[int, int]]] = []
        if self.root.is_dir():
            for file in sorted(self.root.glob("*/*/*.gguf")):
                if "mmproj" in file.name.lower():
                    continue
                shards = shard_files(file)
                if not shards:
                    continue  # a later shard (it loads with the first), or a set with one missing
                stats = [shard.stat() for shard in shards]
                stamp = (sum(st.st_size for st in stats), max(st.st_mtime_ns for st in stats))
                meta = self._cached(file, stamp, lambda f=file, s=shards: _gguf_metadata(f, s[1:]))
                if isinstance(meta, GGUFMetadata):
                    found.append((file, meta, stamp))
        siblings: dict[Path, list[str]] = {}
        for file, meta, _ in found:
            siblings.setdefault(file.parent, []).append(quantization_name(meta, file.name).lower())
        models = []
        for file, meta, stamp in found:
            quants = siblings[file.parent]
            quant = quantization_name(meta, file.name).lower()
            suffix = None if len(quants) == 1 else quant if quants.count(quant) == 1 else file.stem.lower()
            models.append(self._describe(file, meta, suffix, stamp))
        if self.root.is_dir():
            models += [self._describe_mlx(folder) for folder in self._mlx_folders()]
        return [model for model in models if model is not None]

    def _mlx_folders(self) -> list[Path]:
        """``publisher/repo/`` folders that hold an MLX model (and no GGUF file)."""
        folders = (config.parent for config in sorted(self.root.glob("*/*/config.json")))
        return [folder for folder in folders if is_mlx_folder(folder) and not any(folder.glob("*.gguf"))]

    def _describe_mlx(self, folder: Path) -> LocalModel | None:
        stats = [file.stat() for file in [folder / "config.json", *folder.glob("*.safetensors")]]
        stamp = (sum(st.st_size for st in stats), max(st.st_mtime_ns for st in stats))
        meta = self._cached(folder, stamp, lambda: read_mlx_metadata(folder))
        if not isinstance(meta, MLXMetadata):
            return None
        publisher, repo = folder.parent.name, folder.name
        template = meta.chat_template
        facts = ModelFacts(
            key=f"{publisher}/{repo}".lower(),
            model_key=f"{publisher}/{repo}".lower(),
            path=str(folder.relative_to(self.root)),
            publisher=publisher,
            arch=meta.arch,
            type="llm",
            quantization=meta.quantization_name,
            size_bytes=stamp[0],
            max_context_length=meta.context_length,
            params_string=_count_string(meta.n_params),
            **template_capabilities(template),
            display_name=repo,
            format="mlx",
        )
        return LocalModel(
            facts=facts,
            file=folder,
            meta=meta,
            chat_template=template,
            bos_token=meta.token_text("bos_token"),
            eos_token=meta.token_text("eos_token"),
        )

    def _describe(
        self, file: Path, meta: GGUFMetadata, variant: str | None, stamp: tuple[int, int]
    ) -> LocalModel:
        publisher = file.parent.parent.name
        repo = re.sub(r"(?i)[-_]gguf$", "", file.parent.name)
        quant = quantization_name(meta, file.name)
        model_key = f"{publisher}/{repo}".lower()
        key = f"{model_key}@{variant}" if variant else model_key
        template = meta.fields.get("tokenizer.chat_template")
        fim = fim_tokens(meta.token_text, meta.token_ids)
        facts = ModelFacts(
            key=key,
            model_key=model_key,
            path=str(file.relative_to(self.root)),
            publisher=publisher,
            arch=meta.arch,
            type=model_type(meta),
            quantization=quant,
            size_bytes=stamp[0],
            max_context_length=int(meta.arch_field("context_length", 2048)),
            params_string=params_string(meta),
            **template_capabilities(template),
            display_name=str(meta.fields.get("general.name") or repo),
            fill_in_middle=fim is not None,
        )
        return LocalModel(
            facts=facts,
            file=file,
            meta=meta,
            chat_template=template,
            bos_token=meta.token_text("tokenizer.ggml.bos_token_id"),
            eos_token=meta.token_text("tokenizer.ggml.eos_token_id"),
            fim=fim,
        )

    def find(self, name: str, fits: Callable[[LocalModel], bool] | None = None) -> LocalModel | None:
        """Resolve a variant key, a relative path, or a model key (its default variant)."""
        models = self.scan()
        wanted = name.lower()
        for model in models:
            if wanted in (model.facts.key, model.facts.path.lower()):
                return model
        variants = [model for model in models if model.facts.model_key == wanted]
        return default_variant(variants, fits) if variants else None

    def missing(self, name: str) -> APIError:
        """The error for a name no usable model has: a broken file's reason, else not found."""
        problem = self.problem(name)
        if problem is None:
            return model_not_found(name)
        return APIError(
            f"Model '{name}' cannot be loaded: {problem}", param="model", code="model_file_corrupt"
        )

    def problem(self, name: str) -> str | None:
        """Why a name that matches no usable model matches a broken file, if it does."""
        wanted = name.lower()
        with self._lock:
            broken = dict(self.broken)
        for file, reason in broken.items():
            path = str(file.relative_to(self.root)).lower()
            repo = file if file.is_dir() else file.parent  # an MLX model is its folder
            key = re.sub(r"(?i)[-_]gguf$", "", f"{repo.parent.name}/{repo.name}").lower()
            if wanted in (path, key) or wanted.startswith(key + "@"):
                return f"{path}: {reason}"
        return None


def shard_files(file: Path) -> list[Path]:
    """A model's files: ``[file]``, or every shard of a split model named by its first
    (``M-00001-of-00003.gguf``); empty for a later shard, or when a shard is missing."""
    match = SHARD.search(file.name)
    if match is None:
        return [file]
    if int(match.group(1)) != 1:
        return []
    count = int(match.group(2))
    shards = [file.with_name(SHARD.sub(f"-{i:05d}-of-{count:05d}", file.name)) for i in range(1, count + 1)]
    return shards if all(shard.is_file() for shard in shards) else []


def default_variant(
    variants: list[LocalModel], fits: Callable[[LocalModel], bool] | None = None
) -> LocalModel:
    """The best quantization that fits; if none fits, the smallest file."""
    fitting = [v for v in variants if fits is None or fits(v)]
    if not fitting:
        return min(variants, key=lambda v: v.facts.size_bytes)
    return max(fitting, key=lambda v: (quant_bits(v.facts.quantization) or 0, v.facts.size_bytes))


def group_variants(models: list[LocalModel]) -> dict[str, list[LocalModel]]:
    groups: dict[str, list[LocalModel]] = {}
    for model in models:
        groups.setdefault(model.facts.model_key, []).append(model)
    return groups


def model_type(meta: GGUFMetadata) -> str:
    """``llm``, ``embeddings``, or ``reranker`` (rank pooling: a classifier head scores a query and
    a document together, llama.cpp's ``--pooling rank``)."""
    pooling = meta.arch_field("pooling_type")
    if pooling is not None and int(pooling) == gguf.PoolingType.RANK:
        return "reranker"
    if meta.arch in EMBEDDING_ARCHS or (pooling is not None and int(pooling) != gguf.PoolingType.NONE):
        return "embeddings"
    return "llm"


def quantization_name(meta: GGUFMetadata, filename: str) -> str:
    file_type = meta.fields.get("general.file_type")
    if file_type is not None:
        try:
            name = gguf.LlamaFileType(int(file_type)).name
        except ValueError:
            name = ""
        if name:
            return name.removeprefix("MOSTLY_").removeprefix("ALL_")
    match = QUANT_IN_NAME.search(filename)
    return match.group(1).upper() if match else "unknown"


def params_string(meta: GGUFMetadata) -> str | None:
    label = meta.fields.get("general.size_label")
    if label:
        return str(label)
    return _count_string(meta.n_params)


def _count_string(count: int) -> str | None:
    """A parameter count as LM Studio writes it (``1.54B``)."""
    if count <= 0:
        return None
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g}{unit}"
    return str(count)


def _gguf_metadata(file: Path, more: list[Path]) -> GGUFMetadata:
    """The header, with the tensors of a split model's ``more`` shards counted in."""
    meta = read_metadata(file, find_tokens=SPELLINGS)
    for shard in more:
        other = read_metadata(shard)
        meta.tensor_types.update(other.tensor_types)
        meta.tensor_bytes.update(other.tensor_bytes)
        meta.n_params += other.n_params
    return meta


def template_capabilities(template: str | None) -> dict[str, bool]:
    """What a chat template says a model can do. "Native" tool use as LM Studio means it: the
    template renders tools in a format we parse."""
    family = detect_family(template)
    return {
        "trained_for_tool_use": bool(template and "tools" in template and family is not FALLBACK),
        "reasoning": family.parses_reasoning or reasoning_markers(template) is not None,
    }
