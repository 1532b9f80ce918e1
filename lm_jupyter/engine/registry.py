"""The models folder: LM Studio's ``publisher/repo/file.gguf`` layout, listed from metadata.

Nothing here loads a model. Metadata is cached per (path, size, mtime) so listing a folder of
large models stays instant after the first look.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gguf

from ..api.models import ModelFacts, quant_bits
from ..chat.reasoning import reasoning_markers
from ..chat.toolcalls import detect_family
from ..hub.store import QUANT_IN_NAME
from ..hub.variants import SHARD
from .gguf_meta import GGUFError, GGUFMetadata, read_metadata

EMBEDDING_ARCHS = {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "t5encoder", "modern-bert"}


@dataclass(frozen=True)
class LocalModel:
    """A model file plus what a worker and the chat template need to run it."""

    facts: ModelFacts
    file: Path
    meta: GGUFMetadata
    chat_template: str | None
    bos_token: str
    eos_token: str


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[Path, tuple[tuple[int, int], GGUFMetadata]] = {}
        self._lock = threading.Lock()

    def _metadata(self, file: Path, stamp: tuple[int, int], more: list[Path]) -> GGUFMetadata | None:
        """The header, with the tensors of a split model's ``more`` shards counted in."""
        with self._lock:
            cached = self._cache.get(file)
        if cached and cached[0] == stamp:
            return cached[1]
        try:
            meta = read_metadata(file)
            for shard in more:
                other = read_metadata(shard)
                meta.tensor_types.update(other.tensor_types)
                meta.tensor_bytes.update(other.tensor_bytes)
                meta.n_params += other.n_params
        except (GGUFError, OSError):
            return None
        with self._lock:
            self._cache[file] = (stamp, meta)
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
                meta = self._metadata(file, stamp, shards[1:])
                if meta is not None:
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
        return models

    def _describe(
        self, file: Path, meta: GGUFMetadata, variant: str | None, stamp: tuple[int, int]
    ) -> LocalModel:
        publisher = file.parent.parent.name
        repo = re.sub(r"(?i)[-_]gguf$", "", file.parent.name)
        quant = quantization_name(meta, file.name)
        model_key = f"{publisher}/{repo}".lower()
        key = f"{model_key}@{variant}" if variant else model_key
        template = meta.fields.get("tokenizer.chat_template")
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
            # "Native" tool use as LM Studio means it: the template renders tools in a format we parse.
            trained_for_tool_use=bool(
                template and "tools" in template and detect_family(template) != "fallback"
            ),
            reasoning=reasoning_markers(template) is not None or detect_family(template) == "gpt_oss",
            display_name=str(meta.fields.get("general.name") or repo),
        )
        return LocalModel(
            facts=facts,
            file=file,
            meta=meta,
            chat_template=template,
            bos_token=meta.token_text("tokenizer.ggml.bos_token_id"),
            eos_token=meta.token_text("tokenizer.ggml.eos_token_id"),
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
    pooling = meta.arch_field("pooling_type")
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
    count = meta.n_params
    if count <= 0:
        return None
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g}{unit}"
    return str(count)
